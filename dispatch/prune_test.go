package dispatch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// The leader removes a run once it ended more than the run retention ago
// by the dispatcher's clock (a fake one here), and not before; a run still
// going is never removed however old it is.
func TestLeaderPrunesRunsPastTheRunRetention(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	fake := &clock{now: time.Date(2026, 2, 11, 12, 0, 0, 0, time.UTC)}
	d := dispatch.New(backend{leader.Server}, dispatch.Config{
		Now: fake.Now, LeaseTTL: 365 * 24 * time.Hour, RunRetention: time.Hour, PruneInterval: 10 * time.Millisecond,
		Thresholds: dispatch.Thresholds{Warning: time.Hour, Unhealthy: 2 * time.Hour, Offline: 3 * time.Hour},
	})
	leader.Server.RegisterLeaderDuty("dispatch", d.RunLeader)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	info := &daguhav1.WorkerInfo{Id: "w1", MaxActiveRuns: 10}
	clustertest.WaitFor(t, 10*time.Second, "the dispatcher to serve", func() (bool, string) {
		_, err := d.Heartbeat(ctx, info, nil)
		return err == nil, fmt.Sprint(err)
	})
	var runs []*daguhav1.Run
	for _, id := range []string{"old", "young", "forever-running"} {
		runs = append(runs, &daguhav1.Run{Id: id, DagName: "d"})
	}
	if _, _, err := leader.Server.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: runs}); err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	clustertest.WaitFor(t, 10*time.Second, "all three runs granted", func() (bool, string) {
		tasks, err := d.PollMany(ctx, info, 100*time.Millisecond, 3)
		for _, task := range tasks {
			tokens[task.GetRun().GetId()] = task.GetLeaseToken()
		}
		return len(tokens) == 3, fmt.Sprintf("%d granted %v", len(tokens), err)
	})
	finish := func(id string) {
		t.Helper()
		if err := d.FinishRun(ctx, tokens[id], daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "", nil, nil); err != nil {
			t.Fatalf("finish %s: %v", id, err)
		}
	}
	exists := func(id string) bool {
		run, err := leader.Server.FSM().State().Run(id)
		if err != nil {
			t.Fatal(err)
		}
		return run != nil
	}

	finish("old")
	fake.Advance(30 * time.Minute)
	finish("young")
	fake.Advance(31 * time.Minute)
	// old ended 61 minutes ago, young 31: one tick removes old alone.
	clustertest.WaitFor(t, 20*time.Second, "the run that ended 61 minutes ago to be pruned", func() (bool, string) {
		return !exists("old"), "still there"
	})
	if !exists("young") || !exists("forever-running") {
		t.Fatal("a run within the retention, or one still running, was pruned with the old one")
	}
	fake.Advance(30 * time.Minute)
	clustertest.WaitFor(t, 20*time.Second, "the second run to be pruned once past the retention", func() (bool, string) {
		return !exists("young"), "still there"
	})
	if !exists("forever-running") {
		t.Fatal("a running run was pruned")
	}
}
