package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/api"
	"github.com/daguha/daguha/ops/service"
)

func TestMain(m *testing.M) {
	clustertest.MainWithLeakCheck(m)
}

// newAPI is the API over a service of server c (with the clock now, nil
// for the real one), the service closed when the test ends.
func newAPI(t testing.TB, c *cluster.Server, now func() time.Time, options api.Options) *api.Server {
	t.Helper()
	svc := service.New(c, service.Options{Now: now})
	t.Cleanup(svc.Close)
	return api.New(svc, options)
}

func startAPI(t *testing.T) *httptest.Server {
	t.Helper()
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	fixed := time.Date(2026, 2, 11, 12, 0, 0, 0, time.UTC)
	handler := newAPI(t, leader.Server, func() time.Time { return fixed }, api.Options{})
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *httptest.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: content type %q, body %s", method, path, ct, data)
	}
	var out map[string]any
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&out); err != nil {
		t.Fatalf("%s %s: body is not JSON: %s", method, path, data)
	}
	return resp.StatusCode, out
}

func TestEnqueueValidationNamesTheBadInput(t *testing.T) {
	srv := startAPI(t)
	cases := []struct {
		name, body, want string
	}{
		{"unknown field", `{"dagname": "x"}`, `unknown field "dagname"`},
		{"missing DAG name", `{"params": "A=1"}`, "dag_name is required"},
		{"inline DAG without steps", `{"dag": {"name": "etl"}}`, "dag.steps: a DAG needs at least one step"},
		{"step without command", `{"dag": {"name": "etl", "steps": [{"name": "a"}]}}`, `dag.steps[0] ("a") has no command`},
		{"duplicate step names", `{"dag": {"name": "etl", "steps": [{"name": "a", "command": "x"}, {"name": "a", "command": "y"}]}}`, `dag.steps[1].name "a" is used by an earlier step`},
		{"selector key with '='", `{"dag": {"name": "etl", "workerSelector": {"a=b": "1"}, "steps": [{"name": "a", "command": "x"}]}}`, `dag.workerSelector: label key "a=b": must not contain '=' or ','`},
		{"selector value with ','", `{"dag": {"name": "etl", "workerSelector": {"gpu": "true,zone=eu"}, "steps": [{"name": "a", "command": "x"}]}}`, `dag.workerSelector: label value "true,zone=eu" of "gpu": must not contain '=' or ','`},
		{"selector key with a space around it", `{"dag": {"name": "etl", "workerSelector": {" gpu": "true"}, "steps": [{"name": "a", "command": "x"}]}}`, `label key " gpu": must not start or end with a space`},
		{"selector value with '='", `{"dag": {"name": "etl", "workerSelector": {"gpu": "a=b"}, "steps": [{"name": "a", "command": "x"}]}}`, `label value "a=b" of "gpu": must not contain '=' or ','`},
		{"selector with a control character", `{"dag": {"name": "etl", "workerSelector": {"gpu": "a\u0000"}, "steps": [{"name": "a", "command": "x"}]}}`, `label value "a\x00" of "gpu": must not contain control characters`},
		{"both selector spellings", `{"dag": {"name": "etl", "workerSelector": {"a": "1"}, "worker_selector": {"a": "1"}, "steps": [{"name": "a", "command": "x"}]}}`, "both workerSelector and worker_selector"},
		{"names that differ", `{"dag_name": "x", "dag": {"name": "etl", "steps": [{"name": "a", "command": "x"}]}}`, `dag_name "x" and dag.name "etl" differ`},
		{"bad DAG name", `{"dag_name": "no spaces"}`, `dag_name: DAG name "no spaces": must be 1-128 letters`},
		{"bad run id", `{"dag_name": "etl", "dag_run_id": "a/b"}`, `dag_run_id: run id "a/b": must be 1-128`},
		{"run id that a URL cleans away", `{"dag_name": "etl", "dag_run_id": ".."}`, `dag_run_id: run id "..": must be 1-128 letters, digits, '_', '.', ':' or '-', and not . or ..`},
		{"bad run id with a DAG file", `{"yaml": "steps:\n  - name: s\n    command: x\n", "dag_run_id": "a b"}`, `dag_run_id: run id "a b": must be`},
		// The rules of package valid, as DAG files and worker flags have them.
		{"DAG name with a leading dash", `{"dag_name": "-x"}`, `DAG name "-x": must be 1-128 letters`},
		{"DAG name dot dot", `{"dag_name": ".."}`, `DAG name "..": must be 1-128 letters`},
		{"selector with an empty value", `{"dag": {"name": "etl", "workerSelector": {"gpu": ""}, "steps": [{"name": "a", "command": "x"}]}}`, `label value "" of "gpu": must not be empty`},
		{"selector value over 63 bytes", `{"dag": {"name": "etl", "workerSelector": {"zone": "` + strings.Repeat("z", 64) + `"}, "steps": [{"name": "a", "command": "x"}]}}`, `must be at most 63 bytes`},
		{"selector value of 900 KB", `{"dag": {"name": "etl", "workerSelector": {"zone": "` + strings.Repeat("z", 900_000) + `"}, "steps": [{"name": "a", "command": "x"}]}}`, `(900000 bytes) of "zone": must be at most 63 bytes`},
		{"selector with 65 entries", `{"dag": {"name": "etl", "workerSelector": {` + jsonLabels(65) + `}, "steps": [{"name": "a", "command": "x"}]}}`, `dag.workerSelector: 65 labels, more than the limit of 64`},
		{"step name with a newline", `{"dag": {"name": "etl", "steps": [{"name": "a\nb", "command": "x"}]}}`, `dag.steps[0].name: step name "a\nb": must not contain control characters`},
		{"too many steps", `{"dag": {"name": "etl", "steps": [` + jsonSteps(1001) + `]}}`, "dag.steps: 1001 steps, more than the limit of 1000 per DAG"},
		{"command over 64 KiB", `{"dag": {"name": "etl", "steps": [{"name": "a", "command": "` + strings.Repeat("c", 64<<10+1) + `"}]}}`, `dag.steps[0] ("a"): command: 65537 bytes, more than the limit of 65536`},
		{"params over 64 KiB", `{"dag_name": "etl", "params": "` + strings.Repeat("p", 64<<10+1) + `"}`, "params: 65537 bytes, more than the limit of 65536"},
		{"params over 64 KiB with a DAG file", `{"yaml": "steps:\n  - name: s\n    command: x\n", "params": "` + strings.Repeat("p", 64<<10+1) + `"}`, "params: 65537 bytes"},
		{"bad parent run id", `{"dag_name": "etl", "parent_dag_run_id": "a/b"}`, `parent_dag_run_id: run id "a/b"`},
		{"not JSON", `dag_name=etl`, "request body"},
		{"two documents", `{"dag_name": "etl"} {}`, "more than one JSON value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, srv, "POST", "/api/v2/dag-runs", tc.body)
			if code != http.StatusBadRequest {
				t.Fatalf("HTTP %d, want 400; body %v", code, body)
			}
			if msg, _ := body["error"].(string); !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not name %q", msg, tc.want)
			}
		})
	}
}

// Regression: the retry of an enqueue whose commit outlived its leader
// reaches a server whose clock has moved on; the enqueue time it picks
// differs from the first one's, and the answer is still "exists", not a
// conflict.
func TestEnqueueRetriedLaterIsNotAConflict(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	var mu sync.Mutex
	clock := time.Date(2026, 2, 11, 12, 0, 0, 0, time.UTC)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	}
	handler := newAPI(t, leader.Server, now, api.Options{})
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	request := `{"dag": {"name": "etl", "steps": [{"name": "s", "command": "true"}]}, "dag_run_id": "r1"}`
	if code, body := call(t, srv, "POST", "/api/v2/dag-runs", request); code != http.StatusCreated {
		t.Fatalf("first enqueue: HTTP %d %v", code, body)
	}
	_, first := call(t, srv, "GET", "/api/v2/dag-runs/r1", "")
	if code, body := call(t, srv, "POST", "/api/v2/dag-runs", request); code != http.StatusOK || body["created"] != false {
		t.Fatalf("the retry: HTTP %d %v, want 200 and created false", code, body)
	}
	if _, after := call(t, srv, "GET", "/api/v2/dag-runs/r1", ""); after["enqueued_at"] != first["enqueued_at"] {
		t.Fatalf("the retry changed the enqueue time from %v to %v", first["enqueued_at"], after["enqueued_at"])
	}
}

func TestEnqueueIsIdempotentByRunID(t *testing.T) {
	srv := startAPI(t)
	code, body := call(t, srv, "POST", "/api/v2/dag-runs", `{"dag": {"name": "etl", "steps": [{"name": "s", "command": "true"}]}, "dag_run_id": "r1", "params": "A=1"}`)
	if code != http.StatusCreated || body["dag_run_id"] != "r1" {
		t.Fatalf("first enqueue: HTTP %d %v", code, body)
	}
	code, body = call(t, srv, "POST", "/api/v2/dag-runs", `{"dag": {"name": "etl", "steps": [{"name": "s", "command": "true"}]}, "dag_run_id": "r1", "params": "A=1"}`)
	if code != http.StatusOK || body["dag_run_id"] != "r1" || body["created"] != false {
		t.Fatalf("same enqueue again: HTTP %d %v", code, body)
	}
	code, body = call(t, srv, "POST", "/api/v2/dag-runs", `{"dag": {"name": "report", "steps": [{"name": "s", "command": "true"}]}, "dag_run_id": "r1"}`)
	if msg, _ := body["error"].(string); code != http.StatusConflict || !strings.Contains(msg, "etl") || !strings.Contains(msg, "report") {
		t.Fatalf("conflicting enqueue: HTTP %d %v", code, body)
	}
	code, body = call(t, srv, "GET", "/api/v2/dag-runs/r1", "")
	if code != http.StatusOK || body["status"] != "queued" || body["dag_name"] != "etl" || body["params"] != "A=1" ||
		body["enqueued_at"] != "2026-02-11T12:00:00Z" || body["root_dag_run_id"] != "r1" || body["root_dag_run_name"] != "etl" || body["parent_dag_run_id"] != "" {
		t.Fatalf("read back: HTTP %d %v", code, body)
	}
}

func TestEnqueueWithoutRunIDGetsOne(t *testing.T) {
	srv := startAPI(t)
	code, body := call(t, srv, "POST", "/api/v2/dag-runs", `{"dag": {"name": "etl", "steps": [{"name": "s", "command": "true"}]}}`)
	id, _ := body["dag_run_id"].(string)
	if code != http.StatusCreated || len(id) != 36 {
		t.Fatalf("enqueue without id: HTTP %d %v", code, body)
	}
	if code, body := call(t, srv, "GET", "/api/v2/dag-runs/"+id+"?stale", ""); code != http.StatusOK || body["dag_run_id"] != id {
		t.Fatalf("read the generated id back: HTTP %d %v", code, body)
	}
}

func TestNotFoundAnswersNameWhatIsMissing(t *testing.T) {
	srv := startAPI(t)
	if code, body := call(t, srv, "GET", "/api/v2/dag-runs/nope", ""); code != 404 || !strings.Contains(body["error"].(string), `"nope"`) {
		t.Fatalf("missing run: HTTP %d %v", code, body)
	}
	// Not UTF-8: no command can carry the name (was a 500, found by FuzzAPIBodies).
	if code, body := call(t, srv, "POST", "/api/v2/dag-runs/%9C/cancel", ""); code != 404 || !strings.Contains(body["error"].(string), `"\x9c"`) {
		t.Fatalf("cancel a run id that is not UTF-8: HTTP %d %v", code, body)
	}
	if code, body := call(t, srv, "DELETE", "/api/v2/dags/%9C", ""); code != 404 || !strings.Contains(body["error"].(string), `"\x9c"`) {
		t.Fatalf("delete a DAG name that is not UTF-8: HTTP %d %v", code, body)
	}
	if code, body := call(t, srv, "GET", "/api/v2/nothing-here", ""); code != 404 || !strings.Contains(body["error"].(string), "/api/v2/nothing-here") {
		t.Fatalf("unknown endpoint: HTTP %d %v", code, body)
	}
}

func TestClusterEndpointsOnASingleServer(t *testing.T) {
	srv := startAPI(t)
	code, health := call(t, srv, "GET", "/api/v2/health", "")
	if code != 200 || health["role"] != "leader" || health["status"] != "ok" || health["leader"] != health["node"] {
		t.Fatalf("health: HTTP %d %v", code, health)
	}
	code, leader := call(t, srv, "GET", "/api/v2/cluster/leader", "")
	if code != 200 || leader["leader"] != health["node"] || leader["address"] == "" {
		t.Fatalf("leader: HTTP %d %v", code, leader)
	}
	code, peers := call(t, srv, "GET", "/api/v2/cluster/peers", "")
	list, _ := peers["peers"].([]any)
	if code != 200 || len(list) != 1 || list[0].(map[string]any)["leader"] != true || list[0].(map[string]any)["voter"] != true {
		t.Fatalf("peers: HTTP %d %v", code, peers)
	}
}

func TestTokensGuardTheAPIButNotHealth(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	handler := newAPI(t, leader.Server, nil, api.Options{Tokens: []string{"s3cret", "rotated"}, ReadTokens: []string{"reader"}})
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	get := func(path, token string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("GET %s: body is not JSON: %v", path, err)
		}
		return resp.StatusCode, body
	}
	for _, path := range []string{"/api/v2/workers", "/api/v2/dag-runs", "/api/v2/cluster/peers"} {
		if code, body := get(path, ""); code != 401 || !strings.Contains(body["error"].(string), "missing API token") {
			t.Errorf("%s without a token: HTTP %d %v", path, code, body)
		}
		if code, body := get(path, "wrong"); code != 401 || !strings.Contains(body["error"].(string), "invalid API token") {
			t.Errorf("%s with a wrong token: HTTP %d %v", path, code, body)
		}
		for _, token := range []string{"s3cret", "rotated"} {
			if code, body := get(path, token); code != 200 {
				t.Errorf("%s with token %q: HTTP %d %v", path, token, code, body)
			}
		}
	}
	if code, body := get("/api/v2/health", ""); code != 200 {
		t.Fatalf("health without a token: HTTP %d %v", code, body)
	}
	if code, body := get("/api/v2/dag-runs", "reader"); code != 200 {
		t.Fatalf("a read with the read-only token: HTTP %d %v", code, body)
	}
	post := func(token string) (int, string) {
		req, _ := http.NewRequest("POST", srv.URL+"/api/v2/dag-runs", strings.NewReader(`{"dag": {"name": "etl", "steps": [{"name": "s", "command": "true"}]}}`))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	if code, body := post("reader"); code != 403 || !strings.Contains(body, "may only read") {
		t.Fatalf("a write with the read-only token: HTTP %d %s", code, body)
	}
	if code, _ := post(""); code != 401 {
		t.Fatalf("a write without a token: HTTP %d", code)
	}
	if code, body := post("s3cret"); code != 201 {
		t.Fatalf("a write with the full token: HTTP %d %s", code, body)
	}
}

// jsonLabels is n selector entries as JSON object members.
func jsonLabels(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d": "v"`, i)
	}
	return strings.Join(parts, ", ")
}

// jsonSteps is n inline steps as JSON array items.
func jsonSteps(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"name": "s%d", "command": "true"}`, i)
	}
	return strings.Join(parts, ", ")
}
