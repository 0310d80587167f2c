package api_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch/valid"
	"github.com/daguha/daguha/ops/api"
)

// fuzzEndpoints are the requests that carry a body, and those that change
// state by a name in the path (cancel, delete): the fuzzer picks one with
// a byte. New ones go at the end, so the corpus keeps its meaning.
var fuzzEndpoints = []struct{ method, path string }{
	{"POST", "/api/v2/dag-runs"},
	{"POST", "/api/v2/dags"},
	{"POST", "/api/v2/dag-runs/{}/cancel"},
	{"POST", "/api/v2/operator/raft/remove-peer"},
	{"POST", "/api/v2/operator/raft/transfer-leadership"},
	{"POST", "/api/v2/operator/snapshot"},
	{"DELETE", "/api/v2/dags/{}"},
}

type recorded struct {
	code int
	body map[string]any
	raw  []byte
}

func serve(t *testing.T, h http.Handler, method, path string, body []byte) recorded {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	out := recorded{code: w.Code, raw: w.Body.Bytes()}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: HTTP %d with content type %q: %q", method, path, w.Code, ct, out.raw)
	}
	if err := json.Unmarshal(out.raw, &out.body); err != nil {
		t.Fatalf("%s %s: HTTP %d, body is not a JSON object: %q", method, path, w.Code, out.raw)
	}
	return out
}

// FuzzAPIBodies: request bodies are outside input to every server. The
// real handlers run over a real one-server cluster: no body may panic or
// get a 5xx; a refused one gets a 4xx that says why; an accepted one can
// be read back.
func FuzzAPIBodies(f *testing.F) {
	add := func(endpoint uint8, id, body string) { f.Add(endpoint, id, []byte(body)) }
	add(0, "", `{"dag": {"name": "etl", "steps": [{"name": "s", "command": "true"}]}, "dag_run_id": "r1", "params": "A=1"}`)
	add(0, "", `{"dag_name": "etl", "dag": {"name": "etl", "workerSelector": {"gpu": "true"}, "steps": [{"name": "a", "command": "x"}, {"name": "b", "command": "y"}]}}`)
	add(0, "", `{"dag": {"name": "etl", "worker_selector": {"a=b": "1", "gpu": "x,y"}, "steps": []}}`)
	add(0, "", `{"yaml": "name: y\nsteps:\n  - name: s\n    command: echo hi\n", "file": "y.yaml", "dag_run_id": "r2"}`)
	add(0, "", `{"dag_name": "stored", "params": "X=\"open"}`)
	add(0, "", `{"dag_name": "etl", "parent_dag_run_id": "r1", "dag_run_id": "c1"}`)
	add(0, "", `{"dagname": "x"} {}`)
	add(0, "", `{"dag": {"name": "etl", "steps": [{"name": "s", "command": "true"}]}, "dag_run_id": ".."}`)
	add(1, "", `{"files": [{"name": "stored.yaml", "content": "name: stored\nparams: X=1\nworkerSelector:\n  tier: gold\nsteps:\n  - name: s\n    command: \"true\"\n"}]}`)
	add(1, "", `{"files": [{"name": "a.yaml", "content": "steps:\n  - name: s\n    run: b\n"}, {"name": "b.yaml", "content": "steps:\n  - name: s\n    command: x\n"}]}`)
	add(1, "", `{"files": []}`)
	add(2, "r1", ``)
	add(2, "nope", ``)
	add(3, "", `{"id": "server-9"}`)
	add(3, "", `{"id": "server-0"}`)
	add(4, "", `{"id": "server-0"}`)
	add(4, "", ``)
	add(5, "", "DAGUHA")
	add(6, "stored", "")
	add(6, "nope", "")
	// One cluster for every input of this process: a cluster per input
	// would be thousands of times slower.
	c := clustertest.StartInProc(f, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	fixed := time.Date(2026, 2, 11, 12, 0, 0, 0, time.UTC)
	h := newAPI(f, leader.Server, func() time.Time { return fixed }, api.Options{})
	f.Fuzz(func(t *testing.T, endpoint uint8, id string, body []byte) {
		e := fuzzEndpoints[int(endpoint)%len(fuzzEndpoints)]
		if strings.Contains(e.path, "{}") && (id == "" || id == "." || id == "..") {
			// An empty or dot segment is cleaned out of the URL (ServeMux
			// answers with a redirect), so it is no run id: enqueue
			// refuses it.
			return
		}
		path := strings.ReplaceAll(e.path, "{}", url.PathEscape(id))
		got := serve(t, h, e.method, path, body)
		msg, _ := got.body["error"].(string)
		switch {
		case got.code >= 500:
			t.Fatalf("%s %s %q: HTTP %d for a client's input: %s", e.method, path, body, got.code, got.raw)
		case got.code >= 400:
			if strings.TrimSpace(msg) == "" {
				t.Fatalf("%s %s %q: HTTP %d without a message: %s", e.method, path, body, got.code, got.raw)
			}
			return
		case got.code < 200 || got.code > 299:
			t.Fatalf("%s %s %q: HTTP %d", e.method, path, body, got.code)
		}
		switch e.path {
		case "/api/v2/dag-runs":
			runID, _ := got.body["dag_run_id"].(string)
			back := serve(t, h, "GET", "/api/v2/dag-runs/"+url.PathEscape(runID), nil)
			if back.code != http.StatusOK || back.body["dag_run_id"] != runID {
				t.Fatalf("enqueued %q as %s, read back HTTP %d %s", body, runID, back.code, back.raw)
			}
			var req struct {
				Params string `json:"params"`
			}
			_ = json.Unmarshal(body, &req)
			if back.body["params"] != req.Params {
				t.Fatalf("enqueued params %q, read back %v", req.Params, back.body["params"])
			}
			// The run waits in a queue only a worker with these labels
			// serves: one must be able to start with them.
			selector := map[string]string{}
			for k, v := range back.body["worker_selector"].(map[string]any) {
				selector[k] = v.(string)
			}
			labels, err := valid.ParseLabels(valid.FormatLabels(selector))
			if err != nil || !maps.Equal(labels, selector) {
				t.Fatalf("run %s (%q) was accepted with selector %q, which no worker's --labels can give (%v, %v)",
					runID, body, valid.FormatLabels(selector), labels, err)
			}
		case "/api/v2/dags":
			for _, d := range got.body["dags"].([]any) {
				name, _ := d.(map[string]any)["name"].(string)
				back := serve(t, h, "GET", "/api/v2/dags/"+url.PathEscape(name), nil)
				if back.code != http.StatusOK || back.body["name"] != name {
					t.Fatalf("pushed %q, read back HTTP %d %s", name, back.code, back.raw)
				}
			}
		case "/api/v2/dags/{}":
			if back := serve(t, h, "GET", path, nil); back.code != http.StatusNotFound {
				t.Fatalf("deleted DAG %q, read back HTTP %d %s", id, back.code, back.raw)
			}
		case "/api/v2/dag-runs/{}/cancel":
			back := serve(t, h, "GET", path[:len(path)-len("/cancel")], nil)
			if back.code != http.StatusOK || back.body["status"] != "cancelled" && back.body["cancel_requested"] != true {
				t.Fatalf("cancelled %q, read back HTTP %d %s", id, back.code, back.raw)
			}
		}
	})
}
