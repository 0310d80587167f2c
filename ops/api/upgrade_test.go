package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/buildinfo"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/fsm"
	"github.com/daguha/daguha/ops/api"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// While a server of the Raft configuration is not known to run a release
// that reads retry and dequeue (here a non-voter gossip has never heard
// of, as a server that is down looks), every route that retries or
// dequeues answers 409 with the leader's refusal, which names the
// command, the schema it needs and the server; nothing changes.
func TestRetryAndDequeueRefusedWhileAServerIsNotUpgraded(t *testing.T) {
	env := startDagu(t, api.Options{})
	request := `{"dag": {"name": "etl", "steps": [{"name": "s", "command": "true"}]}, "dag_run_id": "r1"}`
	if code, body := env.do(t, "POST", "/api/v2/dag-runs", request); code != http.StatusCreated {
		t.Fatalf("enqueue: HTTP %d %s", code, body)
	}
	if err := env.leader.Raft().AddNonvoter("ghost", "127.0.0.1:1", 0, 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	const retryRefusal = "retry needs every server at state schema 1 or later (daguha 0.1.0); ghost is not known in gossip, so what it runs is unknown: finish upgrading the servers first"
	const dequeueRefusal = "dequeue needs every server at state schema 1 or later (daguha 0.1.0); ghost is not known in gossip, so what it runs is unknown: finish upgrading the servers first"
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/api/v2/dag-runs/r1/retry", `{}`, retryRefusal},
		{"POST", "/api/v2/dag-runs/r1/dequeue", ``, dequeueRefusal},
		{"POST", "/api/v1/dag-runs/etl/r1/retry", `{"dagRunId": "r1"}`, retryRefusal},
		{"POST", "/api/v2/dag-runs/etl/r1/retry", `{"dagRunId": "r1"}`, retryRefusal},
		{"GET", "/api/v1/dag-runs/etl/r1/dequeue", ``, dequeueRefusal},
		{"GET", "/api/v2/dag-runs/etl/r1/dequeue", ``, dequeueRefusal},
	} {
		code, raw := env.do(t, c.method, c.path, c.body)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("%s %s: %s", c.method, c.path, raw)
		}
		message, _ := body["message"].(string)
		if message == "" {
			message, _ = body["error"].(string)
		}
		if code != http.StatusConflict || message != c.want {
			t.Errorf("%s %s: HTTP %d %v\nwant 409 with %q", c.method, c.path, code, body, c.want)
		}
	}
	_, raw := env.do(t, "GET", "/api/v2/dag-runs/r1", "")
	var run map[string]any
	if err := json.Unmarshal(raw, &run); err != nil || run["status"] != "queued" {
		t.Fatalf("the run after the refusals: %v, want it still queued", run)
	}
}

// /api/v2/cluster/peers and the operator's peers show what each server
// runs, /api/v2/workers what each worker runs, all from gossip: a worker
// in the gossip pool shows its version, one the servers know only from
// its registration shows "unknown", as does the non-voter gossip has
// never heard of.
func TestPeersAndWorkersShowVersionsFromGossip(t *testing.T) {
	env := startDagu(t, api.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var serverGossip string
	for _, m := range env.leader.Members() {
		serverGossip = m.Addr
	}
	member, err := cluster.JoinAsWorker(cluster.WorkerMemberConfig{
		NodeName: "w-gossip", BindAddr: "127.0.0.1", AdvertiseAddr: "127.0.0.1", GossipPort: clustertest.FreePorts(t, 1)[0],
		Join: []string{serverGossip}, JoinRetryInterval: 100 * time.Millisecond, GossipTimings: cluster.GossipLocal,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer member.Shutdown(time.Second)
	if _, _, err := env.leader.Apply(ctx, fsm.RegisterWorkersType, &daguhav1.RegisterWorkersCommand{Workers: []*daguhav1.Worker{
		{Id: "w-gossip", MaxActiveRuns: 1}, {Id: "w-static", MaxActiveRuns: 1},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := env.leader.Raft().AddNonvoter("ghost", "127.0.0.1:1", 0, 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	own := cluster.LocalVersions()
	clustertest.WaitFor(t, 10*time.Second, "the workers' versions", func() (bool, string) {
		_, raw := env.do(t, "GET", "/api/v2/workers", "")
		var body wire.Workers
		if err := json.Unmarshal(raw, &body); err != nil {
			return false, err.Error()
		}
		got := map[string]string{}
		for _, w := range body.Workers {
			got[w.ID] = w.Version
		}
		return got["w-gossip"] == buildinfo.Version() && got["w-static"] == cluster.UnknownVersion, string(raw)
	})
	for _, path := range []string{"/api/v2/cluster/peers", "/api/v2/operator/raft/peers"} {
		code, raw := env.do(t, "GET", path, "")
		var body wire.Peers
		if err := json.Unmarshal(raw, &body); err != nil || code != http.StatusOK || len(body.Peers) != 2 {
			t.Fatalf("%s: HTTP %d %s", path, code, raw)
		}
		for _, p := range body.Peers {
			want := own
			if p.ID == "ghost" {
				want = cluster.Versions{Version: cluster.UnknownVersion}
			}
			if p.Versions != want || (p.ID != "ghost" && p.Version != buildinfo.Version()) {
				t.Errorf("%s: %s shows %+v, want %+v", path, p.ID, p.Versions, want)
			}
		}
	}
}
