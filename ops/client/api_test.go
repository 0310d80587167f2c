package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/api"
	"github.com/daguha/daguha/ops/client"
	"github.com/daguha/daguha/ops/service"
	"github.com/daguha/daguha/ops/wire"
)

func TestMain(m *testing.M) {
	clustertest.MainWithLeakCheck(m)
}

// realAPI is a client of the API of a one-server cluster in this process.
func realAPI(t *testing.T, tokens ...string) *client.Client {
	t.Helper()
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	svc := service.New(leader.Server, service.Options{})
	handler := api.New(svc, api.Options{Tokens: tokens})
	srv := httptest.NewServer(handler)
	t.Cleanup(svc.Close)
	t.Cleanup(srv.Close)
	token := ""
	if len(tokens) > 0 {
		token = tokens[0]
	}
	return client.New(srv.URL, client.Options{Token: token, Timeout: 30 * time.Second})
}

const etlDag = `name: etl
steps:
  - name: extract
    command: "true"
`

// The client and the server speak the same wire types: every call the
// client makes is understood, and every answer decodes.
func TestEveryCallAgainstTheRealAPI(t *testing.T) {
	ctx := context.Background()
	c := realAPI(t, "full-token")

	health, err := c.Health(ctx)
	if err != nil || health.Status != "ok" || health.Role != "leader" {
		t.Fatalf("health %+v %v", health, err)
	}
	if leader, err := c.Leader(ctx); err != nil || leader.Leader != health.Node {
		t.Fatalf("leader %+v %v", leader, err)
	}
	if peers, err := c.Peers(ctx); err != nil || len(peers) != 1 || !peers[0].Leader {
		t.Fatalf("peers %+v %v", peers, err)
	}
	if states, err := c.RaftPeers(ctx); err != nil || len(states) != 1 || states[0].State != "leader" {
		t.Fatalf("raft peers %+v %v", states, err)
	}
	if members, err := c.Members(ctx); err != nil || len(members) != 1 {
		t.Fatalf("members %+v %v", members, err)
	}
	if self, err := c.Self(ctx); err != nil || self.Node != health.Node || self.Raft.LastIndex == 0 {
		t.Fatalf("self %+v %v", self, err)
	}

	outcomes, err := c.PushDags(ctx, []wire.DagSource{{Name: "etl.yaml", Content: etlDag}})
	if err != nil || len(outcomes) != 1 || outcomes[0].Name != "etl" || outcomes[0].File != "etl.yaml" {
		t.Fatalf("push %+v %v", outcomes, err)
	}
	if dags, err := c.Dags(ctx); err != nil || len(dags) != 1 || dags[0].Steps[0].Name != "extract" || dags[0].Source != "" {
		t.Fatalf("dags %+v %v", dags, err)
	}
	if dag, err := c.Dag(ctx, "etl"); err != nil || dag.Source != etlDag {
		t.Fatalf("dag %+v %v", dag, err)
	}

	first, err := c.Enqueue(ctx, wire.EnqueueRequest{DagName: "etl", DagRunID: "run-1", Params: "A=1"})
	if err != nil || first != (wire.Enqueued{DagRunID: "run-1", Created: true}) {
		t.Fatalf("enqueue %+v %v", first, err)
	}
	again, err := c.Enqueue(ctx, wire.EnqueueRequest{DagName: "etl", DagRunID: "run-1", Params: "A=1"})
	if err != nil || again.Created {
		t.Fatalf("the same enqueue again %+v %v", again, err)
	}
	inline := &wire.InlineDag{Name: "inline", WorkerSelector: map[string]string{"gpu": "true"}, Steps: []wire.InlineStep{{Name: "a", Command: "true"}}}
	if _, err := c.Enqueue(ctx, wire.EnqueueRequest{DagRunID: "run-2", Dag: inline}); err != nil {
		t.Fatalf("enqueue an inline DAG: %v", err)
	}
	if _, err := c.Enqueue(ctx, wire.EnqueueRequest{DagRunID: "run-3", Yaml: etlDag, File: "etl.yaml"}); err != nil {
		t.Fatalf("enqueue a DAG file: %v", err)
	}

	run, err := c.Run(ctx, "run-1")
	if err != nil || run.Status != "queued" || run.Params != "A=1" || run.DagName != "etl" || run.Reason == "" {
		t.Fatalf("run %+v %v", run, err)
	}
	if waited, err := c.WaitRun(ctx, "run-1", run.ModifyIndex, 100*time.Millisecond); err != nil || waited.DagRunID != "run-1" {
		t.Fatalf("blocking query %+v %v", waited, err)
	}
	page, err := c.Runs(ctx, client.RunQuery{Limit: 2})
	if err != nil || len(page.Runs) != 2 || !page.Truncated || page.Next == "" {
		t.Fatalf("first page %+v %v", page, err)
	}
	rest, err := c.Runs(ctx, client.RunQuery{Limit: 2, After: page.Next})
	if err != nil || len(rest.Runs) != 1 || rest.Truncated {
		t.Fatalf("second page %+v %v", rest, err)
	}
	if only, err := c.Runs(ctx, client.RunQuery{DagName: "inline", Stale: true}); err != nil || len(only.Runs) != 1 || only.Runs[0].WorkerSelector["gpu"] != "true" {
		t.Fatalf("runs of one DAG %+v %v", only, err)
	}

	if err := c.Cancel(ctx, "run-1"); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if run, err := c.Run(ctx, "run-1"); err != nil || run.Status != "cancelled" {
		t.Fatalf("after cancel %+v %v", run, err)
	}
	if err := c.Cancel(ctx, "no-such-run"); client.StatusCode(err) != 404 {
		t.Fatalf("cancel of a missing run: %v, want 404", err)
	}
	// Dagu's verbs: dequeue a queued run, retry a finished one (not twice:
	// it is queued again), restart an ended one, stop a DAG's runs.
	if dequeued, err := c.Dequeue(ctx, "run-2"); err != nil || dequeued != (wire.Dequeued{DagRunID: "run-2", Status: "cancelled"}) {
		t.Fatalf("dequeue %+v %v", dequeued, err)
	}
	if _, err := c.Dequeue(ctx, "run-2"); client.StatusCode(err) != 409 {
		t.Fatalf("dequeue of a cancelled run: %v, want 409", err)
	}
	if _, err := c.Dequeue(ctx, "no-such-run"); client.StatusCode(err) != 404 {
		t.Fatalf("dequeue of a missing run: %v, want 404", err)
	}
	if retried, err := c.Retry(ctx, "run-1", ""); err != nil || retried != (wire.Retried{DagRunID: "run-1", Status: "queued"}) {
		t.Fatalf("retry %+v %v", retried, err)
	}
	if run, err := c.Run(ctx, "run-1"); err != nil || run.Status != "queued" || run.Retries != 1 || run.Queue != "etl" {
		t.Fatalf("after the retry %+v %v", run, err)
	}
	if _, err := c.Retry(ctx, "run-1", ""); client.StatusCode(err) != 409 || !strings.Contains(err.Error(), `run "run-1" is queued, not finished`) {
		t.Fatalf("retry of a queued run: %v, want 409 naming its status", err)
	}
	if _, err := c.Retry(ctx, "run-2", "nope"); client.StatusCode(err) != 400 {
		t.Fatalf("retry from a step the DAG lacks: %v, want 400", err)
	}
	restarted, err := c.Restart(ctx, "run-2", "run-2b")
	if err != nil || restarted != (wire.Restarted{DagRunID: "run-2b", Created: true, RestartedFrom: "run-2"}) {
		t.Fatalf("restart %+v %v", restarted, err)
	}
	if _, err := c.Restart(ctx, "run-2b", ""); client.StatusCode(err) != 409 {
		t.Fatalf("restart of a queued run: %v, want 409", err)
	}
	// A retry's body may be left out.
	if resp, err := c.Send(ctx, http.MethodPost, "/api/v2/dag-runs/run-2/retry", nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("retry without a body: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if stopped, err := c.CancelRunning(ctx, "etl"); err != nil || stopped == nil || len(stopped) != 0 {
		t.Fatalf("stop of a DAG with nothing running: %v %v", stopped, err)
	}
	if _, err := c.StepLog(ctx, "run-1", "extract", 0); client.StatusCode(err) != 501 {
		t.Fatalf("step log on a server that cannot reach workers: %v, want 501", err)
	}
	if workers, err := c.Workers(ctx, false); err != nil || workers.Workers == nil {
		t.Fatalf("workers %+v %v", workers, err)
	}

	if err := c.DeleteDag(ctx, "etl"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := c.Dag(ctx, "etl"); client.StatusCode(err) != 404 {
		t.Fatalf("a deleted DAG: %v, want 404", err)
	}
	if err := c.RemovePeer(ctx, ""); client.StatusCode(err) != 400 {
		t.Fatalf("remove-peer without id: %v, want 400", err)
	}

	unauthorized := client.New(c.Address(), client.Options{Timeout: 10 * time.Second})
	if _, err := unauthorized.Runs(ctx, client.RunQuery{}); client.StatusCode(err) != 401 {
		t.Fatalf("without the token: %v, want 401", err)
	}
}

// A snapshot saved through the client restores through it.
func TestSnapshotRoundTripAgainstTheRealAPI(t *testing.T) {
	ctx := context.Background()
	c := realAPI(t)
	if _, err := c.Enqueue(ctx, wire.EnqueueRequest{DagRunID: "kept", Dag: &wire.InlineDag{Name: "d", Steps: []wire.InlineStep{{Name: "a", Command: "true"}}}}); err != nil {
		t.Fatal(err)
	}
	stream, err := c.SaveSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	restored, err := c.RestoreSnapshot(ctx, stream)
	stream.Close()
	if err != nil || restored.RestoredBytes == 0 {
		t.Fatalf("restore %+v %v", restored, err)
	}
	if run, err := c.Run(ctx, "kept"); err != nil || run.DagName != "d" {
		t.Fatalf("after restore %+v %v", run, err)
	}
}
