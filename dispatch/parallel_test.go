package dispatch_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/dispatch/valid"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// A parallel step's children are one per item: the leader derives each
// id from the parent, the step, the retry and the item's params, so the
// same item asked for again (a parent's next attempt after a failover) is
// the child that exists, and another item is another child.
func TestAParallelStepHasAChildPerItemAskedForIdempotently(t *testing.T) {
	b := startBoundsCluster(t)
	d, state, ctx := b.d, b.state, b.ctx
	b.enqueue(t, &daguhav1.Run{Id: "p1", Dag: &daguhav1.DagSpec{Name: "fan",
		Steps: []*daguhav1.StepSpec{
			{Name: "each", ChildDag: "leaf", Parallel: &daguhav1.ParallelSpec{ItemsFrom: "${ITEMS}", MaxConcurrent: 2}},
			{Name: "one", ChildDag: "leaf"},
		}},
		LocalDags: []*daguhav1.DagSpec{{Name: "leaf", Steps: []*daguhav1.StepSpec{{Name: "s", Command: "true"}}}}})
	task, err := d.Poll(ctx, &daguhav1.WorkerInfo{Id: "w1", MaxActiveRuns: 4}, 5*time.Second)
	if err != nil || task == nil {
		t.Fatalf("poll: %v %v", task, err)
	}
	token := task.GetLeaseToken()
	ask := func(step, params string, retry uint32) (string, bool) {
		t.Helper()
		id, created, err := d.EnqueueChild(ctx, token, step, retry, params)
		if err != nil {
			t.Fatalf("enqueue child of %s(%q): %v", step, params, err)
		}
		return id, created
	}
	a, created := ask("each", "a", 1)
	if !created || a != dispatch.ParallelChildRunID("p1", "each", 1, "a") {
		t.Fatalf("item a: %s created %v, want a new child %s", a, created, dispatch.ParallelChildRunID("p1", "each", 1, "a"))
	}
	if again, created := ask("each", "a", 1); again != a || created {
		t.Errorf("item a asked again: %s created %v, want %s, not created", again, created, a)
	}
	if other, created := ask("each", "FILE=b.csv", 1); other == a || !created {
		t.Errorf("item b: %s created %v, want a second child", other, created)
	}
	if retried, created := ask("each", "a", 2); retried == a || !created {
		t.Errorf("item a in the step's next try: %s created %v, want a new child", retried, created)
	}
	// A plain run/call step is one child per retry, whatever its params.
	if one, _ := ask("one", "x", 1); one != dispatch.ChildRunID("p1", "one", 1) {
		t.Errorf("run step's child %s, want %s", one, dispatch.ChildRunID("p1", "one", 1))
	}
	children, err := state().Children("p1")
	if err != nil || len(children) != 4 {
		t.Fatalf("children of p1: %d %v, want 4", len(children), err)
	}
	for _, child := range children {
		if child.GetParentStepName() == "each" && child.GetId() == a && child.GetParams() != "a" {
			t.Errorf("child %s has params %q, want a", a, child.GetParams())
		}
	}
}

// What a report records of a parallel step's children is bounded: run
// ids only, at most valid.MaxParallelItems, params cut short.
func TestParallelChildrenInReportsAreBounded(t *testing.T) {
	b := startBoundsCluster(t)
	d, state, ctx := b.d, b.state, b.ctx
	b.enqueue(t, &daguhav1.Run{Id: "p2", Dag: &daguhav1.DagSpec{Name: "fan",
		Steps: []*daguhav1.StepSpec{{Name: "each", ChildDag: "fan", Parallel: &daguhav1.ParallelSpec{Items: []*daguhav1.ParallelItem{{Value: "a"}}, MaxConcurrent: 1}}}}})
	task, err := d.Poll(ctx, &daguhav1.WorkerInfo{Id: "w1", MaxActiveRuns: 4}, 5*time.Second)
	if err != nil || task == nil {
		t.Fatalf("poll: %v %v", task, err)
	}
	token := task.GetLeaseToken()
	report := func(children ...*daguhav1.ParallelChild) error {
		return d.ReportSteps(ctx, token, []*daguhav1.StepState{{Name: "each", Status: daguhav1.StepStatus_STEP_STATUS_RUNNING, Retry: 1, ParallelChildren: children}})
	}
	var invalid *dispatch.InvalidRequestError
	if err := report(&daguhav1.ParallelChild{ChildRunId: "../x"}); !errors.As(err, &invalid) || !strings.Contains(err.Error(), `parallel child run id "../x"`) {
		t.Errorf("a bad child id: %v, want an invalid request", err)
	}
	many := make([]*daguhav1.ParallelChild, valid.MaxParallelItems+1)
	for i := range many {
		many[i] = &daguhav1.ParallelChild{}
	}
	if err := report(many...); !errors.As(err, &invalid) || !strings.Contains(err.Error(), "1001 parallel children") {
		t.Errorf("1001 children: %v, want an invalid request", err)
	}
	long := strings.Repeat("p", 10<<10)
	if err := report(&daguhav1.ParallelChild{ChildRunId: "c1", Params: long, Status: daguhav1.RunStatus_RUN_STATUS_RUNNING}); err != nil {
		t.Fatalf("a report within the bounds: %v", err)
	}
	run, _ := state().Run("p2")
	got := run.GetSteps()[0].GetParallelChildren()
	if len(got) != 1 || got[0].GetChildRunId() != "c1" || len(got[0].GetParams()) > valid.MaxParallelParamsShownBytes {
		t.Errorf("stored children %v, want c1 with params cut to %d bytes", got, valid.MaxParallelParamsShownBytes)
	}
}
