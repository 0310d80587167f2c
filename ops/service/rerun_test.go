package service_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/fsm"
	"github.com/daguha/daguha/ops/service"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's verbs on runs through the service: retry of a failed run (and
// not of one still queued), dequeue, restart of an ended run, and a stop
// of every running run of one DAG, each refusal with its kind.
func TestRetryDequeueRestartAndStopOfADag(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	svc := service.New(leader.Server, service.Options{})
	t.Cleanup(svc.Close)
	ctx := context.Background()
	state := func(id string) *daguhav1.Run {
		t.Helper()
		run, err := leader.Server.FSM().State().Run(id)
		if err != nil || run == nil {
			t.Fatalf("run %s: %v %v", id, run, err)
		}
		return run
	}
	grant := func(id string, attempt uint32) uint64 {
		t.Helper()
		result, _, err := leader.Server.Apply(ctx, fsm.GrantLeasesType, &daguhav1.GrantLeasesCommand{Grants: []*daguhav1.Grant{
			{RunId: id, WorkerId: "w", Attempt: attempt, MaxActiveRuns: 10, NowUnixNano: 1}}})
		if err != nil || !result.(*daguhav1.GrantLeasesResult).GetOutcomes()[0].GetGranted() {
			t.Fatalf("grant %s: %v %v", id, result, err)
		}
		return result.(*daguhav1.GrantLeasesResult).GetOutcomes()[0].GetFencingToken()
	}
	check := func(what string, err error, kind service.Kind, message string) {
		t.Helper()
		if err == nil || service.KindOf(err) != kind || !strings.Contains(err.Error(), message) {
			t.Errorf("%s: %v (kind %d), want kind %d with %q", what, err, service.KindOf(err), kind, message)
		}
	}
	etl := &service.InlineDag{Name: "etl", Steps: []service.InlineStep{{Name: "extract", Command: "true"}, {Name: "load", Command: "false"}}}
	for _, id := range []string{"r1", "r2", "r3"} {
		if _, err := svc.Enqueue(ctx, service.EnqueueRequest{Dag: etl, DagRunID: id, Params: "A=1"}); err != nil {
			t.Fatalf("enqueue %s: %v", id, err)
		}
	}
	check("retry of a queued run", svc.Retry(ctx, "r1", ""), service.Conflict, `run "r1" is queued, not finished`)
	check("retry of no run", svc.Retry(ctx, "ghost", ""), service.NotFound, `run "ghost" does not exist`)

	// r1 fails at load; its retry keeps extract and is attempt 2.
	token := grant("r1", 1)
	if _, _, err := leader.Server.Apply(ctx, fsm.FinishRunsType, &daguhav1.FinishRunsCommand{Finishes: []*daguhav1.Finish{{
		RunId: "r1", FencingToken: token, Status: daguhav1.RunStatus_RUN_STATUS_FAILED, Error: "step load failed", NowUnixNano: 2,
		Steps: []*daguhav1.StepState{{Name: "extract", Status: daguhav1.StepStatus_STEP_STATUS_SUCCEEDED}, {Name: "load", Status: daguhav1.StepStatus_STEP_STATUS_FAILED}},
	}}}); err != nil {
		t.Fatal(err)
	}
	check("retry from a step the DAG lacks", svc.Retry(ctx, "r1", "transform"), service.Invalid, `DAG "etl" has no step named "transform"`)
	check("restart of a run that has not ended", func() error { _, err := svc.Restart(ctx, service.RestartRequest{ID: "r2"}); return err }(),
		service.Conflict, `run "r2" is queued: it must end before it is restarted`)
	restarted, err := svc.Restart(ctx, service.RestartRequest{ID: "r1", NewID: "r1-again"})
	if err != nil || !restarted.Created || restarted.RunID != "r1-again" {
		t.Fatalf("restart of the failed run: %+v %v", restarted, err)
	}
	if again := state("r1-again"); again.GetParams() != "A=1" || again.GetDagName() != "etl" || len(again.GetDag().GetSteps()) != 2 ||
		again.GetRootDagRunId() != "r1-again" || again.GetStatus() != daguhav1.RunStatus_RUN_STATUS_QUEUED {
		t.Fatalf("the restarted run: %v", again)
	}
	if err := svc.Retry(ctx, "r1", ""); err != nil {
		t.Fatalf("retry of the failed run: %v", err)
	}
	if run := state("r1"); run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_QUEUED || len(run.GetKeptSteps()) != 1 || run.GetKeptSteps()[0].GetName() != "extract" {
		t.Fatalf("after the retry: %v", run)
	}
	if grant("r1", 2) == token {
		t.Fatal("the retry's attempt has the first attempt's fencing token")
	}

	// Dequeue ends a queued run cancelled; a second dequeue is refused.
	if err := svc.Dequeue(ctx, "r2"); err != nil {
		t.Fatalf("dequeue r2: %v", err)
	}
	if run := state("r2"); run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_CANCELLED {
		t.Fatalf("the dequeued run: %v", run)
	}
	check("dequeue of a cancelled run", svc.Dequeue(ctx, "r2"), service.Conflict, `run "r2" is not queued but cancelled`)
	check("dequeue of a running run", svc.Dequeue(ctx, "r1"), service.Conflict, `run "r1" is not queued but running`)
	check("dequeue of no run", svc.Dequeue(ctx, "ghost"), service.NotFound, `run "ghost" does not exist`)

	// A stop of the DAG asks its running runs (r1 and r3) to stop, and
	// leaves its queued one (r1-again) and other DAGs' runs alone.
	if _, err := svc.Enqueue(ctx, service.EnqueueRequest{Dag: &service.InlineDag{Name: "other", Steps: etl.Steps}, DagRunID: "o1"}); err != nil {
		t.Fatal(err)
	}
	grant("r3", 1)
	grant("o1", 1)
	stopped, err := svc.CancelRunning(ctx, "etl")
	if err != nil || !slices.Equal(stopped, []string{"r1", "r3"}) {
		t.Fatalf("stop of etl: %v %v, want r1 and r3", stopped, err)
	}
	for id, asked := range map[string]bool{"r1": true, "r3": true, "o1": false} {
		if got := state(id).GetCancelRequested(); got != asked {
			t.Errorf("run %s: cancel requested %v, want %v", id, got, asked)
		}
	}
	if run := state("r1-again"); run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_QUEUED {
		t.Errorf("the queued run of etl: %v", run)
	}
	if stopped, err := svc.CancelRunning(ctx, "idle"); err != nil || len(stopped) != 0 {
		t.Errorf("stop of a DAG with no running run: %v %v", stopped, err)
	}
	_, err = svc.CancelRunning(ctx, "bad name!")
	check("stop of a DAG name that cannot be", err, service.Invalid, "dag name")
}
