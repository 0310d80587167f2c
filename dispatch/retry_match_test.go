package dispatch

import (
	"testing"
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// A run queued again by its DAG's retry policy is not matched before its
// wait has passed, and says the poll should look again soon; the runs
// behind it are matched meanwhile.
func TestARetryIsNotMatchedBeforeItsWait(t *testing.T) {
	state, err := store.NewStateStore()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	for i, run := range []*daguhav1.Run{
		{Id: "retry", DagName: "d", Dag: &daguhav1.DagSpec{Name: "d"}, DagRetries: 1, RetryAfterUnixNano: now.Add(time.Minute).UnixNano()},
		{Id: "other", DagName: "e", Dag: &daguhav1.DagSpec{Name: "e"}},
	} {
		if _, err := state.EnqueueRuns(uint64(i+1), []*daguhav1.Run{run}); err != nil {
			t.Fatal(err)
		}
	}
	info := &daguhav1.WorkerInfo{Id: "w", MaxActiveRuns: 4}
	st := &leaderState{reserved: map[string]bool{}, reservedByWorker: map[string]int{}, reservedByQueue: map[string]int{}}
	selectors, _, err := state.PendingSelectors()
	if err != nil {
		t.Fatal(err)
	}
	run, _, limited := st.match(state, selectors, info, now)
	if run.GetId() != "other" || !limited {
		t.Fatalf("before the wait: matched %v (limited %v), want other and a look again soon", run.GetId(), limited)
	}
	if run, _, _ := st.match(state, selectors, info, now); run != nil {
		t.Fatalf("matched %s before its wait", run.GetId())
	}
	if run, _, _ := st.match(state, selectors, info, now.Add(time.Minute+time.Second)); run.GetId() != "retry" {
		t.Fatalf("after the wait: matched %v", run.GetId())
	}
}

// Each retry of a run (its DAG's policy, or daguha retry) names the
// children of its steps anew, so a step that runs again starts a child of
// its own; a run never retried keeps the names it always had.
func TestEachRetryOfARunStartsChildrenOfItsOwn(t *testing.T) {
	seen := map[string]string{}
	for _, run := range []*daguhav1.Run{
		{}, {DagRetries: 1}, {RetriesRequested: 1}, {RetriesRequested: 1, DagRetries: 1}, {RetriesRequested: 2},
	} {
		key := childStepKey(run, "train")
		if other, dup := seen[key]; dup {
			t.Fatalf("runs %s and %v name the step's children alike: %q", other, run, key)
		}
		seen[key] = run.String()
	}
	if key := childStepKey(&daguhav1.Run{}, "train"); key != "train" {
		t.Fatalf("a run never retried: key %q, want the step's name", key)
	}
}
