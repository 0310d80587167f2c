package dispatch_test

import (
	"context"
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
