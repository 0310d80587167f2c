package dispatch_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

type backend struct{ *cluster.Server }

func (b backend) State() *store.StateStore { return b.FSM().State() }

// clock is a fake clock safe to read from the dispatcher's goroutines.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// The leader declares a silent worker offline once its heartbeat is older
// than the offline threshold (by the dispatcher's clock, here a fake one),
// takes back its runs in the same command, lets it register again when it
// returns, and forgets it after the retention.
func TestLeaderDeclaresSilentWorkersOfflineAndForgetsThemAfterRetention(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	fake := &clock{now: time.Date(2026, 2, 11, 12, 0, 0, 0, time.UTC)}
	d := dispatch.New(backend{leader.Server}, dispatch.Config{
		Now: fake.Now, Retention: time.Hour, LeaseTTL: 24 * time.Hour,
		Thresholds: dispatch.Thresholds{Warning: 5 * time.Second, Unhealthy: 15 * time.Second, Offline: 30 * time.Second},
	})
	leader.Server.RegisterLeaderDuty("dispatch", d.RunLeader)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info := &daguhav1.WorkerInfo{Id: "w1", Labels: map[string]string{"gpu": "true"}, MaxActiveRuns: 1}
	var resp *daguhav1.HeartbeatResponse
	clustertest.WaitFor(t, 10*time.Second, "the dispatcher to serve", func() (bool, string) {
		var err error
		resp, err = d.Heartbeat(ctx, info, nil)
		return err == nil, "not yet"
	})
	_ = resp
	state := func() *store.StateStore { return leader.Server.FSM().State() }
	if w, _ := state().Worker("w1"); w == nil || w.GetOffline() {
		t.Fatalf("worker after its first heartbeat: %v", w)
	}

	// A run held by the worker.
	if _, _, err := leader.Server.Apply(ctx, 1, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{{Id: "r1", DagName: "d",
		Dag: &daguhav1.DagSpec{WorkerSelector: map[string]string{"gpu": "true"}}}}}); err != nil {
		t.Fatal(err)
	}
	task, err := d.Poll(ctx, info, time.Second)
	if err != nil || task == nil {
		t.Fatalf("poll: %v %v", task, err)
	}

	fake.Advance(29 * time.Second)
	if health, _ := d.Heartbeats().Health("w1", d.Thresholds()); health != dispatch.Unhealthy {
		t.Fatalf("29 s of silence: %s, want UNHEALTHY", health)
	}
	fake.Advance(2 * time.Second)
	clustertest.WaitFor(t, 10*time.Second, "the worker to be declared offline and its run taken back", func() (bool, string) {
		w, _ := state().Worker("w1")
		run, _ := state().Run("r1")
		return w.GetOffline() && run.GetStatus() == daguhav1.RunStatus_RUN_STATUS_QUEUED, w.String() + " / " + run.String()
	})
	// It comes back: registered again, and its old lease is refused.
	resp, err = d.Heartbeat(ctx, info, []*daguhav1.HeldLease{{RunId: "r1", LeaseToken: task.GetLeaseToken()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetLostRunIds()) != 1 || resp.GetLostRunIds()[0] != "r1" {
		t.Fatalf("the returning worker was not told its old run is lost: %v", resp)
	}
	if err := d.FinishRun(ctx, task.GetLeaseToken(), daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "", nil, nil); err == nil {
		t.Fatal("a finish under the lease from before the worker went offline was accepted")
	}
	if w, _ := state().Worker("w1"); w.GetOffline() {
		t.Fatal("the returning worker was not registered again")
	}

	// Silent again, offline again, then forgotten after the retention.
	fake.Advance(31 * time.Second)
	clustertest.WaitFor(t, 10*time.Second, "offline again", func() (bool, string) {
		w, _ := state().Worker("w1")
		return w.GetOffline(), w.String()
	})
	fake.Advance(59 * time.Minute)
	if w, _ := state().Worker("w1"); w == nil {
		t.Fatal("the worker was forgotten before its retention ended")
	}
	fake.Advance(2 * time.Minute)
	clustertest.WaitFor(t, 10*time.Second, "the worker to be forgotten after the retention", func() (bool, string) {
		w, _ := state().Worker("w1")
		return w == nil, w.String()
	})
}

// A running run the leader holds no lease for (here granted straight
// through Raft, as after a snapshot restore) is adopted with a full lease
// and taken back when nobody renews it.
func TestLeaderAdoptsRunningRunsItHasNoLeaseFor(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	fake := &clock{now: time.Date(2026, 2, 11, 12, 0, 0, 0, time.UTC)}
	d := dispatch.New(backend{leader.Server}, dispatch.Config{Now: fake.Now, LeaseTTL: 10 * time.Second,
		Thresholds: dispatch.Thresholds{Warning: time.Hour, Unhealthy: 2 * time.Hour, Offline: 3 * time.Hour}})
	leader.Server.RegisterLeaderDuty("dispatch", d.RunLeader)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := leader.Server.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{{Id: "orphan", DagName: "d"}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := leader.Server.Apply(ctx, fsm.GrantLeasesType, &daguhav1.GrantLeasesCommand{Grants: []*daguhav1.Grant{{RunId: "orphan", WorkerId: "ghost", Attempt: 1}}}); err != nil {
		t.Fatal(err)
	}
	state := func() *store.StateStore { return leader.Server.FSM().State() }
	clustertest.WaitFor(t, 10*time.Second, "the dispatcher to run", func() (bool, string) {
		_, err := d.Heartbeat(ctx, &daguhav1.WorkerInfo{Id: "probe", MaxActiveRuns: 1}, nil)
		return err == nil, "not yet"
	})
	// Time moves on while nobody renews the lease: the leader must adopt
	// it and, a lease TTL later, take the run back (before adoption
	// existed, this run stayed running forever).
	clustertest.WaitFor(t, 20*time.Second, "the unrenewed run to be taken back", func() (bool, string) {
		fake.Advance(time.Second)
		run, _ := state().Run("orphan")
		return run.GetStatus() == daguhav1.RunStatus_RUN_STATUS_QUEUED, run.String()
	})
}
