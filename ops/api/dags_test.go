package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/daguha/daguha/ops/wire"
)

// The seed's "Route Tasks to Workers" example: two DAGs in one file.
const pipelineYAML = `name: distributed-pipeline
steps:
  - name: prepare
    command: echo preparing
  - name: train
    run: train-model
    depends: prepare
---
name: train-model
workerSelector:
  gpu: "true"
steps:
  - name: train
    command: python train.py
`

func pushBody(t *testing.T, files map[string]string) string {
	t.Helper()
	var push wire.DagPush
	for name, content := range files {
		push.Files = append(push.Files, wire.DagSource{Name: name, Content: content})
	}
	data, err := json.Marshal(push)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestPushListShowAndDeleteDags(t *testing.T) {
	srv := startAPI(t)
	code, body := call(t, srv, "POST", "/api/v2/dags", pushBody(t, map[string]string{"pipeline.yaml": pipelineYAML}))
	if code != http.StatusOK {
		t.Fatalf("push: HTTP %d %v", code, body)
	}
	if got := fmt.Sprint(body["dags"]); !strings.Contains(got, "distributed-pipeline") || !strings.Contains(got, "created") {
		t.Fatalf("push outcome %v", got)
	}
	// The same content again changes nothing.
	_, body = call(t, srv, "POST", "/api/v2/dags", pushBody(t, map[string]string{"pipeline.yaml": pipelineYAML}))
	if got := fmt.Sprint(body["dags"]); !strings.Contains(got, "unchanged") {
		t.Fatalf("second push outcome %v", got)
	}
	code, body = call(t, srv, "GET", "/api/v2/dags", "")
	if code != http.StatusOK || !strings.Contains(fmt.Sprint(body["dags"]), "local_dags:[train-model]") {
		t.Fatalf("list: HTTP %d %v", code, body)
	}
	code, body = call(t, srv, "GET", "/api/v2/dags/distributed-pipeline", "")
	if code != http.StatusOK || body["source"] != pipelineYAML {
		t.Fatalf("show: HTTP %d %v", code, body)
	}
	// A stored DAG runs by its name alone, carrying its local DAGs.
	code, body = call(t, srv, "POST", "/api/v2/dag-runs", `{"dag_name": "distributed-pipeline", "dag_run_id": "p1"}`)
	if code != http.StatusCreated {
		t.Fatalf("enqueue by name: HTTP %d %v", code, body)
	}
	code, body = call(t, srv, "DELETE", "/api/v2/dags/distributed-pipeline", "")
	if code != http.StatusOK {
		t.Fatalf("delete: HTTP %d %v", code, body)
	}
	if code, _ = call(t, srv, "GET", "/api/v2/dags/distributed-pipeline", ""); code != http.StatusNotFound {
		t.Fatalf("deleted DAG: HTTP %d", code)
	}
	if code, _ = call(t, srv, "POST", "/api/v2/dag-runs", `{"dag_name": "distributed-pipeline"}`); code != http.StatusNotFound {
		t.Fatalf("enqueue of a deleted DAG: HTTP %d", code)
	}
	// The run enqueued before the delete keeps its definition.
	code, body = call(t, srv, "GET", "/api/v2/dag-runs/p1", "")
	if code != http.StatusOK || body["dag_name"] != "distributed-pipeline" {
		t.Fatalf("run of the deleted DAG: HTTP %d %v", code, body)
	}
}

func TestPushReportsEveryProblemWithFileAndLine(t *testing.T) {
	srv := startAPI(t)
	// One file with two problems of different kinds: both are named.
	bad := "name: broken\nsteps:\n  - name: a\n    command: echo\n    depends: nowhere\n  - name: c\n    run: unheard-of\n"
	orphan := "name: orphan\nsteps:\n  - name: a\n    command: echo\n  - name: b\n    run: nobody-knows\n"
	code, body := call(t, srv, "POST", "/api/v2/dags", pushBody(t, map[string]string{"broken.yaml": bad, "orphan.yaml": orphan}))
	if code != http.StatusBadRequest {
		t.Fatalf("HTTP %d %v", code, body)
	}
	msg, _ := body["error"].(string)
	for _, want := range []string{"broken.yaml:5", "nowhere", "broken.yaml:7", "unheard-of", "orphan.yaml:6", "nobody-knows"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	for _, name := range []string{"broken", "orphan"} {
		if code, _ := call(t, srv, "GET", "/api/v2/dags/"+name, ""); code != http.StatusNotFound {
			t.Fatalf("an invalid push stored %s: HTTP %d", name, code)
		}
	}
	// A file may call a DAG pushed with it.
	caller := "name: caller\nsteps:\n  - name: c\n    call: callee\n"
	callee := "name: callee\nsteps:\n  - name: x\n    command: \"true\"\n"
	if code, body := call(t, srv, "POST", "/api/v2/dags", pushBody(t, map[string]string{"caller.yaml": caller, "callee.yaml": callee})); code != http.StatusOK {
		t.Fatalf("push of a caller with its callee: HTTP %d %v", code, body)
	}
}

func TestEnqueueAFileRunsItsFirstDagWithTheOthersLocal(t *testing.T) {
	srv := startAPI(t)
	req, _ := json.Marshal(map[string]string{"yaml": pipelineYAML, "file": "pipeline.yaml", "dag_run_id": "f1", "params": "A=1"})
	code, body := call(t, srv, "POST", "/api/v2/dag-runs", string(req))
	if code != http.StatusCreated {
		t.Fatalf("HTTP %d %v", code, body)
	}
	code, body = call(t, srv, "GET", "/api/v2/dag-runs/f1", "")
	if code != http.StatusOK || body["dag_name"] != "distributed-pipeline" || body["root_dag_run_id"] != "f1" {
		t.Fatalf("run: HTTP %d %v", code, body)
	}
	// A bad file is refused with its line.
	req, _ = json.Marshal(map[string]string{"yaml": "name: x\nsteps:\n  - name: a\n    command: echo\n    timeoutSec: -1\n", "file": "x.yaml"})
	code, body = call(t, srv, "POST", "/api/v2/dag-runs", string(req))
	if msg, _ := body["error"].(string); code != http.StatusBadRequest || !strings.Contains(msg, "x.yaml:5") {
		t.Fatalf("bad file: HTTP %d %v", code, body)
	}
	// Params that do not parse are named.
	req, _ = json.Marshal(map[string]string{"yaml": pipelineYAML, "params": `"unterminated`})
	code, body = call(t, srv, "POST", "/api/v2/dag-runs", string(req))
	if msg, _ := body["error"].(string); code != http.StatusBadRequest || !strings.Contains(msg, "params") {
		t.Fatalf("bad params: HTTP %d %v", code, body)
	}
}

func TestRunBlockingQueryWaitsForAChange(t *testing.T) {
	srv := startAPI(t)
	if code, body := call(t, srv, "POST", "/api/v2/dag-runs", `{"dag": {"name": "etl", "steps": [{"name": "s", "command": "true"}]}, "dag_run_id": "b1"}`); code != http.StatusCreated {
		t.Fatalf("HTTP %d %v", code, body)
	}
	_, body := call(t, srv, "GET", "/api/v2/dag-runs/b1", "")
	index := body["modify_index"].(float64)
	// Nothing changes: the query answers after its wait with the same index.
	code, body := call(t, srv, "GET", fmt.Sprintf("/api/v2/dag-runs/b1?index=%d&wait=200ms", int(index)), "")
	if code != http.StatusOK || body["modify_index"].(float64) != index {
		t.Fatalf("HTTP %d %v", code, body)
	}
	done := make(chan map[string]any, 1)
	go func() {
		_, body := call(t, srv, "GET", fmt.Sprintf("/api/v2/dag-runs/b1?index=%d&wait=30s", int(index)), "")
		done <- body
	}()
	if code, body := call(t, srv, "POST", "/api/v2/dag-runs/b1/cancel", ""); code != http.StatusOK {
		t.Fatalf("cancel: HTTP %d %v", code, body)
	}
	body = <-done
	if body["status"] != "cancelled" || body["modify_index"].(float64) <= index {
		t.Fatalf("the blocking query answered %v", body)
	}
	if code, _ := call(t, srv, "GET", "/api/v2/dag-runs/b1?index=x", ""); code != http.StatusBadRequest {
		t.Fatalf("a bad index: HTTP %d", code)
	}
}

// The web UI draws graphs from the API alone: a DAG's steps say which run
// a child DAG per item (parallel), and a run's detail carries its DAG's
// steps with their depends (graph), before any step has started.
func TestDagAndRunCarryTheirGraph(t *testing.T) {
	srv := startAPI(t)
	fanOut := "name: fan-out\nsteps:\n  - name: prepare\n    command: echo\n  - name: each\n    run: train-model\n    parallel: [a, b]\n    depends: prepare\n---\n" +
		"name: train-model\nsteps:\n  - name: train\n    command: echo\n"
	if code, body := call(t, srv, "POST", "/api/v2/dags", pushBody(t, map[string]string{"fan-out.yaml": fanOut})); code != http.StatusOK {
		t.Fatalf("push: HTTP %d %v", code, body)
	}
	code, body := call(t, srv, "GET", "/api/v2/dags/fan-out", "")
	if got := fmt.Sprint(body["steps"]); code != http.StatusOK || !strings.Contains(got, "depends:[prepare] name:each parallel:true run:train-model") {
		t.Fatalf("DAG: HTTP %d steps %v", code, got)
	}
	if code, body := call(t, srv, "POST", "/api/v2/dag-runs", `{"dag_name": "fan-out", "dag_run_id": "g1"}`); code != http.StatusCreated {
		t.Fatalf("enqueue: HTTP %d %v", code, body)
	}
	code, body = call(t, srv, "GET", "/api/v2/dag-runs/g1", "")
	if got := fmt.Sprint(body["graph"]); code != http.StatusOK || got != "[map[command:echo depends:[] name:prepare] map[depends:[prepare] name:each parallel:true run:train-model]]" {
		t.Fatalf("run: HTTP %d graph %v", code, got)
	}
	// A list of runs leaves the graph out: it is the detail's.
	code, body = call(t, srv, "GET", "/api/v2/dag-runs?dag_name=fan-out", "")
	if code != http.StatusOK || strings.Contains(fmt.Sprint(body["runs"]), "graph") {
		t.Fatalf("list: HTTP %d %v", code, body)
	}
}
