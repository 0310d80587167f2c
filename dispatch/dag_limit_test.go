package dispatch_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// A DAG's maxActiveRuns holds its other runs queued, whatever the free
// worker slots, until a running one ends; other DAGs' runs go past them.
func TestDagMaxActiveRunsHoldsItsOtherRuns(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	d := dispatch.New(backend{leader.Server}, dispatch.Config{LeaseTTL: time.Hour})
	leader.Server.RegisterLeaderDuty("dispatch", d.RunLeader)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	one := &daguhav1.DagSpec{Name: "one-at-a-time", MaxActiveRuns: 1, Steps: []*daguhav1.StepSpec{{Name: "s", Command: "true"}}}
	other := &daguhav1.DagSpec{Name: "other", Steps: []*daguhav1.StepSpec{{Name: "s", Command: "true"}}}
	var runs []*daguhav1.Run
	for _, id := range []string{"a1", "a2", "a3"} {
		runs = append(runs, &daguhav1.Run{Id: id, DagName: one.GetName(), Dag: one})
	}
	runs = append(runs, &daguhav1.Run{Id: "b1", DagName: other.GetName(), Dag: other})
	if _, _, err := leader.Server.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: runs}); err != nil {
		t.Fatal(err)
	}
	info := &daguhav1.WorkerInfo{Id: "w", MaxActiveRuns: 10}
	var first *daguhav1.Task
	clustertest.WaitFor(t, 10*time.Second, "the dispatcher to grant", func() (bool, string) {
		var err error
		first, err = d.Poll(ctx, info, 100*time.Millisecond)
		return err == nil && first != nil, "nothing yet"
	})
	if first.GetRun().GetId() != "a1" {
		t.Fatalf("first grant %s, want a1 (oldest)", first.GetRun().GetId())
	}
	second, err := d.Poll(ctx, info, time.Second)
	if err != nil || second.GetRun().GetId() != "b1" {
		t.Fatalf("second grant %v %v: want b1, past the held runs of one-at-a-time", second.GetRun().GetId(), err)
	}
	if third, err := d.Poll(ctx, info, 500*time.Millisecond); err != nil || third != nil {
		t.Fatalf("a third run was granted while a1 runs: %v %v", third.GetRun().GetId(), err)
	}
	if err := d.FinishRun(ctx, first.GetLeaseToken(), daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "", nil, nil); err != nil {
		t.Fatal(err)
	}
	next, err := d.Poll(ctx, info, 5*time.Second)
	if err != nil || next.GetRun().GetId() != "a2" {
		t.Fatalf("after a1 ended: %v %v, want a2", next.GetRun().GetId(), err)
	}
}

// A named queue is shared by the DAGs that name it: the servers' queues
// setting limits the runs of all of them together, across DAGs, and a DAG
// outside the queue goes past them.
func TestANamedQueueLimitsTheRunsOfEveryDagInIt(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	d := dispatch.New(backend{leader.Server}, dispatch.Config{LeaseTTL: time.Hour, Queues: map[string]int{"batch": 2}})
	leader.Server.RegisterLeaderDuty("dispatch", d.RunLeader)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spec := func(name, queue string) *daguhav1.DagSpec {
		// maxActiveRuns 5 on a queue the servers configure is the
		// servers' to decide, as in Dagu.
		return &daguhav1.DagSpec{Name: name, Queue: queue, MaxActiveRuns: 5, Steps: []*daguhav1.StepSpec{{Name: "s", Command: "true"}}}
	}
	a, b, free := spec("load-a", "batch"), spec("load-b", "batch"), spec("free", "")
	runs := []*daguhav1.Run{
		{Id: "a1", DagName: "load-a", Dag: a}, {Id: "b1", DagName: "load-b", Dag: b},
		{Id: "a2", DagName: "load-a", Dag: a}, {Id: "b2", DagName: "load-b", Dag: b},
		{Id: "f1", DagName: "free", Dag: free},
	}
	for _, run := range runs { // one entry each: enqueue order is queue order
		if _, _, err := leader.Server.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{run}}); err != nil {
			t.Fatal(err)
		}
	}
	info := &daguhav1.WorkerInfo{Id: "w", MaxActiveRuns: 10}
	var granted []*daguhav1.Task
	clustertest.WaitFor(t, 10*time.Second, "the dispatcher to grant", func() (bool, string) {
		task, err := d.Poll(ctx, info, 100*time.Millisecond)
		if err == nil && task != nil {
			granted = append(granted, task)
		}
		return len(granted) > 0, "nothing yet"
	})
	for len(granted) < 3 {
		task, err := d.Poll(ctx, info, time.Second)
		if err != nil || task == nil {
			t.Fatalf("grant %d: %v %v", len(granted)+1, task, err)
		}
		granted = append(granted, task)
	}
	var ids []string
	for _, task := range granted {
		ids = append(ids, task.GetRun().GetId())
	}
	if got := strings.Join(ids, ","); got != "a1,b1,f1" {
		t.Fatalf("granted %s, want a1,b1,f1: two of the batch queue, then the DAG outside it", got)
	}
	if more, err := d.Poll(ctx, info, 500*time.Millisecond); err != nil || more != nil {
		t.Fatalf("a third run of the batch queue was granted: %v %v", more.GetRun().GetId(), err)
	}
	if err := d.FinishRun(ctx, granted[1].GetLeaseToken(), daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "", nil, nil); err != nil {
		t.Fatal(err)
	}
	next, err := d.Poll(ctx, info, 5*time.Second)
	if err != nil || next.GetRun().GetId() != "a2" {
		t.Fatalf("after b1 ended: %v %v, want a2 (the queue's oldest)", next.GetRun().GetId(), err)
	}
}

func TestQueueLimitFollowsDagusOrder(t *testing.T) {
	run := func(queue string, maxActive uint32) *daguhav1.Run {
		return &daguhav1.Run{DagName: "etl", Dag: &daguhav1.DagSpec{Name: "etl", Queue: queue, MaxActiveRuns: maxActive}}
	}
	queues := map[string]int{"batch": 3, "etl": 4, "zero": 0}
	for _, c := range []struct {
		name string
		run  *daguhav1.Run
		want int
	}{
		{"configured queue wins over the DAG", run("batch", 9), 3},
		{"configured at 0 means 1", run("zero", 0), 1},
		{"unconfigured queue: the DAG's maxActiveRuns", run("other", 2), 2},
		{"unconfigured queue, no maxActiveRuns: 1", run("other", 0), 1},
		{"no queue: the DAG's own, configured by its name", run("", 0), 4},
	} {
		if got := dispatch.QueueLimit(queues, c.run); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	if got := dispatch.QueueLimit(nil, run("", 0)); got != 0 {
		t.Errorf("no queue, no maxActiveRuns: %d, want 0 (no limit)", got)
	}
	if got := dispatch.QueueLimit(nil, run("", 2)); got != 2 {
		t.Errorf("no queue, maxActiveRuns 2: %d", got)
	}
}
