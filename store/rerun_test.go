package store_test

import (
	"slices"
	"strings"
	"testing"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

const stepSkipped = daguhav1.StepStatus_STEP_STATUS_SKIPPED

// diamond is a DAG a -> b -> d, a -> c -> d, and e alone, with outputs.
var diamond = &daguhav1.DagSpec{Name: "diamond", WorkerSelector: map[string]string{"zone": "eu"}, Steps: []*daguhav1.StepSpec{
	{Name: "a", Output: "A"}, {Name: "b", Depends: []string{"a"}, Output: "B"}, {Name: "c", Depends: []string{"a"}},
	{Name: "d", Depends: []string{"b", "c"}}, {Name: "e", Output: "E"},
}}

// finished runs "r" of the diamond DAG through one attempt that ends with
// the given step states, at raft indexes from index; it returns the next
// free index.
func finished(t *testing.T, s *store.StateStore, index uint64, status daguhav1.RunStatus, steps map[string]daguhav1.StepStatus) uint64 {
	t.Helper()
	enqueue(t, s, index, &daguhav1.Run{Id: "r", DagName: "diamond", Dag: diamond, RootDagRunId: "r", RootDagRunName: "diamond"})
	token := grant(t, s, index+1, "r", "w")
	var states []*daguhav1.StepState
	for _, spec := range diamond.GetSteps() {
		if st, ok := steps[spec.GetName()]; ok {
			states = append(states, &daguhav1.StepState{Name: spec.GetName(), Status: st, ExitCode: int32(st)})
		}
	}
	states = append(states, &daguhav1.StepState{Name: "onExit", Status: stepSucceeded, Handler: "exit"})
	outcomes, err := s.FinishRuns(index+2, []*daguhav1.Finish{{RunId: "r", FencingToken: token, Status: status, Error: "step b failed",
		NowUnixNano: 100, Steps: states, Outputs: map[string]string{"A": "1", "B": "2", "E": "5"}}})
	if err != nil || !outcomes[0].GetApplied() {
		t.Fatalf("finish: %v %v", outcomes, err)
	}
	return index + 3
}

func retry(t *testing.T, s *store.StateStore, index uint64, id, step string) *daguhav1.RunOutcome {
	t.Helper()
	outcomes, err := s.RetryRuns(index, []*daguhav1.RetryRun{{RunId: id, Step: step, NowUnixNano: int64(index)}})
	if err != nil || len(outcomes) != 1 {
		t.Fatalf("retry %s: %v %v", id, outcomes, err)
	}
	return outcomes[0]
}

func stepNames(states []*daguhav1.StepState) []string {
	var names []string
	for _, st := range states {
		names = append(names, st.GetName())
	}
	return names
}

// A retry of a failed run queues it again under its id: its attempts so
// far stay in its history, the next grant is attempt 2 and starts from the
// steps the retry keeps (those that succeeded before the failure, with
// their outputs), and its cancellation flag, error and times are cleared.
func TestARetryKeepsTheRunsHistoryAndItsSucceededSteps(t *testing.T) {
	s := newStore(t)
	next := finished(t, s, 1, daguhav1.RunStatus_RUN_STATUS_FAILED, map[string]daguhav1.StepStatus{
		"a": stepSucceeded, "b": stepFailed, "c": stepSucceeded, "d": stepSkipped, "e": stepSucceeded})
	if o := retry(t, s, next, "r", ""); !o.GetApplied() {
		t.Fatalf("retry refused: %v", o)
	}
	run := status(t, s, "r")
	if run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_QUEUED || run.GetWorkerId() != "" || run.GetError() != "" ||
		run.GetFinishedAtUnixNano() != 0 || run.GetRetriesRequested() != 1 || run.GetAttempt() != 1 {
		t.Fatalf("after the retry: %v", run)
	}
	if got := stepNames(run.GetKeptSteps()); !slices.Equal(got, []string{"a", "c", "e"}) {
		t.Fatalf("kept steps %v, want a, c and e (b failed, d comes after it, the handler runs again)", got)
	}
	if want := map[string]string{"A": "1", "E": "5"}; len(run.GetOutputs()) != 2 || run.GetOutputs()["A"] != "1" || run.GetOutputs()["E"] != "5" {
		t.Fatalf("outputs %v, want %v", run.GetOutputs(), want)
	}
	if ids, count := pending(t, s, run.GetSelectorKey()); !slices.Equal(ids, []string{"r"}) || count != 1 {
		t.Fatalf("pending %v (count %d), want r queued again", ids, count)
	}
	outcomes, err := s.GrantLeases(next+1, []*daguhav1.Grant{{RunId: "r", WorkerId: "w2", Attempt: 2, MaxActiveRuns: 1, NowUnixNano: 7}})
	if err != nil || !outcomes[0].GetGranted() {
		t.Fatalf("grant of the retry: %v %v", outcomes, err)
	}
	granted := outcomes[0].GetRun()
	if got := stepNames(granted.GetSteps()); !slices.Equal(got, []string{"a", "c", "e"}) {
		t.Fatalf("the new attempt starts from steps %v", got)
	}
	if a := granted.GetAttempts(); len(a) != 2 || a[0].GetOutcome() != "failed" || a[0].GetWorkerId() != "w" || a[1].GetAttempt() != 2 || a[1].GetWorkerId() != "w2" {
		t.Fatalf("attempts %v: want the failed first attempt, then attempt 2", a)
	}
}

// A retry from a step runs that step and every step after it again; all
// the others keep what they recorded, a failure included.
func TestARetryFromAStepKeepsTheStepsBeforeIt(t *testing.T) {
	for _, tc := range []struct {
		step string
		kept []string
	}{
		{"b", []string{"a", "c", "e"}},
		{"a", []string{"e"}},
		{"d", []string{"a", "b", "c", "e"}},
		{"e", []string{"a", "b", "c", "d"}},
	} {
		t.Run(tc.step, func(t *testing.T) {
			s := newStore(t)
			next := finished(t, s, 1, daguhav1.RunStatus_RUN_STATUS_FAILED, map[string]daguhav1.StepStatus{
				"a": stepSucceeded, "b": stepFailed, "c": stepSucceeded, "d": stepSkipped, "e": stepSucceeded})
			if o := retry(t, s, next, "r", tc.step); !o.GetApplied() {
				t.Fatalf("retry refused: %v", o)
			}
			if got := stepNames(status(t, s, "r").GetKeptSteps()); !slices.Equal(got, tc.kept) {
				t.Fatalf("kept %v, want %v", got, tc.kept)
			}
		})
	}
}

// A retry of a run that succeeded runs all of it again; a step never
// reached runs, and so does every step after it.
func TestARetryRunsWhatNeverRan(t *testing.T) {
	s := newStore(t)
	next := finished(t, s, 1, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, map[string]daguhav1.StepStatus{
		"a": stepSucceeded, "b": stepSucceeded, "c": stepSucceeded, "d": stepSucceeded, "e": stepSucceeded})
	if o := retry(t, s, next, "r", ""); !o.GetApplied() || len(status(t, s, "r").GetKeptSteps()) != 0 {
		t.Fatalf("retry of a succeeded run: %v, kept %v", o, status(t, s, "r").GetKeptSteps())
	}
	s = newStore(t)
	next = finished(t, s, 1, daguhav1.RunStatus_RUN_STATUS_CANCELLED, map[string]daguhav1.StepStatus{"a": stepSucceeded, "c": stepSucceeded, "e": stepSucceeded})
	retry(t, s, next, "r", "e")
	if got := stepNames(status(t, s, "r").GetKeptSteps()); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("kept %v, want a and c (b never ran, so it and d run)", got)
	}
}

// Only a finished root run can be retried, and only from a step its DAG
// has; a refused retry changes nothing.
func TestARetryIsRefusedUnlessTheRunHasFinished(t *testing.T) {
	s := newStore(t)
	enqueue(t, s, 1, &daguhav1.Run{Id: "q", DagName: "d"}, &daguhav1.Run{Id: "running", DagName: "d"})
	grant(t, s, 2, "running", "w")
	next := finished(t, s, 3, daguhav1.RunStatus_RUN_STATUS_FAILED, map[string]daguhav1.StepStatus{"a": stepFailed})
	enqueue(t, s, next, child("kid", "running", "running"))
	conflict, notFound, invalid := daguhav1.RefusalKind_REFUSAL_KIND_CONFLICT, daguhav1.RefusalKind_REFUSAL_KIND_NOT_FOUND, daguhav1.RefusalKind_REFUSAL_KIND_INVALID
	for _, tc := range []struct {
		id, step, want string
		kind           daguhav1.RefusalKind
	}{
		{"q", "", `run "q" is queued, not finished`, conflict},
		{"running", "", `run "running" is running, not finished`, conflict},
		{"kid", "", `run "kid" is queued, not finished`, conflict},
		{"nope", "", `run "nope" does not exist`, notFound},
		{"r", "zzz", `DAG "diamond" has no step named "zzz"`, invalid},
		{"r", "onExit", `has no step named "onExit"`, invalid},
	} {
		before := status(t, s, "r").GetModifyIndex()
		o := retry(t, s, next+1, tc.id, tc.step)
		if o.GetApplied() || !strings.Contains(o.GetRefused(), tc.want) || o.GetRefusalKind() != tc.kind {
			t.Errorf("retry %s %q: %v, want refused (%s) with %q", tc.id, tc.step, o, tc.kind, tc.want)
		}
		if after := status(t, s, "r").GetModifyIndex(); after != before {
			t.Errorf("a refused retry changed run r (modify index %d -> %d)", before, after)
		}
	}
	// A finished child is refused too: its root is what a retry reruns.
	token := grant(t, s, next+2, "kid", "w")
	if o, err := s.FinishRuns(next+3, []*daguhav1.Finish{{RunId: "kid", FencingToken: token, Status: daguhav1.RunStatus_RUN_STATUS_FAILED, NowUnixNano: 1}}); err != nil || !o[0].GetApplied() {
		t.Fatalf("finish kid: %v %v", o, err)
	}
	if o := retry(t, s, next+4, "kid", ""); o.GetApplied() || !strings.Contains(o.GetRefused(), `is a child of run "running": retry its root run "running"`) {
		t.Fatalf("retry of a finished child: %v", o)
	}
}

// Dequeue ends a queued run cancelled (and its queue forgets it), and is
// refused for a run that is running or has ended, which it leaves alone.
func TestDequeueEndsAQueuedRunAndRefusesAnyOther(t *testing.T) {
	s := newStore(t)
	enqueue(t, s, 1, &daguhav1.Run{Id: "q", DagName: "d", Dag: gpu}, &daguhav1.Run{Id: "running", DagName: "d"})
	grant(t, s, 2, "running", "w")
	outcomes, err := s.DequeueRuns(3, []string{"q", "running", "nope", "q"}, 42)
	if err != nil || len(outcomes) != 4 {
		t.Fatalf("dequeue: %v %v", outcomes, err)
	}
	if o := outcomes[0]; !o.GetApplied() || o.GetEndedCancelled() != 1 {
		t.Errorf("dequeue of the queued run: %v", o)
	}
	kinds := []daguhav1.RefusalKind{0, daguhav1.RefusalKind_REFUSAL_KIND_CONFLICT, daguhav1.RefusalKind_REFUSAL_KIND_NOT_FOUND, daguhav1.RefusalKind_REFUSAL_KIND_CONFLICT}
	for i, want := range []string{"", `run "running" is not queued but running`, `run "nope" does not exist`, `run "q" is not queued but cancelled`} {
		if i > 0 && (outcomes[i].GetApplied() || !strings.Contains(outcomes[i].GetRefused(), want) || outcomes[i].GetRefusalKind() != kinds[i]) {
			t.Errorf("outcome %d: %v, want refused (%s) with %q", i, outcomes[i], kinds[i], want)
		}
	}
	if run := status(t, s, "q"); run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_CANCELLED || run.GetFinishedAtUnixNano() != 42 {
		t.Errorf("the dequeued run: %v", run)
	}
	if run := status(t, s, "running"); run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_RUNNING || run.GetCancelRequested() {
		t.Errorf("a refused dequeue changed the running run: %v", run)
	}
	if ids, count := pending(t, s, store.SelectorKey(gpu.GetWorkerSelector())); len(ids) != 0 || count != -1 {
		t.Errorf("pending after the dequeue: %v (count %d)", ids, count)
	}
}
