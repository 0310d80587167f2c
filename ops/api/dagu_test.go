package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/buildinfo"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/fsm"
	"github.com/daguha/daguha/ops/api"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// The DAGs the Dagu tests run: written for these tests.
const daguEtlYAML = `name: dagu-etl
description: extract then load
schedule: "0 3 * * *"
labels: team=data nightly
params: DAY=monday
steps:
  - name: extract
    command: echo extracting $DAY
    output: ROW_COUNT
  - name: load
    command: echo loading
    depends: extract
  - name: child
    call: dagu-child
    depends: load
handlerOn:
  exit:
    command: echo done
---
name: dagu-child
steps:
  - name: work
    command: echo child work
`

const daguOtherYAML = `name: dagu-other
steps:
  - name: only
    command: "true"
`

// daguEnv is one in-process server behind the API, a clock that moves a
// second at each reading, and a stand-in worker: the test grants and
// finishes runs through the same Raft commands a worker's calls become.
type daguEnv struct {
	api    *api.Server
	srv    *httptest.Server
	leader *cluster.Server
	doc    *openapi3.T
	router routers.Router
	mu     sync.Mutex
	clock  time.Time
}

func startDagu(t *testing.T, options api.Options) *daguEnv {
	t.Helper()
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	env := &daguEnv{leader: c.Leader(10 * time.Second).Server, clock: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	env.api = newAPI(t, env.leader, env.now, options)
	env.srv = httptest.NewServer(env.api)
	t.Cleanup(env.srv.Close)
	data, err := api.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if env.doc, err = openapi3.NewLoader().LoadFromData(data); err != nil {
		t.Fatal(err)
	}
	if env.router, err = legacy.NewRouter(env.doc); err != nil {
		t.Fatal(err)
	}
	return env
}

func (e *daguEnv) now() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.clock = e.clock.Add(time.Second)
	return e.clock
}

// do sends a request and returns its status and body; the answer is
// checked against the OpenAPI document (the operation must be there, and
// the body must match what the document says of that status).
func (e *daguEnv) do(t *testing.T, method, path, body string, headers ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	e.checkAgainstDocument(t, req, resp, data)
	return resp.StatusCode, data
}

// checkAgainstDocument fails the test when the answer is not what the
// OpenAPI document says the operation answers.
func (e *daguEnv) checkAgainstDocument(t *testing.T, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	route, params, err := e.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: not in the OpenAPI document: %v", req.Method, req.URL.Path, err)
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	input.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		t.Fatalf("%s %s: HTTP %d answer is not as the OpenAPI document says: %v\nbody: %.2000s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
}

func jsonDecode(resp *http.Response, out any) error { return json.NewDecoder(resp.Body).Decode(out) }

// object decodes a JSON object body.
func object(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("body is not a JSON object: %v: %.500s", err, data)
	}
	return out
}

// requireFields fails unless every field path is in body: "a.b" is field
// b of object a; "a[].b" is field b of every element of array a, which
// must have at least one.
func requireFields(t *testing.T, body any, paths ...string) {
	t.Helper()
	for _, path := range paths {
		if err := hasField(body, path); err != nil {
			t.Errorf("required field %s: %v", path, err)
		}
	}
}

func hasField(value any, path string) error {
	if path == "" {
		return nil
	}
	head, rest, _ := strings.Cut(path, ".")
	name, each := strings.CutSuffix(head, "[]")
	object, ok := value.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: not in an object (%T)", name, value)
	}
	field, ok := object[name]
	if !ok {
		return fmt.Errorf("%s is missing", name)
	}
	if !each {
		return hasField(field, rest)
	}
	list, ok := field.([]any)
	if !ok || len(list) == 0 {
		return fmt.Errorf("%s: want a non-empty array, have %v", name, field)
	}
	for i, element := range list {
		if err := hasField(element, rest); err != nil {
			return fmt.Errorf("%s[%d]: %w", name, i, err)
		}
	}
	return nil
}

// runAsWorker grants a queued run to worker w1 (registering it), then
// finishes it with these steps and outputs, unless steps is nil (the run
// stays running).
func (e *daguEnv) runAsWorker(t *testing.T, runID string, status daguhav1.RunStatus, steps []*daguhav1.StepState, outputs map[string]string) {
	t.Helper()
	if err := e.work(runID, status, steps, outputs); err != nil {
		t.Fatal(err)
	}
}

// work is runAsWorker's part that may run off the test's goroutine.
func (e *daguEnv) work(runID string, status daguhav1.RunStatus, steps []*daguhav1.StepState, outputs map[string]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := e.leader.Apply(ctx, fsm.RegisterWorkersType, &daguhav1.RegisterWorkersCommand{Workers: []*daguhav1.Worker{{Id: "w1", MaxActiveRuns: 10, Labels: map[string]string{"zone": "eu"}}}}); err != nil {
		return err
	}
	result, _, err := e.leader.Apply(ctx, fsm.GrantLeasesType, &daguhav1.GrantLeasesCommand{Grants: []*daguhav1.Grant{{RunId: runID, WorkerId: "w1", Attempt: 1, MaxActiveRuns: 10, NowUnixNano: e.now().UnixNano()}}})
	if err != nil {
		return err
	}
	grant := result.(*daguhav1.GrantLeasesResult).GetOutcomes()[0]
	if !grant.GetGranted() {
		return fmt.Errorf("grant of %s refused: %s", runID, grant.GetRefused())
	}
	if steps == nil {
		return nil
	}
	finish := &daguhav1.Finish{RunId: runID, FencingToken: grant.GetFencingToken(), Status: status, NowUnixNano: e.now().UnixNano(), Outputs: outputs, Steps: steps}
	result, _, err = e.leader.Apply(ctx, fsm.FinishRunsType, &daguhav1.FinishRunsCommand{Finishes: []*daguhav1.Finish{finish}})
	if err != nil {
		return err
	}
	if outcome := result.(*daguhav1.FinishRunsResult).GetOutcomes()[0]; !outcome.GetApplied() {
		return fmt.Errorf("finish of %s refused: %s", runID, outcome.GetRefused())
	}
	return nil
}

// succeededSteps are the step states of a run of dagu-etl that succeeded.
func (e *daguEnv) succeededSteps(childRunID string) []*daguhav1.StepState {
	at := e.now().UnixNano()
	step := func(name, tail string) *daguhav1.StepState {
		return &daguhav1.StepState{Name: name, Status: daguhav1.StepStatus_STEP_STATUS_SUCCEEDED, StartedAtUnixNano: at, FinishedAtUnixNano: at + 1e9, OutputTail: tail, Retry: 1}
	}
	child := step("child", "")
	child.ChildRunId = childRunID
	return []*daguhav1.StepState{step("extract", "extracting monday\n42\n"), step("load", "loading\n"), child, step("onExit", "done\n")}
}

// enqueue records a run through daguha's own API.
func (e *daguEnv) enqueue(t *testing.T, body string) {
	t.Helper()
	if code, data := e.do(t, "POST", "/api/v2/dag-runs", body); code != http.StatusCreated {
		t.Fatalf("enqueue %s: HTTP %d %s", body, code, data)
	}
}

// seed stores the test DAGs and makes runs of dagu-etl in each state:
// r-done succeeded (with a child run r-child and an output), r-running
// running on w1, r-queued queued.
func (e *daguEnv) seed(t *testing.T) {
	t.Helper()
	if code, data := e.do(t, "POST", "/api/v2/dags", pushBody(t, map[string]string{"etl.yaml": daguEtlYAML, "other.yaml": daguOtherYAML})); code != http.StatusOK {
		t.Fatalf("push: HTTP %d %s", code, data)
	}
	e.enqueue(t, `{"dag_name": "dagu-etl", "dag_run_id": "r-done"}`)
	e.enqueue(t, `{"dag": {"name": "dagu-child", "steps": [{"name": "work", "command": "echo child work"}]}, "dag_run_id": "r-child", "parent_dag_run_id": "r-done"}`)
	e.runAsWorker(t, "r-child", daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, []*daguhav1.StepState{}, nil)
	e.runAsWorker(t, "r-done", daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, e.succeededSteps("r-child"), map[string]string{"ROW_COUNT": "42"})
	e.enqueue(t, `{"dag_name": "dagu-etl", "dag_run_id": "r-running"}`)
	e.runAsWorker(t, "r-running", 0, nil, nil)
	e.enqueue(t, `{"dag_name": "dagu-etl", "dag_run_id": "r-queued"}`)
}

// daguCall is one call of Dagu's API and what its answer must have.
type daguCall struct {
	name, method, path, body string
	code                     int
	// required are the fields Dagu's spec marks required (see
	// requireFields for the paths).
	required []string
	// only, when set, is the one prefix the call is made under.
	only  string
	check func(t *testing.T, body map[string]any)
}

// Each of Dagu's calls that daguha serves, with the bodies and query
// parameters Dagu's spec defines, under /api/v1 (current Dagu) and
// /api/v2 (Dagu 1.x): the answer has the fields Dagu's spec marks
// required, Dagu's status numbers and words, and (see daguEnv.do) is what
// daguha's OpenAPI document says.
func TestDaguCallsAnswerWithDagusRequiredFields(t *testing.T) {
	for _, prefix := range []string{"/api/v1", "/api/v2"} {
		t.Run(prefix, func(t *testing.T) {
			env := startDagu(t, api.Options{})
			env.seed(t)
			from, to := env.clock.Add(-time.Hour).Unix(), env.clock.Add(time.Hour).Unix()
			summary := []string{"dagRunId", "name", "status", "statusLabel", "startedAt", "finishedAt", "artifactsAvailable", "autoRetryCount", "rootDAGRunName", "rootDAGRunId", "log"}
			each := func(prefix string, fields []string) []string {
				out := make([]string, len(fields))
				for i, f := range fields {
					out[i] = prefix + f
				}
				return out
			}
			details := append(summary, "nodes", "nodes[].step.name", "nodes[].stdout", "nodes[].stderr", "nodes[].startedAt", "nodes[].finishedAt",
				"nodes[].status", "nodes[].statusLabel", "nodes[].retryCount", "nodes[].doneCount")
			var syncWorker sync.WaitGroup
			calls := []daguCall{
				{name: "health", method: "GET", path: "/health", code: 200, required: []string{"status", "version", "uptime", "timestamp"},
					check: func(t *testing.T, b map[string]any) {
						if want := map[string]string{"/api/v1": "healthy", "/api/v2": "ok"}[prefix]; b["status"] != want || b["version"] != buildinfo.Version() {
							t.Errorf("status %v version %v, want %s and %s", b["status"], b["version"], want, buildinfo.Version())
						}
					}},
				{name: "workers", method: "GET", path: "/workers", only: "/api/v1", code: 200,
					required: []string{"errors", "workers[].id", "workers[].labels", "workers[].totalPollers", "workers[].busyPollers", "workers[].runningTasks[].dagRunId",
						"workers[].runningTasks[].dagName", "workers[].runningTasks[].startedAt", "workers[].lastHeartbeatAt", "workers[].healthStatus"},
					check: func(t *testing.T, b map[string]any) {
						w := b["workers"].([]any)[0].(map[string]any)
						if w["totalPollers"] != 10.0 || w["busyPollers"] != 1.0 {
							t.Errorf("worker %v: want 10 pollers, 1 busy", w)
						}
					}},
				{name: "list DAGs by name and label, a page", method: "GET", path: "/dags?page=1&perPage=10&name=DAGU&labels=team%3Ddata&sort=name&order=asc", code: 200,
					required: append([]string{"errors", "pagination.totalRecords", "pagination.currentPage", "pagination.totalPages", "pagination.nextPage", "pagination.prevPage",
						"dags[].fileName", "dags[].dag.name", "dags[].suspended", "dags[].errors"}, each("dags[].latestDAGRun.", summary[:6])...),
					check: func(t *testing.T, b map[string]any) {
						dags := b["dags"].([]any)
						dag := dags[0].(map[string]any)
						if len(dags) != 1 || dag["fileName"] != "dagu-etl" || dag["latestDAGRun"].(map[string]any)["dagRunId"] != "r-queued" {
							t.Errorf("dags %v: want dagu-etl alone, its latest run r-queued", dags)
						}
					}},
				{name: "list DAGs, sorted by next run, descending", method: "GET", path: "/dags?sort=nextRun&order=desc", code: 200, required: []string{"dags[].fileName"},
					check: func(t *testing.T, b map[string]any) {
						if first := b["dags"].([]any)[0].(map[string]any)["fileName"]; first != "dagu-etl" {
							t.Errorf("first %v: the one scheduled DAG comes first, whatever the order", first)
						}
					}},
				{name: "create a DAG", method: "POST", path: "/dags", body: `{"name": "dagu-new", "spec": "steps:\n  - name: s\n    command: echo new\n"}`, code: 201, required: []string{"name"}},
				{name: "create a DAG that exists", method: "POST", path: "/dags", body: `{"name": "dagu-new"}`, code: 409, required: []string{"code", "message"},
					check: func(t *testing.T, b map[string]any) {
						if b["code"] != "already_exists" {
							t.Errorf("code %v", b["code"])
						}
					}},
				{name: "validate a good file", method: "POST", path: "/dags/validate", body: `{"spec": "steps:\n  - name: a\n    command: echo a\n", "name": "checked"}`, code: 200,
					required: []string{"valid", "errors", "dag.name"},
					check: func(t *testing.T, b map[string]any) {
						if b["valid"] != true || b["dag"].(map[string]any)["name"] != "checked" {
							t.Errorf("%v: want valid, named checked", b)
						}
					}},
				{name: "validate a bad file", method: "POST", path: "/dags/validate", body: `{"spec": "steps:\n  - name: a\n    depends: nowhere\n"}`, code: 200, required: []string{"valid", "errors"},
					check: func(t *testing.T, b map[string]any) {
						if errs := b["errors"].([]any); b["valid"] != false || len(errs) != 2 || !strings.HasPrefix(errs[1].(string), `validated-dag.yaml:3: steps[0].depends: unknown step "nowhere"`) {
							t.Errorf("%v: want invalid, each of its two problems with its line", b)
						}
					}},
				{name: "get a DAG", method: "GET", path: "/dags/dagu-etl", code: 200,
					required: append([]string{"latestDAGRun.nodes", "suspended", "localDags[].name", "localDags[].errors", "errors", "dag.name", "dag.steps[].name", "spec"}, each("latestDAGRun.", summary)...),
					check: func(t *testing.T, b map[string]any) {
						dag := b["dag"].(map[string]any)
						if dag["defaultParams"] != "DAY=monday" || fmt.Sprint(dag["labels"]) != "[team=data nightly]" || dag["nextRun"] == "" {
							t.Errorf("dag %v", dag)
						}
					}},
				{name: "get a DAG's spec", method: "GET", path: "/dags/dagu-etl/spec", code: 200, required: []string{"spec", "errors", "dag.name"},
					check: func(t *testing.T, b map[string]any) {
						if b["spec"] != daguEtlYAML {
							t.Errorf("spec %q", b["spec"])
						}
					}},
				{name: "put a DAG's spec", method: "PUT", path: "/dags/dagu-new/spec", body: `{"spec": "steps:\n  - name: s\n    command: echo newer\n"}`, code: 200, required: []string{"errors"},
					check: func(t *testing.T, b map[string]any) {
						if len(b["errors"].([]any)) != 0 {
							t.Errorf("errors %v", b["errors"])
						}
					}},
				{name: "put a bad spec: nothing stored", method: "PUT", path: "/dags/dagu-new/spec", body: `{"spec": "name: other-name\nsteps:\n  - name: s\n    command: x\n"}`, code: 200, required: []string{"errors"},
					check: func(t *testing.T, b map[string]any) {
						if !strings.Contains(fmt.Sprint(b["errors"]), `"other-name"`) {
							t.Errorf("errors %v: want the name that differs", b["errors"])
						}
					}},
				{name: "start", method: "POST", path: "/dags/dagu-etl/start", body: `{"params": "DAY=tuesday", "dagRunId": "r-start"}`, code: 200, required: []string{"dagRunId"},
					check: func(t *testing.T, b map[string]any) {
						if b["dagRunId"] != "r-start" {
							t.Errorf("dagRunId %v", b["dagRunId"])
						}
					}},
				{name: "start as a singleton while a run runs", method: "POST", path: "/dags/dagu-etl/start", body: `{"singleton": true}`, code: 409, required: []string{"code", "message"}},
				{name: "enqueue with JSON params and a queue", method: "POST", path: "/dags/dagu-etl/enqueue", body: `{"params": "{\"DAY\": \"friday\"}", "dagRunId": "r-enqueued", "queue": "etl-queue"}`, code: 200,
					required: []string{"dagRunId"}},
				{name: "enqueue with labels", method: "POST", path: "/dags/dagu-etl/enqueue", body: `{"labels": ["a=b"]}`, code: 400, required: []string{"code", "message"}},
				{name: "start-sync that times out", method: "POST", path: "/dags/dagu-other/start-sync", body: `{"timeout": 1, "dagRunId": "r-sync-late"}`, code: 408, required: []string{"code", "message", "dagRunId"},
					check: func(t *testing.T, b map[string]any) {
						if b["code"] != "timeout" || b["dagRunId"] != "r-sync-late" {
							t.Errorf("%v", b)
						}
					}},
				{name: "start-sync", method: "POST", path: "/dags/dagu-other/start-sync", body: `{"timeout": 30, "dagRunId": "r-sync"}`, code: 200, required: each("dagRun.", summary),
					check: func(t *testing.T, b map[string]any) {
						syncWorker.Wait()
						if run := b["dagRun"].(map[string]any); run["status"] != 4.0 || run["statusLabel"] != "succeeded" {
							t.Errorf("run %v: want 4 succeeded", run)
						}
					}},
				{name: "start-sync without a timeout", method: "POST", path: "/dags/dagu-other/start-sync", body: `{}`, code: 400, required: []string{"code", "message"}},
				{name: "a DAG's history", method: "GET", path: "/dags/dagu-etl/dag-runs", code: 200, required: append(each("dagRuns[].", details), "gridData[].name", "gridData[].history"),
					check: func(t *testing.T, b map[string]any) {
						grid := b["gridData"].([]any)[0].(map[string]any)
						if grid["name"] != "extract" || !strings.HasPrefix(fmt.Sprint(grid["history"]), "[4 ") {
							t.Errorf("grid %v: want extract, its oldest run succeeded (4)", grid)
						}
					}},
				{name: "a DAG's latest run", method: "GET", path: "/dags/dagu-etl/dag-runs/latest", code: 200, required: each("dagRun.", summary)},
				{name: "list runs by Dagu's filters", method: "GET", path: fmt.Sprintf("/dag-runs?name=ETL&status=4&status=1&fromDate=%d&toDate=%d&limit=10", from, to), code: 200,
					required: each("dagRuns[].", summary),
					check: func(t *testing.T, b map[string]any) {
						var got []string
						for _, run := range b["dagRuns"].([]any) {
							got = append(got, fmt.Sprint(run.(map[string]any)["dagRunId"], ":", run.(map[string]any)["status"]))
						}
						if strings.Join(got, " ") != "r-running:1 r-done:4" {
							t.Errorf("runs %v: want r-running (1) and r-done (4), newest first", got)
						}
					}},
				{name: "list runs by part of an id", method: "GET", path: "/dag-runs?dagRunId=done", code: 200, required: each("dagRuns[].", summary),
					check: func(t *testing.T, b map[string]any) {
						if runs := b["dagRuns"].([]any); len(runs) != 1 || runs[0].(map[string]any)["dagRunId"] != "r-done" {
							t.Errorf("runs %v", runs)
						}
					}},
				{name: "list runs, a page", method: "GET", path: "/dag-runs?limit=1", code: 200, required: []string{"dagRuns", "nextCursor"}},
				{name: "list runs of one DAG", method: "GET", path: "/dag-runs/dagu-child", only: "/api/v1", code: 200, required: each("dagRuns[].", summary),
					check: func(t *testing.T, b map[string]any) {
						if run := b["dagRuns"].([]any)[0].(map[string]any); run["parentDAGRunId"] != "r-done" || run["rootDAGRunId"] != "r-done" {
							t.Errorf("child run %v", run)
						}
					}},
				{name: "run a DAG file", method: "POST", path: "/dag-runs", body: `{"spec": "steps:\n  - name: s\n    command: echo adhoc\n", "name": "dagu-adhoc", "params": "X=1", "dagRunId": "r-adhoc"}`, code: 200,
					required: []string{"dagRunId"}},
				{name: "enqueue a DAG file", method: "POST", path: "/dag-runs/enqueue", body: `{"spec": "name: dagu-queued\nsteps:\n  - name: s\n    command: echo q\n", "dagRunId": "r-file-queued"}`, code: 200,
					required: []string{"dagRunId"}},
				{name: "a run", method: "GET", path: "/dag-runs/dagu-etl/r-done", code: 200, required: each("dagRunDetails.", details),
					check: func(t *testing.T, b map[string]any) {
						run := b["dagRunDetails"].(map[string]any)
						nodes := run["nodes"].([]any)
						child := nodes[2].(map[string]any)
						if len(nodes) != 3 || run["onExit"] == nil || fmt.Sprint(child["subRuns"]) != "[map[dagName:dagu-child dagRunId:r-child params:]]" {
							t.Errorf("run %v: want three nodes, the third with its child, and the exit handler", run)
						}
						if run["log"] != prefix+"/dag-runs/dagu-etl/r-done/log" || !strings.HasSuffix(run["startedAt"].(string), "Z") {
							t.Errorf("log %v startedAt %v", run["log"], run["startedAt"])
						}
					}},
				{name: "a DAG's latest run by latest", method: "GET", path: "/dag-runs/dagu-etl/latest", code: 200, required: each("dagRunDetails.", summary),
					check: func(t *testing.T, b map[string]any) {
						if id := b["dagRunDetails"].(map[string]any)["dagRunId"]; id != "r-enqueued" {
							t.Errorf("latest %v, want r-enqueued", id)
						}
					}},
				{name: "a run of another DAG", method: "GET", path: "/dag-runs/dagu-other/r-done", code: 404, required: []string{"code", "message"},
					check: func(t *testing.T, b map[string]any) {
						if b["code"] != "not_found" {
							t.Errorf("code %v", b["code"])
						}
					}},
				{name: "a run's log, its last two lines", method: "GET", path: "/dag-runs/dagu-etl/r-done/log?tail=2", code: 200, required: []string{"content", "lineCount", "totalLines", "hasMore"},
					check: func(t *testing.T, b map[string]any) {
						if b["lineCount"] != 2.0 || !strings.Contains(b["content"].(string), "run succeeded") {
							t.Errorf("log %v", b)
						}
					}},
				{name: "a step's log", method: "GET", path: "/dag-runs/dagu-etl/r-done/steps/extract/log?head=1&stream=stdout", code: 200, required: []string{"content"},
					check: func(t *testing.T, b map[string]any) {
						if b["content"] != "extracting monday\n" || b["isEstimate"] != true || b["hasMore"] != true {
							t.Errorf("log %v: want the first line of the tail, marked an estimate", b)
						}
					}},
				{name: "a run's outputs", method: "GET", path: "/dag-runs/dagu-etl/r-done/outputs", code: 200,
					required: []string{"outputs", "metadata.dagName", "metadata.dagRunId", "metadata.attemptId", "metadata.status", "metadata.completedAt"},
					check: func(t *testing.T, b map[string]any) {
						if b["outputs"].(map[string]any)["rowCount"] != "42" || b["metadata"].(map[string]any)["status"] != "succeeded" {
							t.Errorf("outputs %v", b)
						}
					}},
				{name: "a run's sub DAG runs", method: "GET", path: "/dag-runs/dagu-etl/r-done/sub-dag-runs", code: 200,
					required: []string{"subRuns[].dagRunId", "subRuns[].status", "subRuns[].statusLabel", "subRuns[].startedAt"}},
				{name: "stop a queued run", method: "POST", path: "/dag-runs/dagu-etl/r-queued/stop", code: 200},
				{name: "stop it again", method: "POST", path: "/dag-runs/dagu-etl/r-queued/stop", code: 409, required: []string{"code", "message"},
					check: func(t *testing.T, b map[string]any) {
						if b["code"] != "not_running" {
							t.Errorf("code %v", b["code"])
						}
					}},
				{name: "stop every running run", method: "POST", path: "/dags/dagu-etl/stop-all", code: 200, required: []string{"errors"}},
				{name: "dequeue a queued run", method: "GET", path: "/dag-runs/dagu-etl/r-enqueued/dequeue", code: 200},
				{name: "dequeue it again", method: "GET", path: "/dag-runs/dagu-etl/r-enqueued/dequeue", code: 400, required: []string{"code", "message"},
					check: func(t *testing.T, b map[string]any) {
						if b["code"] != "bad_request" || !strings.Contains(fmt.Sprint(b["message"]), "cancelled") {
							t.Errorf("%v: want bad_request naming the run's status", b)
						}
					}},
				{name: "retry naming another run in the body", method: "POST", path: "/dag-runs/dagu-etl/r-done/retry", body: `{"dagRunId": "r-queued"}`, code: 400, required: []string{"code", "message"}},
				{name: "retry without dagRunId", method: "POST", path: "/dag-runs/dagu-etl/r-done/retry", body: `{}`, code: 400, required: []string{"code", "message"}},
				{name: "retry a finished run from a step", method: "POST", path: "/dag-runs/dagu-etl/r-done/retry", body: `{"dagRunId": "r-done", "stepName": "load"}`, code: 200},
				{name: "retry it while it is queued again", method: "POST", path: "/dag-runs/dagu-etl/r-done/retry", body: `{"dagRunId": "r-done"}`, code: 400, required: []string{"code", "message"},
					check: func(t *testing.T, b map[string]any) {
						if b["code"] != "bad_request" || !strings.Contains(fmt.Sprint(b["message"]), "queued") {
							t.Errorf("%v: want bad_request naming the run's status", b)
						}
					}},
				{name: "delete a DAG", method: "DELETE", path: "/dags/dagu-new", only: "/api/v1", code: 204},
			}
			for _, call := range calls {
				if call.only != "" && call.only != prefix {
					continue
				}
				t.Run(call.name, func(t *testing.T) {
					if call.name == "start-sync" {
						syncWorker.Add(1)
						go func() {
							defer syncWorker.Done()
							if err := env.finishWhenQueued("r-sync"); err != nil {
								t.Error(err)
							}
						}()
					}
					code, data := env.do(t, call.method, prefix+call.path, call.body)
					if code != call.code {
						t.Fatalf("HTTP %d, want %d: %.1000s", code, call.code, data)
					}
					if len(data) == 0 {
						return
					}
					body := object(t, data)
					requireFields(t, body, call.required...)
					if call.check != nil {
						call.check(t, body)
					}
				})
			}
			// What the calls did, as daguha's own API shows it.
			_, data := env.do(t, "GET", "/api/v2/dag-runs/r-enqueued", "")
			if run := object(t, data); run["params"] != `DAY="friday"` {
				t.Errorf("r-enqueued params %v, want the JSON object as NAME=\"value\"", run["params"])
			}
			_, data = env.do(t, "GET", "/api/v2/dag-runs/r-queued", "")
			if run := object(t, data); run["status"] != "cancelled" {
				t.Errorf("r-queued %v after stop", run["status"])
			}
			_, data = env.do(t, "GET", "/api/v2/dag-runs/r-running", "")
			if run := object(t, data); run["cancel_requested"] != true {
				t.Errorf("r-running: stop-all did not ask it to stop: %v", run)
			}
			_, data = env.do(t, "GET", "/api/v2/dag-runs/r-enqueued", "")
			if run := object(t, data); run["status"] != "cancelled" {
				t.Errorf("r-enqueued %v after dequeue", run["status"])
			}
			_, data = env.do(t, "GET", "/api/v2/dag-runs/r-done", "")
			if run := object(t, data); run["status"] != "queued" || fmt.Sprint(run["retries"]) != "1" {
				t.Errorf("r-done after its retry: %v, want queued again, one retry recorded", run)
			}
			_, data = env.do(t, "GET", "/api/v2/dags/dagu-adhoc", "")
			if dag := object(t, data); dag["name"] == "dagu-adhoc" {
				t.Errorf("a run of a DAG file stored the DAG: %v", dag)
			}
		})
	}
}

// finishWhenQueued plays the worker for start-sync: once the run is
// queued it is granted and finished, succeeded.
func (e *daguEnv) finishWhenQueued(runID string) error {
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		run, changed, err := e.leader.FSM().State().RunWatch(runID)
		if err != nil {
			return err
		}
		if run != nil {
			return e.work(runID, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, []*daguhav1.StepState{}, nil)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return fmt.Errorf("run %s was never enqueued", runID)
		}
	}
}
