package store_test

import (
	"fmt"
	"testing"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

func stepNamed(name string, status daguhav1.StepStatus, retry uint32) *daguhav1.StepState {
	return &daguhav1.StepState{Name: name, Status: status, Retry: retry}
}

const (
	stepRunning   = daguhav1.StepStatus_STEP_STATUS_RUNNING
	stepSucceeded = daguhav1.StepStatus_STEP_STATUS_SUCCEEDED
	stepFailed    = daguhav1.StepStatus_STEP_STATUS_FAILED
)

func stepsOf(run *daguhav1.Run) map[string]*daguhav1.StepState {
	out := map[string]*daguhav1.StepState{}
	for _, s := range run.GetSteps() {
		out[s.GetName()] = s
	}
	return out
}

// Several states of one run in one command are recorded in order (a
// step's later state wins), under each report's own fencing check.
func TestReportStepsRecordsSeveralStatesOfARunInOrder(t *testing.T) {
	s := newStore(t)
	enqueue(t, s, 1, &daguhav1.Run{Id: "r", DagName: "d"})
	token := grant(t, s, 2, "r", "w")
	outcomes, err := s.ReportSteps(3, []*daguhav1.StepReport{
		{RunId: "r", FencingToken: token, Step: stepNamed("a", stepRunning, 1)},
		{RunId: "r", FencingToken: token, Step: stepNamed("a", stepFailed, 1)},
		{RunId: "r", FencingToken: token - 1, Step: stepNamed("stale", stepRunning, 1)},
		{RunId: "r", FencingToken: token, Step: stepNamed("b", stepRunning, 1)},
		{RunId: "r", FencingToken: token, Step: stepNamed("a", stepRunning, 2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range outcomes {
		if o.GetApplied() != (i != 2) {
			t.Errorf("outcome %d: %v", i, o)
		}
	}
	run := status(t, s, "r")
	steps := stepsOf(run)
	if len(run.GetSteps()) != 2 || run.GetSteps()[0].GetName() != "a" || steps["a"].GetRetry() != 2 || steps["a"].GetStatus() != stepRunning ||
		steps["b"].GetStatus() != stepRunning || run.GetModifyIndex() != 3 {
		t.Fatalf("run after the reports: %v", run)
	}
}

// The steps a finish carries are recorded with it, before it, in the same
// transaction; a finish refused by its fencing check records none of
// them, and a repeated finish changes nothing.
func TestFinishRecordsItsStepsOrNoneOfThem(t *testing.T) {
	s := newStore(t)
	enqueue(t, s, 1, &daguhav1.Run{Id: "r", DagName: "d"})
	token := grant(t, s, 2, "r", "w")
	if _, err := s.ReportSteps(3, []*daguhav1.StepReport{{RunId: "r", FencingToken: token, Step: stepNamed("a", stepRunning, 1)}}); err != nil {
		t.Fatal(err)
	}

	// A stale finish: nothing it carries lands.
	outcomes, err := s.FinishRuns(4, []*daguhav1.Finish{{RunId: "r", FencingToken: token + 1, Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED,
		NowUnixNano: 40, Steps: []*daguhav1.StepState{stepNamed("a", stepSucceeded, 1), stepNamed("b", stepSucceeded, 1)}}})
	if err != nil || len(outcomes) != 1 || outcomes[0].GetApplied() || outcomes[0].GetRefused() == "" {
		t.Fatalf("stale finish: %v %v", outcomes, err)
	}
	if run := status(t, s, "r"); run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_RUNNING || len(run.GetSteps()) != 1 ||
		stepsOf(run)["a"].GetStatus() != stepRunning || run.GetModifyIndex() != 3 {
		t.Fatalf("a refused finish changed the run: %v", run)
	}

	// The holder's finish: its steps, then the end.
	outcomes, err = s.FinishRuns(5, []*daguhav1.Finish{{RunId: "r", FencingToken: token, Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED,
		NowUnixNano: 50, Steps: []*daguhav1.StepState{stepNamed("a", stepSucceeded, 1), stepNamed("b", stepRunning, 1), stepNamed("b", stepSucceeded, 1)}}})
	if err != nil || len(outcomes) != 1 || !outcomes[0].GetApplied() {
		t.Fatalf("finish: %v %v", outcomes, err)
	}
	run := status(t, s, "r")
	steps := stepsOf(run)
	if run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED || run.GetFinishedAtUnixNano() != 50 || len(run.GetSteps()) != 2 ||
		steps["a"].GetStatus() != stepSucceeded || steps["b"].GetStatus() != stepSucceeded || run.GetModifyIndex() != 5 {
		t.Fatalf("run after its finish: %v", run)
	}

	// The same finish again (a retry) is taken and changes nothing, even
	// with other steps.
	outcomes, err = s.FinishRuns(6, []*daguhav1.Finish{{RunId: "r", FencingToken: token, Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED,
		NowUnixNano: 60, Steps: []*daguhav1.StepState{stepNamed("a", stepFailed, 1)}}})
	if err != nil || len(outcomes) != 1 || !outcomes[0].GetApplied() {
		t.Fatalf("repeated finish: %v %v", outcomes, err)
	}
	if again := status(t, s, "r"); again.GetModifyIndex() != 5 || stepsOf(again)["a"].GetStatus() != stepSucceeded {
		t.Fatalf("a repeated finish changed the run: %v", again)
	}
}

// The grants of one entry count against the worker's maxActiveRuns with
// the runs it held before, and the pending counts of the selectors follow
// every enqueue and grant of the entry.
func TestGrantsOfOneEntryCountTogether(t *testing.T) {
	s := newStore(t)
	enqueue(t, s, 1, &daguhav1.Run{Id: "held", DagName: "d"})
	grant(t, s, 2, "held", "w")
	enqueue(t, s, 3, &daguhav1.Run{Id: "a", DagName: "d"}, &daguhav1.Run{Id: "b", DagName: "d"},
		&daguhav1.Run{Id: "c", DagName: "d"}, &daguhav1.Run{Id: "g1", DagName: "d", Dag: gpu}, &daguhav1.Run{Id: "g2", DagName: "d", Dag: gpu})
	if _, count := pending(t, s, ""); count != 3 {
		t.Fatalf("pending without selector: %d, want 3", count)
	}
	if _, count := pending(t, s, "gpu=true"); count != 2 {
		t.Fatalf("pending on gpu: %d, want 2", count)
	}
	outcomes, err := s.GrantLeases(4, []*daguhav1.Grant{
		{RunId: "a", WorkerId: "w", Attempt: 1, MaxActiveRuns: 3},
		{RunId: "g1", WorkerId: "w", Attempt: 1, MaxActiveRuns: 3},
		{RunId: "b", WorkerId: "w", Attempt: 1, MaxActiveRuns: 3},
		{RunId: "g2", WorkerId: "other", Attempt: 1, MaxActiveRuns: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	var granted []bool
	for _, o := range outcomes {
		granted = append(granted, o.GetGranted())
	}
	if fmt.Sprint(granted) != "[true true false true]" {
		t.Fatalf("grants %v: w holds 1 and may take 2 more", outcomes)
	}
	ids, count := pending(t, s, "")
	if count != 2 || fmt.Sprint(ids) != "[b c]" {
		t.Fatalf("pending without selector: %v (%d), want [b c]", ids, count)
	}
	if ids, count := pending(t, s, "gpu=true"); count != -1 || len(ids) != 0 {
		t.Fatalf("the gpu selector should be gone: %v (%d)", ids, count)
	}
}
