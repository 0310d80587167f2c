package service_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/fsm"
	"github.com/daguha/daguha/ops/service"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

func TestMain(m *testing.M) {
	clustertest.MainWithLeakCheck(m)
}

// Errors of the cluster are classified by what a caller can do about
// them, however deeply they are wrapped; a service error keeps its kind.
func TestKindOfClassifiesWhatACallerCanDo(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want service.Kind
	}{
		{"no leader within the hold", fmt.Errorf("%w after waiting 5s", cluster.ErrNoLeader), service.Unavailable},
		{"a retryable failure", &cluster.RetryableError{Err: errors.New("server is shutting down")}, service.Unavailable},
		{"a retryable failure, wrapped", fmt.Errorf("%w (no leader could take the request within 5s)", &cluster.RetryableError{Err: cluster.ErrNotLeader}), service.Unavailable},
		{"a command every replica refused", &cluster.CommandError{Err: errors.New("refused")}, service.Conflict},
		{"a deadline", fmt.Errorf("%w (last: no cluster leader)", context.DeadlineExceeded), service.Timeout},
		{"a cancellation", fmt.Errorf("%w (last: x)", context.Canceled), service.Interrupted},
		{"a service error", &service.Error{Kind: service.NotFound, Err: errors.New("no DAG named \"x\" is stored")}, service.NotFound},
		{"a service error wrapping a cluster one", &service.Error{Kind: service.Invalid, Err: fmt.Errorf("read the archive: %w", context.Canceled)}, service.Invalid},
		{"anything else", errors.New("raft apply: disk full"), service.Internal},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := service.KindOf(c.err); got != c.want {
				t.Fatalf("KindOf(%v) = %d, want %d", c.err, got, c.want)
			}
		})
	}
}

func startService(t *testing.T) *service.Service {
	t.Helper()
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	svc := service.New(c.Leader(10*time.Second).Server, service.Options{})
	t.Cleanup(svc.Close)
	return svc
}

// Each refusal comes with its kind and the message callers have always
// seen (the API's tests pin the status codes the kinds map to).
func TestRefusalsCarryTheirKindAndMessage(t *testing.T) {
	svc := startService(t)
	ctx := context.Background()
	inline := &service.InlineDag{Name: "etl", Steps: []service.InlineStep{{Name: "s", Command: "true"}}}
	if _, err := svc.Enqueue(ctx, service.EnqueueRequest{Dag: inline, DagRunID: "r1", Params: "A=1"}); err != nil {
		t.Fatalf("enqueue r1: %v", err)
	}
	check := func(what string, err error, kind service.Kind, message string) {
		t.Helper()
		if err == nil || service.KindOf(err) != kind || !strings.Contains(err.Error(), message) {
			t.Errorf("%s: %v (kind %d), want kind %d with %q", what, err, service.KindOf(err), kind, message)
		}
	}
	_, err := svc.Enqueue(ctx, service.EnqueueRequest{DagName: "nope"})
	check("a stored DAG that is not", err, service.NotFound, `no DAG named "nope" is stored (push it with daguha dag push, or send the file in "yaml")`)
	_, err = svc.Enqueue(ctx, service.EnqueueRequest{Params: "A=1"})
	check("no DAG name", err, service.Invalid, "dag_name is required (or dag.name with an inline dag)")
	_, err = svc.Enqueue(ctx, service.EnqueueRequest{Dag: inline, DagRunID: "r1", Params: "A=2"})
	check("a run id taken with other params", err, service.Conflict, "r1")
	_, err = svc.Enqueue(ctx, service.EnqueueRequest{Dag: inline, ParentDagRunID: "ghost"})
	check("a parent that does not exist", err, service.Invalid, `parent_dag_run_id "ghost": no such run`)
	_, err = svc.Enqueue(ctx, service.EnqueueRequest{Yaml: "steps:\n  - name: s\n    command: x\n", Dag: inline})
	check("a file and an inline DAG", err, service.Invalid, "send either yaml or dag, not both")
	_, err = svc.PushDags(ctx, nil)
	check("a push of no files", err, service.Invalid, "no DAG files given")
	_, err = svc.PushDags(ctx, []service.DagSource{{Name: "bad.yaml", Content: "steps: []\n"}})
	check("a push of an invalid file", err, service.Invalid, "bad.yaml")
	check("cancel of an unknown run", svc.Cancel(ctx, "ghost"), service.NotFound, "ghost")
	check("delete of an unknown DAG", svc.DeleteDag(ctx, "ghost"), service.NotFound, `no DAG named "ghost" is stored`)
	_, err = svc.Run(ctx, service.RunQuery{ID: "ghost"})
	check("an unknown run", err, service.NotFound, `no DAG run with id "ghost"`)
	_, err = svc.Run(ctx, service.RunQuery{ID: "r1", Index: "x"})
	check("a blocking query without an index", err, service.Invalid, `index "x": want a Raft index`)
	_, err = svc.ListRuns(ctx, service.RunFilter{Status: "done", Limit: 10})
	check("an unknown status", err, service.Invalid, `status "done": want queued, running, succeeded, failed or cancelled`)
	_, err = svc.ListRuns(ctx, service.RunFilter{After: "nonsense", Limit: 10})
	check("a cursor not from a page", err, service.Invalid, `after "nonsense"`)
	_, err = svc.StepLog(ctx, service.StepLogQuery{RunID: "r1", Step: "s"})
	check("a log without a way to workers", err, service.NotImplemented, "this server cannot reach workers for logs")
	check("removing no server", svc.RemovePeer(ctx, ""), service.Invalid, "id is required: the server to remove")
}

// A push stores each DAG once: the same files again leave it unchanged.
func TestPushDagsStoresEachDagOnce(t *testing.T) {
	svc := startService(t)
	ctx := context.Background()
	files := []service.DagSource{{Name: "a.yaml", Content: "name: alpha\nsteps:\n  - name: s\n    command: x\n"}}
	for _, want := range []string{"created", "unchanged"} {
		outcomes, err := svc.PushDags(ctx, files)
		if err != nil || len(outcomes) != 1 || outcomes[0] != (service.DagOutcome{Name: "alpha", File: "a.yaml", Result: want}) {
			t.Fatalf("push: %+v %v, want alpha from a.yaml %s", outcomes, err, want)
		}
	}
	dags, err := svc.Dags(ctx, false)
	if err != nil || len(dags) != 1 || dags[0].Stored.GetSpec().GetName() != "alpha" {
		t.Fatalf("dags: %+v %v", dags, err)
	}
	if err := svc.DeleteDag(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.GetDag(ctx, "alpha", false); service.KindOf(err) != service.NotFound {
		t.Fatalf("a deleted DAG: %v", err)
	}
}

// A child enqueued under a parent joins the parent's hierarchy: its root
// is the parent's root, or the parent itself when the parent records
// none (scheduled runs of servers before #21 did not), never empty.
func TestAChildsRootIsItsParentsRoot(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	svc := service.New(leader.Server, service.Options{})
	t.Cleanup(svc.Close)
	ctx := context.Background()
	spec := &daguhav1.DagSpec{Name: "tick", Steps: []*daguhav1.StepSpec{{Name: "s", Command: "true"}}}
	// A scheduled run as an older leader stored it: no root.
	if _, _, err := leader.Server.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{{
		Id: "sched-1", DagName: "tick", Dag: spec, ScheduleSlotUnix: 1,
	}}}); err != nil {
		t.Fatal(err)
	}
	inline := &service.InlineDag{Name: "child", Steps: []service.InlineStep{{Name: "s", Command: "true"}}}
	if _, err := svc.Enqueue(ctx, service.EnqueueRequest{Dag: inline, DagRunID: "c1", ParentDagRunID: "sched-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Enqueue(ctx, service.EnqueueRequest{Dag: inline, DagRunID: "g1", ParentDagRunID: "c1"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c1", "g1"} {
		run, err := leader.Server.FSM().State().Run(id)
		if err != nil || run == nil {
			t.Fatalf("run %s: %v", id, err)
		}
		if run.GetRootDagRunId() != "sched-1" || run.GetRootDagRunName() != "tick" {
			t.Errorf("run %s has root %q/%q, want tick/sched-1", id, run.GetRootDagRunName(), run.GetRootDagRunId())
		}
	}
}

// A queued run whose steps need an executor that no worker it may go to
// runs says which; once such a worker registers, the reason goes.
func TestAQueuedRunNamesTheExecutorNoWorkerRuns(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	svc := service.New(leader.Server, service.Options{})
	t.Cleanup(svc.Close)
	ctx := context.Background()
	register := func(w *daguhav1.Worker) {
		t.Helper()
		if _, _, err := leader.Server.Apply(ctx, fsm.RegisterWorkersType, &daguhav1.RegisterWorkersCommand{Workers: []*daguhav1.Worker{w}}); err != nil {
			t.Fatal(err)
		}
	}
	register(&daguhav1.Worker{Id: "plain", MaxActiveRuns: 1, Labels: map[string]string{"pool": "a"}, Executors: []string{"http", "jq"}})
	spec := &daguhav1.DagSpec{Name: "boxed", WorkerSelector: map[string]string{"pool": "a"},
		Steps: []*daguhav1.StepSpec{{Name: "s", Executor: "docker"}, {Name: "t", Executor: "ssh"}}}
	if _, _, err := leader.Server.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{{
		Id: "boxed-1", DagName: "boxed", Dag: spec, Status: daguhav1.RunStatus_RUN_STATUS_QUEUED,
	}}}); err != nil {
		t.Fatal(err)
	}
	reason := func() string {
		t.Helper()
		detail, err := svc.Run(ctx, service.RunQuery{ID: "boxed-1"})
		if err != nil {
			t.Fatal(err)
		}
		return detail.Reason
	}
	if got, want := reason(), "no worker matching selector pool=a runs the docker, ssh executors that its steps need"; got != want {
		t.Fatalf("reason %q, want %q", got, want)
	}
	// One with docker outside the selector changes nothing.
	register(&daguhav1.Worker{Id: "other", MaxActiveRuns: 1, Labels: map[string]string{"pool": "b"}, Executors: []string{"docker", "ssh"}})
	if got := reason(); !strings.Contains(got, "docker, ssh executors") {
		t.Fatalf("reason %q", got)
	}
	register(&daguhav1.Worker{Id: "boxes", MaxActiveRuns: 1, Labels: map[string]string{"pool": "a"}, Executors: []string{"docker", "ssh"}})
	if got := reason(); got != "" {
		t.Fatalf("reason %q once a worker runs both", got)
	}
}

// An enqueue by name reads the DAG table alone: the read index it waits
// for is the last write to that table, not to every table, so a follower
// does not wait for the runs written meanwhile to reach it (they reach it
// only with the leader's next message). It still sees a DAG pushed just
// before, through another server.
func TestAnEnqueueByNameWaitsOnlyForTheDagTable(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 3})
	leader := c.Leader(10 * time.Second)
	followers := c.Followers()
	viaLeader := service.New(leader.Server, service.Options{})
	viaFollower := service.New(followers[0].Server, service.Options{})
	t.Cleanup(viaLeader.Close)
	t.Cleanup(viaFollower.Close)
	ctx := context.Background()
	for round := range 3 {
		name := fmt.Sprintf("pushed-%d", round)
		if _, err := viaLeader.PushDags(ctx, []service.DagSource{{Name: name + ".yaml", Content: "name: " + name + "\nsteps:\n  - name: s\n    command: \"true\"\n"}}); err != nil {
			t.Fatal(err)
		}
		dagsIndex := leader.Server.FSM().State().TableIndex(store.TableDags)
		// Runs written after the DAG: the leader's applied index moves on,
		// the DAG table's read index does not.
		for i := range 5 {
			if _, err := viaLeader.Enqueue(ctx, service.EnqueueRequest{DagName: name, DagRunID: fmt.Sprintf("r-%d-%d", round, i)}); err != nil {
				t.Fatal(err)
			}
		}
		all, err := leader.Server.LeaderReadIndex()
		if err != nil {
			t.Fatal(err)
		}
		ofDags, err := leader.Server.LeaderReadIndex(store.TableDags)
		if err != nil {
			t.Fatal(err)
		}
		if ofDags != dagsIndex || all <= ofDags {
			t.Fatalf("read index of the DAG table %d (its last write %d), of everything %d", ofDags, dagsIndex, all)
		}
		// Through the follower, at once: the DAG pushed through the leader
		// is there.
		if _, err := viaFollower.Enqueue(ctx, service.EnqueueRequest{DagName: name, DagRunID: fmt.Sprintf("f-%d", round)}); err != nil {
			t.Fatalf("enqueue %s through a follower right after its push: %v", name, err)
		}
	}
	if _, err := leader.Server.LeaderReadIndex(make([]string, cluster.MaxReadTables+1)...); err == nil {
		t.Fatal("a read index of too many tables was answered")
	}
}
