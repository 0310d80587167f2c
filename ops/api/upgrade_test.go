package api_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/daguha/daguha/ops/api"
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
