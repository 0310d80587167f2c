package store_test

import (
	"strings"
	"testing"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

func grant(t *testing.T, s *store.StateStore, index uint64, runID, worker string) uint64 {
	t.Helper()
	outcomes, err := s.GrantLeases(index, []*daguhav1.Grant{{RunId: runID, WorkerId: worker, Attempt: 1, MaxActiveRuns: 10, NowUnixNano: int64(index)}})
	if err != nil || len(outcomes) != 1 || !outcomes[0].GetGranted() {
		t.Fatalf("grant %s: %v %v", runID, outcomes, err)
	}
	return outcomes[0].GetFencingToken()
}

func status(t *testing.T, s *store.StateStore, id string) *daguhav1.Run {
	t.Helper()
	run, err := s.Run(id)
	if err != nil || run == nil {
		t.Fatalf("run %s: %v %v", id, run, err)
	}
	return run
}

func child(id, parent, root string) *daguhav1.Run {
	return &daguhav1.Run{Id: id, DagName: "d-" + id, ParentDagRunId: parent, ParentDagRunName: "d-" + parent, RootDagRunId: root, RootDagRunName: "d-" + root}
}

func TestFireSchedulesFiresEachSlotOnce(t *testing.T) {
	s := newStore(t)
	fire := func(index uint64, slot int64) *daguhav1.RunOutcome {
		t.Helper()
		outcomes, err := s.FireSchedules(index, []*daguhav1.Firing{{DagName: "nightly", SlotUnix: slot,
			Run: &daguhav1.Run{Id: "nightly@" + string(rune('a'+slot)), DagName: "nightly", ScheduleSlotUnix: slot}}})
		if err != nil || len(outcomes) != 1 {
			t.Fatalf("fire slot %d: %v %v", slot, outcomes, err)
		}
		return outcomes[0]
	}
	if o := fire(1, 10); !o.GetApplied() {
		t.Fatalf("first firing refused: %v", o)
	}
	if o := fire(2, 10); o.GetApplied() || !strings.Contains(o.GetRefused(), "fired slot 10 already") {
		t.Fatalf("the same slot again: %v", o)
	}
	if o := fire(3, 9); o.GetApplied() {
		t.Fatalf("an earlier slot after a later one fired: %v", o)
	}
	if o := fire(4, 11); !o.GetApplied() {
		t.Fatalf("the next slot refused: %v", o)
	}
	record, err := s.Schedule("nightly")
	if err != nil || record.GetLastSlotUnix() != 11 || record.GetModifyIndex() != 4 {
		t.Fatalf("schedule record %v %v", record, err)
	}
	if ids := runIDs(t, s, 0); len(ids) != 2 {
		t.Fatalf("runs %v; want one per fired slot", ids)
	}
	if run := status(t, s, "nightly@k"); run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_QUEUED || run.GetScheduleSlotUnix() != 10 {
		t.Fatalf("the slot's run %v", run)
	}
}

func TestCancelReachesEveryDescendant(t *testing.T) {
	s := newStore(t)
	enqueue(t, s, 1, &daguhav1.Run{Id: "root", DagName: "d-root"})
	grant(t, s, 2, "root", "w1")
	enqueue(t, s, 3, child("child", "root", "root"))
	grant(t, s, 4, "child", "w2")
	enqueue(t, s, 5, child("grandchild", "child", "root"))
	enqueue(t, s, 6, child("sibling", "root", "root"))
	outcomes, err := s.CancelRuns(7, []string{"root"}, 70)
	if err != nil {
		t.Fatal(err)
	}
	// The two queued descendants ended at once; the running root did not.
	if outcomes[0].GetEndedCancelled() != 2 {
		t.Fatalf("cancel outcome %v: want 2 runs ended cancelled", outcomes[0])
	}
	// A queued run cancelled ends itself.
	enqueue(t, s, 8, &daguhav1.Run{Id: "lone", DagName: "d"})
	if outcomes, err := s.CancelRuns(9, []string{"lone"}, 90); err != nil || outcomes[0].GetEndedCancelled() != 1 {
		t.Fatalf("cancel of a queued run: %v %v; want 1 ended", outcomes, err)
	}
	// Running runs are asked to stop; queued ones end at once.
	for id, want := range map[string]daguhav1.RunStatus{
		"root": daguhav1.RunStatus_RUN_STATUS_RUNNING, "child": daguhav1.RunStatus_RUN_STATUS_RUNNING,
		"grandchild": daguhav1.RunStatus_RUN_STATUS_CANCELLED, "sibling": daguhav1.RunStatus_RUN_STATUS_CANCELLED,
	} {
		run := status(t, s, id)
		if run.GetStatus() != want {
			t.Errorf("%s is %v, want %v", id, run.GetStatus(), want)
		}
		if want == daguhav1.RunStatus_RUN_STATUS_RUNNING && !run.GetCancelRequested() {
			t.Errorf("%s was not asked to stop", id)
		}
	}
	if ids, count := pending(t, s, ""); len(ids) != 0 || count > 0 {
		t.Fatalf("pending after cancel: %v (count %d)", ids, count)
	}
	// A child asked for after the cancellation is refused.
	o := enqueue(t, s, 10, child("late", "child", "root"))
	if o[0].GetCreated() || !strings.Contains(o[0].GetConflict(), "being cancelled") {
		t.Fatalf("late child: %v", o)
	}
}

func TestAnEndedRunLeavesNoChildBehind(t *testing.T) {
	s := newStore(t)
	enqueue(t, s, 1, &daguhav1.Run{Id: "root", DagName: "d-root"})
	token := grant(t, s, 2, "root", "w1")
	enqueue(t, s, 3, child("child", "root", "root"))
	grant(t, s, 4, "child", "w2")
	enqueue(t, s, 5, child("grandchild", "child", "root"))
	outcomes, err := s.FinishRuns(6, []*daguhav1.Finish{{RunId: "root", FencingToken: token, Status: daguhav1.RunStatus_RUN_STATUS_FAILED,
		Error: "timed out", NowUnixNano: 60, Outputs: map[string]string{"X": "1"}}})
	if err != nil || !outcomes[0].GetApplied() {
		t.Fatalf("finish: %v %v", outcomes, err)
	}
	// The queued grandchild ended with it (the root's own end is the
	// worker's finish, not counted here).
	if outcomes[0].GetEndedCancelled() != 1 {
		t.Fatalf("finish outcome %v: want 1 descendant ended cancelled", outcomes[0])
	}
	if run := status(t, s, "root"); run.GetOutputs()["X"] != "1" {
		t.Fatalf("outputs not recorded: %v", run)
	}
	if run := status(t, s, "child"); !run.GetCancelRequested() {
		t.Fatalf("the running child was not asked to stop: %v", run)
	}
	if run := status(t, s, "grandchild"); run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_CANCELLED {
		t.Fatalf("the queued grandchild is %v", run.GetStatus())
	}
	o := enqueue(t, s, 7, child("late", "root", "root"))
	if o[0].GetCreated() || !strings.Contains(o[0].GetConflict(), "has ended: failed") {
		t.Fatalf("child of an ended run: %v", o)
	}
	o = enqueue(t, s, 8, child("orphan", "nobody", "nobody"))
	if o[0].GetCreated() || !strings.Contains(o[0].GetConflict(), `parent run "nobody" does not exist`) {
		t.Fatalf("child of no run: %v", o)
	}
	children, err := s.Children("root")
	if err != nil || len(children) != 1 || children[0].GetId() != "child" {
		t.Fatalf("children of root: %v %v", children, err)
	}
}

func TestPutDagsComparesContentHashes(t *testing.T) {
	s := newStore(t)
	put := func(index uint64, hash string) string {
		t.Helper()
		outcomes, err := s.PutDags(index, []*daguhav1.StoredDag{{Spec: &daguhav1.DagSpec{Name: "etl"}, ContentHash: hash}}, int64(index))
		if err != nil || len(outcomes) != 1 {
			t.Fatalf("put: %v %v", outcomes, err)
		}
		return outcomes[0].GetResult()
	}
	for i, step := range []struct {
		hash, want     string
		create, modify uint64
	}{
		{"h1", store.DagCreated, 1, 1},
		{"h1", store.DagUnchanged, 1, 1},
		{"h2", store.DagUpdated, 1, 3},
	} {
		if got := put(uint64(i+1), step.hash); got != step.want {
			t.Fatalf("put %d: %s, want %s", i+1, got, step.want)
		}
		dag, err := s.Dag("etl")
		if err != nil || dag.GetCreateIndex() != step.create || dag.GetModifyIndex() != step.modify {
			t.Fatalf("put %d: stored %v %v", i+1, dag, err)
		}
	}
	if _, err := s.PutDags(4, []*daguhav1.StoredDag{{Spec: &daguhav1.DagSpec{}}}, 4); err == nil {
		t.Fatal("a DAG without a name was stored")
	}
	// A delete on condition of a hash the DAG no longer has keeps it.
	deleted, err := s.DeleteDags(5, []string{"etl"}, map[string]string{"etl": "h1"})
	if err != nil || len(deleted) != 0 {
		t.Fatalf("delete if h1 (stored: h2): %v %v", deleted, err)
	}
	if dag, _ := s.Dag("etl"); dag == nil {
		t.Fatal("a delete on condition of an old hash removed the DAG")
	}
	deleted, err = s.DeleteDags(6, []string{"etl", "missing"}, map[string]string{"etl": "h2"})
	if err != nil || len(deleted) != 1 {
		t.Fatalf("delete: %v %v", deleted, err)
	}
	if dag, _ := s.Dag("etl"); dag != nil {
		t.Fatalf("deleted DAG still stored: %v", dag)
	}
}

// Dagu's schedule map: a stop slot cancels the runs the leader named that
// are still active (not another DAG's, not an ended one), a restart slot
// cancels and enqueues; each kind of slot fires once, and keeps the other
// kinds' last slots.
func TestFireSchedulesStopAndRestartSlots(t *testing.T) {
	s := newStore(t)
	spec := &daguhav1.DagSpec{Name: "svc", Steps: []*daguhav1.StepSpec{{Name: "s", Command: "true"}}}
	other := &daguhav1.DagSpec{Name: "other", Steps: spec.GetSteps()}
	if _, err := s.EnqueueRuns(1, []*daguhav1.Run{
		{Id: "r1", DagName: "svc", Dag: spec}, {Id: "r2", DagName: "svc", Dag: spec}, {Id: "o1", DagName: "other", Dag: other},
	}); err != nil {
		t.Fatal(err)
	}
	fire := func(index uint64, f *daguhav1.Firing) *daguhav1.RunOutcome {
		t.Helper()
		outcomes, err := s.FireSchedules(index, []*daguhav1.Firing{f})
		if err != nil || len(outcomes) != 1 {
			t.Fatalf("fire %v: %v %v", f, outcomes, err)
		}
		return outcomes[0]
	}
	if o := fire(2, &daguhav1.Firing{DagName: "svc", SlotUnix: 100, Run: &daguhav1.Run{Id: "s100", DagName: "svc", Dag: spec}}); !o.GetApplied() {
		t.Fatalf("start slot: %v", o)
	}
	stop := &daguhav1.Firing{DagName: "svc", SlotUnix: 100, Kind: daguhav1.FiringKind_FIRING_KIND_STOP, StopRunIds: []string{"r1", "o1", "ghost"}, NowUnixNano: 7}
	if o := fire(3, stop); !o.GetApplied() || o.GetEndedCancelled() != 1 {
		t.Fatalf("stop slot: %v, want applied with r1 ended", o)
	}
	if o := fire(4, stop); o.GetApplied() || !strings.Contains(o.GetRefused(), "fired stop slot 100 already") {
		t.Fatalf("the same stop slot again: %v", o)
	}
	restart := &daguhav1.Firing{DagName: "svc", SlotUnix: 100, Kind: daguhav1.FiringKind_FIRING_KIND_RESTART, StopRunIds: []string{"r2"},
		Run: &daguhav1.Run{Id: "re100", DagName: "svc", Dag: spec}}
	if o := fire(5, restart); !o.GetApplied() || o.GetEndedCancelled() != 1 || o.GetRunId() != "re100" {
		t.Fatalf("restart slot: %v", o)
	}
	for id, want := range map[string]daguhav1.RunStatus{
		"r1": daguhav1.RunStatus_RUN_STATUS_CANCELLED, "r2": daguhav1.RunStatus_RUN_STATUS_CANCELLED,
		"o1": daguhav1.RunStatus_RUN_STATUS_QUEUED, "s100": daguhav1.RunStatus_RUN_STATUS_QUEUED, "re100": daguhav1.RunStatus_RUN_STATUS_QUEUED,
	} {
		run, err := s.Run(id)
		if err != nil || run.GetStatus() != want {
			t.Errorf("run %s: %v %v, want %v", id, run.GetStatus(), err, want)
		}
	}
	record, err := s.Schedule("svc")
	if err != nil || record.GetLastSlotUnix() != 100 || record.GetLastRunId() != "s100" || record.GetLastStopSlotUnix() != 100 || record.GetLastRestartSlotUnix() != 100 {
		t.Fatalf("schedule record %v %v", record, err)
	}
}

// skipIfSuccessful: a slot is skipped (and counts as fired) when the
// DAG's latest run succeeded after the slot before; a later slot fires.
func TestFireSchedulesSkipsASlotAfterASuccessWhenAsked(t *testing.T) {
	s := newStore(t)
	dag := &daguhav1.DagSpec{Name: "daily", SkipIfSuccessful: true}
	fire := func(index uint64, slot int64) *daguhav1.RunOutcome {
		t.Helper()
		outcomes, err := s.FireSchedules(index, []*daguhav1.Firing{{DagName: "daily", SlotUnix: slot,
			Run: &daguhav1.Run{Id: "daily@" + string(rune('a'+slot/10)), DagName: "daily", ScheduleSlotUnix: slot, Dag: dag}}})
		if err != nil || len(outcomes) != 1 {
			t.Fatalf("fire slot %d: %v %v", slot, outcomes, err)
		}
		return outcomes[0]
	}
	if o := fire(1, 10); !o.GetApplied() {
		t.Fatalf("first slot, nothing succeeded yet: %v", o)
	}
	// Run by hand at 15 s, succeeded.
	enqueue(t, s, 2, &daguhav1.Run{Id: "manual", DagName: "daily", Dag: dag})
	outcomes, err := s.GrantLeases(3, []*daguhav1.Grant{{RunId: "manual", WorkerId: "w", Attempt: 1, MaxActiveRuns: 10, NowUnixNano: 15e9}})
	if err != nil || !outcomes[0].GetGranted() {
		t.Fatalf("grant: %v %v", outcomes, err)
	}
	finish(t, s, 4, "manual", outcomes[0].GetFencingToken(), 16e9)
	if o := fire(5, 20); o.GetApplied() || !strings.Contains(o.GetRefused(), "skipIfSuccessful") {
		t.Fatalf("slot 20 after a success at 15 s: %v", o)
	}
	if record, _ := s.Schedule("daily"); record.GetLastSlotUnix() != 20 {
		t.Fatalf("the skipped slot is not recorded: %v", record)
	}
	if o := fire(6, 30); !o.GetApplied() {
		t.Fatalf("slot 30: the success was before slot 20: %v", o)
	}
}
