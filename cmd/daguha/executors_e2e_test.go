package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

// Dagu's http and jq executors through a three-server cluster: a DAG file
// in each syntax (Dagu 1.x executor/config, current type/with) is pushed
// with `daguha dag push` and run; its http step calls a server the test
// started on loopback, its jq step reads the answer from the output
// variable, and the last step prints what jq found.
func TestHTTPAndJQExecutorsRunDagFilesInBothSyntaxes(t *testing.T) {
	t.Parallel() // waits more than it computes: see TestMain
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer e2e" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"items": []map[string]any{
			{"name": "a", "stock": 0}, {"name": r.URL.Query().Get("want"), "stock": 7},
		}})
	}))
	t.Cleanup(api.Close)
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	startProcess(t, c.NewWorker("exec-worker"))
	dir := t.TempDir()
	old := writeFile(t, filepath.Join(dir, "old.yaml"), `name: old-syntax
env:
  - TOKEN: e2e
steps:
  - name: fetch
    executor:
      type: http
      config:
        silent: true
        headers:
          Authorization: Bearer ${TOKEN}
        query:
          want: widget
    command: GET `+api.URL+`/items
    output: RESP
  - name: pick
    executor:
      type: jq
      config:
        raw: true
    command: '.items[] | select(.stock > 0) | .name'
    script: ${RESP}
    output: NAME
  - name: show
    command: 'echo "in stock: $NAME"'
`, 0o644)
	current := writeFile(t, filepath.Join(dir, "current.yaml"), `name: current-syntax
env:
  - TOKEN: e2e
steps:
  - name: fetch
    type: http
    with:
      method: GET
      url: `+api.URL+`/items
      silent: true
      headers:
        Authorization: Bearer ${TOKEN}
      query:
        want: gadget
    output: RESP
  - name: pick
    type: jq
    with:
      raw: true
      query: '.items[] | select(.stock > 0) | .name'
      input: ${RESP}
    output: NAME
  - name: show
    command: 'echo "in stock: $NAME"'
  - name: refused
    type: http
    with:
      url: `+api.URL+`/items
    continueOn:
      failure: true
`, 0o644)
	if out, errOut, code := runCLI(t, "dag", "push", "-address="+leader.HTTPAddr(), old, current); code != 0 {
		t.Fatalf("dag push: exit %d\n%s%s", code, out, errOut)
	}
	for _, tc := range []struct{ dag, want string }{{"old-syntax", "widget"}, {"current-syntax", "gadget"}} {
		var resp wire.Enqueued
		id := tc.dag + "-1"
		if code, err := leader.PostJSONTimeout("/api/v2/dag-runs", wire.EnqueueRequest{DagName: tc.dag, DagRunID: id}, &resp, 30*time.Second); err != nil || code != 201 {
			t.Fatalf("enqueue %s: HTTP %d %v", tc.dag, code, err)
		}
		run := waitRunStatus(t, c, id, "succeeded", 60*time.Second)
		steps := map[string]wire.Step{}
		for _, s := range run.Steps {
			steps[s.Name] = s
		}
		if got := steps["show"].OutputTail; got != "in stock: "+tc.want+"\n" {
			t.Errorf("%s: show printed %q, want in stock: %s (steps %+v)", tc.dag, got, tc.want, run.Steps)
		}
		if r, ok := steps["refused"]; tc.dag == "current-syntax" && (!ok || r.Status != "failed" || !strings.Contains(r.Error, "401")) {
			t.Errorf("the request without a token: %+v, want failed with status 401", r)
		}
	}
}
