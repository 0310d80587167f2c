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

// One poll takes several runs at once, oldest first, never past the
// worker's free slots or its DAGs' maxActiveRuns, each with its own lease.
func TestPollManyGrantsSeveralRunsWithinTheLimits(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	signer, err := dispatch.NewSigner([]byte("poll-many-key"))
	if err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(backend{leader.Server}, dispatch.Config{LeaseTTL: time.Hour, SigningKeys: [][]byte{[]byte("poll-many-key")}})
	leader.Server.RegisterLeaderDuty("dispatch", d.RunLeader)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	free := &daguhav1.DagSpec{Name: "free", Steps: []*daguhav1.StepSpec{{Name: "s", Command: "true"}}}
	limited := &daguhav1.DagSpec{Name: "limited", MaxActiveRuns: 2, Steps: []*daguhav1.StepSpec{{Name: "s", Command: "true"}}}
	var runs []*daguhav1.Run
	for i := range 8 {
		runs = append(runs, &daguhav1.Run{Id: fmt.Sprintf("f%d", i), DagName: "free", Dag: free})
	}
	for i := range 4 {
		runs = append(runs, &daguhav1.Run{Id: fmt.Sprintf("l%d", i), DagName: "limited", Dag: limited})
	}
	if _, _, err := leader.Server.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: runs}); err != nil {
		t.Fatal(err)
	}

	// A worker with 5 free slots asking for 10 gets 5: f0..f4.
	small := &daguhav1.WorkerInfo{Id: "small", MaxActiveRuns: 5}
	var tasks []*daguhav1.Task
	clustertest.WaitFor(t, 10*time.Second, "the dispatcher to grant", func() (bool, string) {
		tasks, err = d.PollMany(ctx, small, 100*time.Millisecond, 10)
		return err == nil && len(tasks) > 0, fmt.Sprint(err)
	})
	got := map[string]bool{}
	tokens := map[uint64]bool{}
	for _, task := range tasks {
		got[task.GetRun().GetId()] = true
		claims, err := signer.Verify(task.GetLeaseToken())
		if err != nil || claims.RunID != task.GetRun().GetId() || claims.WorkerID != "small" || claims.Attempt != 1 {
			t.Fatalf("lease of %s: %+v %v", task.GetRun().GetId(), claims, err)
		}
		// Fencing is per run: the token is the grant's Raft index, shared
		// by the grants of one entry, and must be what the run records.
		if claims.FencingToken == 0 || claims.FencingToken != task.GetRun().GetFencingToken() {
			t.Fatalf("lease of %s carries fencing token %d, the run records %d", task.GetRun().GetId(), claims.FencingToken, task.GetRun().GetFencingToken())
		}
		tokens[claims.FencingToken] = true
	}
	if len(tokens) != 1 {
		t.Fatalf("the 5 grants of one poll took %d Raft entries, want 1", len(tokens))
	}
	if len(tasks) != 5 || !got["f0"] || !got["f4"] || got["f5"] {
		t.Fatalf("granted %v, want f0..f4 (5 free slots, oldest first)", got)
	}
	if more, err := d.PollMany(ctx, small, 300*time.Millisecond, 10); err != nil || len(more) != 0 {
		t.Fatalf("a full worker got %d more runs (%v)", len(more), err)
	}

	// A roomy worker asking for 64 gets the other 3 free runs and only 2
	// of the limited DAG's 4.
	big := &daguhav1.WorkerInfo{Id: "big", MaxActiveRuns: 64}
	tasks, err = d.PollMany(ctx, big, time.Second, 64)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, task := range tasks {
		counts[task.GetRun().GetDagName()]++
	}
	if counts["free"] != 3 || counts["limited"] != 2 {
		t.Fatalf("granted %v, want free:3 limited:2", counts)
	}
}

// A task says how long the leader held its poll before the lease started
// (Task.poll_held_millis): at least the time the poll waited for the run,
// never more than the whole call took.
func TestTaskSaysHowLongItsPollWasHeld(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	d := dispatch.New(backend{leader.Server}, dispatch.Config{LeaseTTL: time.Hour, SigningKeys: [][]byte{[]byte("poll-held-key")}})
	leader.Server.RegisterLeaderDuty("dispatch", d.RunLeader)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spec := &daguhav1.DagSpec{Name: "held", Steps: []*daguhav1.StepSpec{{Name: "s", Command: "true"}}}
	worker := &daguhav1.WorkerInfo{Id: "w", MaxActiveRuns: 4}
	// Wait until the dispatcher leads: a poll with nothing queued returns
	// empty rather than not-leader.
	clustertest.WaitFor(t, 10*time.Second, "the dispatcher to lead", func() (bool, string) {
		_, err := d.PollMany(ctx, worker, 10*time.Millisecond, 1)
		return err == nil, fmt.Sprint(err)
	})
	type answer struct {
		tasks []*daguhav1.Task
		err   error
		took  time.Duration
	}
	done := make(chan answer, 1)
	began := time.Now()
	go func() {
		tasks, err := d.PollMany(ctx, worker, 20*time.Second, 1)
		done <- answer{tasks, err, time.Since(began)}
	}()
	// The run comes a second after the poll (the poll notes its arrival
	// first thing, long before that).
	const delay = time.Second
	time.Sleep(delay)
	if _, _, err := leader.Server.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{{Id: "late", DagName: "held", Dag: spec}}}); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if a.err != nil || len(a.tasks) != 1 {
		t.Fatalf("poll: %d tasks, %v", len(a.tasks), a.err)
	}
	held := time.Duration(a.tasks[0].GetPollHeldMillis()) * time.Millisecond
	if held < delay/2 || held > a.took {
		t.Errorf("a poll that waited %s for its run, in a call of %s, says it was held %s", delay, a.took, held)
	}

	// A run already queued is granted without a wait: held far less than
	// the wait the poll offered.
	if _, _, err := leader.Server.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{{Id: "ready", DagName: "held", Dag: spec}}}); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	tasks, err := d.PollMany(ctx, worker, 20*time.Second, 1)
	took := time.Since(began)
	if err != nil || len(tasks) != 1 {
		t.Fatalf("poll: %d tasks, %v", len(tasks), err)
	}
	if held := time.Duration(tasks[0].GetPollHeldMillis()) * time.Millisecond; held > took {
		t.Errorf("a poll answered in %s says it was held %s", took, held)
	}
}
