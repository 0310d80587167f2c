package worker

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daguha/daguha/dispatch/dagfile"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's integration tests (v1.17.4, internal/integration) run DAGs whose
// steps are shell commands and check what the steps output.
// TestDaguIntegrationOutputs holds one row per such case, named as Dagu's
// test names it: a DAG written for daguha that uses the same feature the
// same way, and what Dagu documents it to give. The rows run through the
// engine with real processes; run/call steps start real child runs
// (daguCluster below plays the cluster's part).
//
// When DAGU_TESTDATA names a copy of Dagu's internal/testdata directory,
// kept outside this repository,
//
//	mkdir -p /tmp/dagu-testdata && git -C DAGU_REPO archive v1.17.4 internal/testdata | tar -x -C /tmp/dagu-testdata
//	DAGU_TESTDATA=/tmp/dagu-testdata/internal/testdata go test ./dispatch/worker -run TestDaguIntegrationOutputs
//
// a row that names its Dagu file runs that file too, in its directory (a
// worker started there: daguha's default working directory and dotenv
// base are the worker's, not the file's), with the DAGs of that directory
// as the stored ones, and checks the same. Without it that part skips.
//
// Dagu's cases that check no output are not rows: TestProgressingNode
// (step statuses while a run goes on, after fixed sleeps) and
// TestParallelExecution_Cancel (a cancel: TestParallelStepCancelledWithItsRun).
// TestRetryChildDAGRun is a row that skips, saying why.

// daguCase is one of Dagu's cases.
type daguCase struct {
	name string
	// daguFile is the case's DAG file under DAGU_TESTDATA; "" when Dagu's
	// test writes its DAG inline.
	daguFile string
	// dag is daguha's DAG for the case; the directory of the row's run is
	// $CASE_DIR, in the environment.
	dag string
	// stored are the DAGs a run/call step may start besides the file's own,
	// by name (Dagu's DAGs directory).
	stored map[string]string
	// files are written into $CASE_DIR before the run.
	files map[string]string
	// setup prepares both runs (ours and Dagu's file).
	setup func(t *testing.T)
	// needs is a command the case runs, and its Debian package.
	needs, pkg string
	// skip, when set, is why the case is not run.
	skip string
	// difference is why an expectation is daguha's, not Dagu's: a
	// difference documented in docs/workflows.md.
	difference string

	// refused: the file is refused when it is stored or enqueued, with
	// this in the error.
	refused string
	status  daguhav1.RunStatus // default succeeded
	message string             // in the run's error
	// outputs, by name; NAME.path is a JSON path into output NAME.
	outputs  map[string]want
	steps    map[string]daguhav1.StepStatus
	logs     map[string]want // a step's output as reported
	children map[string]int  // the child runs of a parallel step
	retries  map[string]uint32
	repeats  map[string]uint32
	order    []string // steps that ran one after the other
	check    func(t *testing.T, r *caseRun)
}

// want is what Dagu's tests assert of a value.
type want struct {
	exact    *string
	contains []string
	excludes []string
	pattern  string
	notEmpty bool
	absent   bool
	env      string // equal to this variable of the test's environment
}

func is(s string) want              { return want{exact: &s} }
func has(s ...string) want          { return want{contains: s} }
func (w want) but(s ...string) want { w.excludes = append(w.excludes, s...); return w }
func isEnv(name string) want        { return want{env: name} }

var (
	notEmpty = want{notEmpty: true}
	absent   = want{absent: true}
)

func (w want) test(t *testing.T, what, value string, ok bool) {
	t.Helper()
	if w.absent {
		if ok {
			t.Errorf("%s: %q, want none", what, value)
		}
		return
	}
	if !ok {
		t.Errorf("%s: none", what)
		return
	}
	if w.exact != nil && value != *w.exact {
		t.Errorf("%s: %q, want %q", what, value, *w.exact)
	}
	if w.env != "" && value != os.Getenv(w.env) {
		t.Errorf("%s: %q, want $%s (%q)", what, value, w.env, os.Getenv(w.env))
	}
	if w.notEmpty && value == "" {
		t.Errorf("%s: empty", what)
	}
	for _, s := range w.contains {
		if !strings.Contains(value, s) {
			t.Errorf("%s: %q, want it to hold %q", what, value, s)
		}
	}
	for _, s := range w.excludes {
		if strings.Contains(value, s) {
			t.Errorf("%s: %q, want it without %q", what, value, s)
		}
	}
	if w.pattern != "" && !regexp.MustCompile(w.pattern).MatchString(value) {
		t.Errorf("%s: %q, want it to match %s", what, value, w.pattern)
	}
}

// caseRun is one run of a case's DAG.
type caseRun struct {
	result
	host *clusterHost
}

func TestDaguIntegrationOutputs(t *testing.T) {
	testdata := os.Getenv("DAGU_TESTDATA")
	for _, c := range daguCases() {
		t.Run(c.name, func(t *testing.T) {
			if c.skip != "" {
				t.Skip(c.skip)
			}
			if c.needs != "" {
				if _, err := exec.LookPath(c.needs); err != nil {
					t.Skipf("%s is not installed (Debian package %s)", c.needs, c.pkg)
				}
			}
			if c.difference != "" {
				t.Logf("daguha differs from Dagu here: %s", c.difference)
			}
			t.Run("daguha", func(t *testing.T) {
				dir := t.TempDir()
				t.Setenv("CASE_DIR", dir)
				for name, text := range c.files {
					path := filepath.Join(dir, name)
					if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				stored := func(name string) ([]byte, bool) {
					text, ok := c.stored[name]
					return []byte(text), ok
				}
				c.runAndCheck(t, "case.yaml", []byte(c.dag), stored)
			})
			t.Run("dagu file", func(t *testing.T) {
				switch {
				case c.daguFile == "":
					t.Skip("Dagu's test writes this DAG inline: there is no file of Dagu's to run")
				case testdata == "":
					t.Skip("set DAGU_TESTDATA to a copy of Dagu's internal/testdata (v1.17.4) to run Dagu's own file: " +
						"git -C DAGU_REPO archive v1.17.4 internal/testdata | tar -x -C DIR; DAGU_TESTDATA=DIR/internal/testdata")
				}
				path := filepath.Join(testdata, filepath.FromSlash(c.daguFile))
				text, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("DAGU_TESTDATA: %v", err)
				}
				t.Chdir(filepath.Dir(path))
				stored := func(name string) ([]byte, bool) {
					text, err := os.ReadFile(filepath.Join(filepath.Dir(path), name+".yaml"))
					return text, err == nil
				}
				c.runAndCheck(t, filepath.Base(path), text, stored)
			})
		})
	}
}

// runAndCheck stores the DAG file (checking it as a push does), runs its
// first DAG, and checks the run against the case.
func (c daguCase) runAndCheck(t *testing.T, name string, text []byte, stored func(string) ([]byte, bool)) {
	t.Helper()
	if c.setup != nil {
		c.setup(t)
	}
	f, err := dagfile.Check(name, text, func(child string) bool {
		_, ok := stored(child)
		return ok
	})
	if c.refused != "" {
		if err == nil || !strings.Contains(err.Error(), c.refused) {
			t.Fatalf("stored: %v, want it refused with %q", err, c.refused)
		}
		return
	}
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	r := runFile(t, f, stored)
	status := c.status
	if status == daguhav1.RunStatus_RUN_STATUS_UNSPECIFIED {
		status = daguhav1.RunStatus_RUN_STATUS_SUCCEEDED
	}
	if r.status != status || !strings.Contains(r.message, c.message) {
		t.Fatalf("run: %s %q, want %s …%s…; steps %v", r.status, r.message, status, c.message, r.host.last())
	}
	for key, w := range c.outputs {
		value, ok := runOutput(r.outputs, key)
		w.test(t, "output "+key, value, ok)
	}
	last := r.host.last()
	for step, st := range c.steps {
		if got := last[step].GetStatus(); got != st {
			t.Errorf("step %s: %s, want %s (%v)", step, got, st, last[step])
		}
	}
	for step, w := range c.logs {
		st, ok := last[step]
		w.test(t, "output of step "+step, st.GetOutputTail(), ok)
	}
	for step, n := range c.children {
		if got := len(last[step].GetParallelChildren()); got != n {
			t.Errorf("step %s: %d child runs, want %d (%v)", step, got, n, last[step].GetParallelChildren())
		}
	}
	for step, n := range c.retries {
		if got := last[step].GetRetry(); got != n {
			t.Errorf("step %s: try %d, want %d", step, got, n)
		}
	}
	for step, n := range c.repeats {
		if got := last[step].GetRepeat(); got != n {
			t.Errorf("step %s: ran %d times, want %d", step, got, n)
		}
	}
	for i := 1; i < len(c.order); i++ {
		before, after := last[c.order[i-1]], last[c.order[i]]
		if before == nil || after == nil || after.GetStartedAtUnixNano() < before.GetFinishedAtUnixNano() {
			t.Errorf("step %s did not start after %s ended: %v, %v", c.order[i], c.order[i-1], after, before)
		}
	}
	if c.check != nil {
		c.check(t, r)
	}
}

// runOutput is output key of a run: a name, or a name and a JSON path
// into its value (CHILD.outputs.NAME).
func runOutput(outputs map[string]string, key string) (string, bool) {
	cut := strings.IndexAny(key, ".[")
	if cut < 0 {
		value, ok := outputs[key]
		return value, ok
	}
	value, ok := outputs[key[:cut]]
	if !ok {
		return "", false
	}
	path, ok := parsePath(key[cut:])
	if !ok {
		return "", false
	}
	return jsonPath(value, path)
}

// runFile runs the first DAG of f, its others as local DAGs.
func runFile(t *testing.T, f *dagfile.File, stored func(string) ([]byte, bool)) *caseRun {
	t.Helper()
	cluster := newDaguCluster(t, stored)
	run := &daguhav1.Run{Id: "run-1", DagName: f.Dags[0].GetName(), Attempt: 1, Dag: f.Dags[0], LocalDags: f.Dags[1:]}
	host := &clusterHost{cluster: cluster, run: run}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	status, message, outputs := testEngine(t).Execute(ctx, run, host)
	return &caseRun{result: result{status, message, outputs, time.Since(start)}, host: host}
}

// daguCluster plays the cluster for run/call steps as the leader does: it
// finds the child's DAG among the parent's local DAGs, then the stored
// ones; it derives a child's id from its parent, step, retry and params
// and starts a child once per id; each child runs on an engine of its own,
// with real processes.
type daguCluster struct {
	engine *Engine
	stored func(string) ([]byte, bool)
	ctx    context.Context
	wg     sync.WaitGroup

	mu   sync.Mutex
	runs map[string]*daguChild
}

type daguChild struct {
	done chan struct{}
	run  *daguhav1.Run // once done
	host *clusterHost
}

func newDaguCluster(t *testing.T, stored func(string) ([]byte, bool)) *daguCluster {
	ctx, cancel := context.WithCancel(context.Background())
	c := &daguCluster{engine: testEngine(t), stored: stored, ctx: ctx, runs: map[string]*daguChild{}}
	t.Cleanup(func() {
		cancel()
		c.wg.Wait()
	})
	return c
}

// clusterHost is the host of one run: it records the run's reports and
// asks the cluster for its children.
type clusterHost struct {
	fakeHost
	cluster *daguCluster
	run     *daguhav1.Run
}

func (h *clusterHost) StartChild(ctx context.Context, step string, retry uint32, params string) (string, error) {
	spec := dagfile.FindStep(h.run.GetDag(), step)
	if spec == nil || spec.GetChildDag() == "" {
		return "", fmt.Errorf("DAG %s has no run/call step %q", h.run.GetDagName(), step)
	}
	return h.cluster.start(h.run, spec, retry, params)
}

func (h *clusterHost) WaitChild(ctx context.Context, id string) (*daguhav1.Run, error) {
	return h.cluster.wait(ctx, id)
}

func (c *daguCluster) resolve(locals []*daguhav1.DagSpec, name string) (*daguhav1.DagSpec, []*daguhav1.DagSpec, error) {
	for _, local := range locals {
		if local.GetName() == name {
			return local, locals, nil
		}
	}
	text, ok := c.stored(name)
	if !ok {
		return nil, nil, fmt.Errorf("no DAG named %q: it is neither in the parent's file nor stored", name)
	}
	f, err := dagfile.Parse(name+".yaml", text)
	if err != nil {
		return nil, nil, err
	}
	return f.Dags[0], f.Dags[1:], nil
}

func (c *daguCluster) start(parent *daguhav1.Run, step *daguhav1.StepSpec, retry uint32, params string) (string, error) {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d\x00%s", parent.GetId(), step.GetName(), retry, params)))
	id := fmt.Sprintf("%x", sum[:8])
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.runs[id]; ok {
		return id, nil
	}
	spec, locals, err := c.resolve(parent.GetLocalDags(), step.GetChildDag())
	if err != nil {
		return "", err
	}
	run := &daguhav1.Run{Id: id, DagName: spec.GetName(), Params: params, Attempt: 1, Dag: spec, LocalDags: locals,
		ParentDagRunId: parent.GetId(), ParentStepName: step.GetName()}
	child := &daguChild{done: make(chan struct{}), host: &clusterHost{cluster: c, run: run}}
	c.runs[id] = child
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		status, message, outputs := c.engine.Execute(c.ctx, run, child.host)
		c.mu.Lock()
		child.run = &daguhav1.Run{Id: id, DagName: spec.GetName(), Params: params, Status: status, Error: message, Outputs: outputs}
		c.mu.Unlock()
		close(child.done)
	}()
	return id, nil
}

func (c *daguCluster) wait(ctx context.Context, id string) (*daguhav1.Run, error) {
	c.mu.Lock()
	child, ok := c.runs[id]
	c.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no child run %s", id)
	}
	select {
	case <-child.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return child.run, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// A stored child that prints its task and a result line as its output,
// then uses that output.
const taskChild = `
params:
  - TASK: none
steps:
  - name: do the task
    command: |
      echo "Processing task: $1"
      echo "TASK_RESULT_$1"
    output: TASK_OUTPUT
  - name: report
    command: echo "task $1 gave ${TASK_OUTPUT}"
    depends: do the task
`

// A stored child that prints the item it got.
const itemChild = `
params:
  - ITEM: none
steps:
  - name: print it
    command: echo "Item $1"
    output: PROCESSED_ITEM
`

const bq = "`" // a backquote, which a raw string cannot hold

func daguCases() []daguCase {
	const (
		runOK     = daguhav1.RunStatus_RUN_STATUS_SUCCEEDED
		runFailed = daguhav1.RunStatus_RUN_STATUS_FAILED
		ok        = daguhav1.StepStatus_STEP_STATUS_SUCCEEDED
		failed    = daguhav1.StepStatus_STEP_STATUS_FAILED
		skipped   = daguhav1.StepStatus_STEP_STATUS_SKIPPED
	)
	const partial = "Dagu 1.17 ends a run whose failed steps continued (continueOn) \"partially succeeded\", or failed when no step succeeded; " +
		"in daguha a failure that continues does not fail the run, and there is no partially succeeded (docs/workflows.md, continueOn)"
	manyItems := func(n int) string {
		var b strings.Builder
		b.WriteString("steps:\n  - name: fan out\n    run: item\n    parallel:\n      items:\n")
		for i := range n {
			fmt.Fprintf(&b, "        - item%d\n", i)
		}
		return b.String()
	}
	return []daguCase{
		// definition_test.go
		{
			name: "TestDAGExecution/Depends", daguFile: "integration/depends.yaml",
			dag: `
steps:
  - name: "1"
    command: printf 'first\n'
  - name: "2"
    command: printf 'second\n'
    depends: "1"
`,
			order: []string{"1", "2"},
		},
		{
			name: "TestDAGExecution/Pipe", daguFile: "integration/pipe.yaml",
			dag: `
params:
  - NAME: foo
steps:
  - name: through a pipe
    command: printf 'hello %s\n' $NAME | xargs echo
    output: OUT1
`,
			outputs: map[string]want{"OUT1": is("hello foo")},
		},
		{
			name: "TestDAGExecution/DotEnv", daguFile: "integration/dotenv.yaml",
			files: map[string]string{"first.env": "ENV1=123\nENV2=456\n", "second.env": "ENV2=abc\n"},
			dag: `
workingDir: ${CASE_DIR}
dotenv:
  - first.env
  - second.env
steps:
  - name: read them
    command: echo "${ENV1} ${ENV2}"
    output: OUT1
`,
			outputs: map[string]want{"OUT1": is("123 abc")},
		},
		{
			name: "TestDAGExecution/NamedParams", daguFile: "integration/named-params.yaml",
			dag: `
params:
  NAME: Dagu
  AGE: 30
steps:
  - name: name
    command: echo $NAME
    output: OUT1
  - name: greeting
    command: echo "Hello, ${NAME}"
    output: OUT2
    depends: name
`,
			outputs: map[string]want{"OUT1": is("Dagu"), "OUT2": is("Hello, Dagu")},
		},
		{
			name: "TestDAGExecution/NamedParamsList", daguFile: "integration/named-params-list.yaml",
			dag: `
params:
  - NAME: Dagu
  - AGE: 30
steps:
  - name: name
    command: echo $NAME
    output: OUT1
  - name: greeting
    command: echo "Hello, ${NAME}"
    output: OUT2
    depends: name
`,
			outputs: map[string]want{"OUT1": is("Dagu"), "OUT2": is("Hello, Dagu")},
		},
		{
			name: "TestDAGExecution/PositionalParams", daguFile: "integration/positional-params.yaml",
			dag: `
params: "foo bar"
steps:
  - name: positional
    command: printf '%s is %s, %s is %s\n' '$1' $1 '$2' "$2"
    output: OUT1
`,
			outputs: map[string]want{"OUT1": has("$1 is foo", "$2 is bar")},
		},
		{
			name: "TestDAGExecution/PositionalParamsScript", daguFile: "integration/positional-params-script.yaml",
			dag: `
params: "foo bar"
steps:
  - name: positional
    script: |
      printf '%s is %s\n' '$1' "$1"
      printf '%s is %s\n' '$2' "${2}"
    output: OUT1
`,
			outputs: map[string]want{"OUT1": has("$1 is foo", "$2 is bar")},
		},
		{
			name: "TestDAGExecution/Script", daguFile: "integration/script.yaml",
			dag: `
params:
  - NAME: unused
steps:
  - name: a script
    script: |
      set -- 1 2 3
      echo "$@"
    output: OUT1
`,
			outputs: map[string]want{"OUT1": is("1 2 3")},
		},
		{
			name: "TestDAGExecution/RegexPrecondition", daguFile: "integration/precondition-regex.yaml",
			dag: `
steps:
  - name: produce
    command: echo abc run def
    output: OUT1
  - name: guarded
    command: echo match
    output: OUT2
    depends: produce
    precondition:
      - condition: "$OUT1"
        expected: "re:^abc .* def$"
`,
			outputs: map[string]want{"OUT1": is("abc run def"), "OUT2": is("match")},
		},
		{
			name: "TestDAGExecution/JSON", daguFile: "integration/json.yaml",
			dag: `
steps:
  - name: read config
    command: |
      printf '{"host": "localhost", "port": 8080, "tls": false}\n'
    output: CONFIG
  - name: start server
    command: echo "Starting server at ${CONFIG.host}:${CONFIG.port}"
    output: OUT1
    depends: read config
`,
			outputs: map[string]want{"OUT1": is("Starting server at localhost:8080")},
		},
		{
			name: "TestDAGExecution/EnvVar", daguFile: "integration/environment-var.yaml",
			dag: `
env:
  - DATA_DIR: ${CASE_DIR}/data
  - PROCESS_DATE: "` + bq + `date +%Y%m%d_%H%M%S` + bq + `"
steps:
  - name: write
    command: echo foo
    stdout: "${DATA_DIR}_${PROCESS_DATE}"
  - name: read
    command: cat "${DATA_DIR}_${PROCESS_DATE}"
    output: OUT1
    depends: write
    precondition:
      - condition: "${DATA_DIR}_${PROCESS_DATE}"
        expected: "re:[0-9]{8}_[0-9]{6}"
  - name: clean up
    command: rm "${DATA_DIR}_${PROCESS_DATE}"
    depends: read
`,
			outputs: map[string]want{"OUT1": is("foo")},
		},
		{
			name: "TestDAGExecution/EnvScript", daguFile: "integration/env-script.yaml",
			dag: `
env:
  - E1: foo
  - E2: bar
steps:
  - name: script sees env
    script: |
      echo "E1 is ${E1}"
      echo "E2 is $E2"
    output: OUT1
`,
			outputs: map[string]want{"OUT1": has("E1 is foo", "E2 is bar")},
		},
		{
			name: "TestDAGExecution/SpecialVars", daguFile: "integration/special-vars.yaml",
			dag: `
steps:
  - name: log file
    command: echo "$DAG_RUN_LOG_FILE"
    output: OUT1
  - name: stdout file
    command: echo "${DAG_RUN_STEP_STDOUT_FILE}"
    output: OUT2
  - name: step name
    command: echo "$DAG_RUN_STEP_NAME"
    output: OUT3
  - name: dag name
    command: sh
    script: |
      echo "$DAG_NAME"
    output: OUT4
  - name: run id
    command: bash
    script: |
      echo "${DAG_RUN_ID}"
    output: OUT5
`,
			outputs: map[string]want{"OUT1": has("/.run.log"), "OUT2": has(".log"), "OUT3": notEmpty, "OUT4": notEmpty, "OUT5": is("run-1")},
			check: func(t *testing.T, r *caseRun) {
				if name := r.outputs["OUT4"]; name != r.host.run.GetDag().GetName() {
					t.Errorf("DAG_NAME %q, want %q", name, r.host.run.GetDag().GetName())
				}
			},
		},
		{
			name: "TestDAGExecution/JQ", daguFile: "integration/jq.yaml",
			dag: `
steps:
  - name: pick
    executor: jq
    command: .person.name
    script: |
      {"person": {"name": "John", "langs": ["go", "sh"]}}
    output: NAME
`,
			outputs: map[string]want{"NAME": is(`"John"`)},
		},
		{
			name: "TestDAGExecution/JSONVar", daguFile: "integration/json_var.yaml",
			dag: `
steps:
  - name: read_config
    command: |
      echo '{"port": 8080, "host": "localhost"}'
    output: CONFIG
  - name: start_server
    command: echo "Starting server at ${CONFIG.host}:${CONFIG.port}"
    output: OUT1
    depends: read_config
`,
			outputs: map[string]want{"OUT1": is("Starting server at localhost:8080")},
		},
		{
			name: "TestDAGExecution/PerlScript", daguFile: "integration/perl-script.yaml", needs: "perl", pkg: "perl",
			dag: `
steps:
  - name: perl
    command: perl
    script: |
      use strict;
      my $who = "World";
      print "Hello $who\n";
    output: OUT1
`,
			outputs: map[string]want{"OUT1": is("Hello World")},
		},
		{
			name: "TestDAGExecution/Workdir", daguFile: "integration/workdir.yaml",
			setup: func(t *testing.T) {
				home, err := filepath.EvalSymlinks(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				t.Setenv("HOME", home)
			},
			dag: `
env:
  - HOME_DIR: $HOME
  - AT_HOME: ~/
steps:
  - name: tilde
    dir: $AT_HOME
    command: echo "$PWD"
    output: OUT1
  - name: variable
    dir: ${HOME_DIR}
    command: echo "$PWD"
    output: OUT2
`,
			outputs: map[string]want{"OUT1": isEnv("HOME"), "OUT2": isEnv("HOME")},
		},
		{
			name: "TestDAGExecution/Issue-810", daguFile: "integration/issue-810.yaml",
			dag: `
params: bar
steps:
  - name: begin
    command: echo start
    output: OUT1
  - name: on an output
    command: echo foo
    depends: begin
    output: OUT2
    preconditions:
      - condition: $OUT1
        expected: start
  - name: on a param
    command: echo bar
    depends: begin
    output: OUT3
    preconditions:
      - condition: "$1"
        expected: bar
  - name: after both
    command: echo baz
    depends: [on an output, on a param]
    output: OUT4
    preconditions:
      - condition: "$1"
        expected: bar
`,
			outputs: map[string]want{"OUT1": is("start"), "OUT2": is("foo"), "OUT3": is("bar"), "OUT4": is("baz")},
		},
		{
			name: "TestDAGExecution/ShellOptions", daguFile: "integration/shellopts.yaml",
			dag: `
steps:
  - name: traced
    shell: bash -o errexit -o xtrace -o pipefail -c
    command: printf 'hello world\n' && ls / | head -n 1 > /dev/null
    output: OUT1
`,
			outputs: map[string]want{"OUT1": has("hello world")},
		},
		{
			name: "TestNestedDAG/CallSub", daguFile: "integration/call-sub.yaml",
			stored: map[string]string{"sub": `
params:
  SUB_P1: xyz
steps:
  - name: print
    command: echo "$SUB_P1"
    output: OUT
`},
			dag: `
steps:
  - name: child
    call: sub
    params: SUB_P1=foo
    output: OUT1
  - name: read the child's output
    command: echo "${OUT1.outputs.OUT}"
    output: OUT2
    depends: child
`,
			outputs: map[string]want{"OUT2": is("foo")},
		},
		{
			name: "TestNestedDAG/NestedGraph", daguFile: "integration/nested_parent.yaml",
			stored: map[string]string{
				"middle": `
params:
  PARAM: VALUE
steps:
  - name: leaf
    run: leaf
    params: "PARAM=${PARAM}"
    output: LEAF
  - name: pass it up
    command: echo "${LEAF.outputs.OUTPUT}"
    output: OUTPUT
    depends: leaf
`,
				"leaf": `
params:
  PARAM: VALUE
steps:
  - name: say
    command: echo "value is ${PARAM}"
    output: OUTPUT
`},
			dag: `
steps:
  - name: middle
    run: middle
    params: PARAM=123
    output: MIDDLE
  - name: print
    command: echo "${MIDDLE.outputs.OUTPUT}"
    output: OUT1
    depends: middle
`,
			outputs: map[string]want{"OUT1": is("value is 123")},
		},
		{
			// Dagu's test checks OUT_SKIP, which its file never sets; the
			// skipped step's output is OUT_SKIP1.
			name: "TestSkippedPreconditions", daguFile: "integration/skipped-preconditions.yaml",
			dag: `
type: graph
steps:
  - name: runs
    command: echo executed
    output: OUT_RUN
  - name: skipped
    command: echo "should not execute"
    output: OUT_SKIP1
    preconditions:
      - condition: "` + bq + `printf no` + bq + `"
        expected: "yes"
  - name: runs too
    command: echo "should execute"
    output: OUT_SKIP2
    preconditions:
      - condition: "` + bq + `printf yes` + bq + `"
        expected: "yes"
`,
			outputs: map[string]want{"OUT_RUN": is("executed"), "OUT_SKIP": absent, "OUT_SKIP1": absent, "OUT_SKIP2": is("should execute")},
		},
		{
			name: "TestComplexDependencies", daguFile: "integration/complex-dependencies.yaml",
			dag: `
steps:
  - name: start
    command: echo start
    output: START
  - name: branch1
    command: echo branch1
    output: BRANCH1
    depends: start
  - name: branch2
    command: echo branch2
    output: BRANCH2
    depends: start
  - name: merge
    command: echo merge
    output: MERGE
    depends: [branch1, branch2]
  - name: final
    command: echo final
    output: FINAL
    depends: merge
`,
			outputs: map[string]want{"START": is("start"), "BRANCH1": is("branch1"), "BRANCH2": is("branch2"), "MERGE": is("merge"), "FINAL": is("final")},
			order:   []string{"start", "branch1", "merge", "final"},
		},

		// chain_test.go
		{
			name: "TestChainExecution", daguFile: "integration/chain.yaml",
			dag: `
type: chain
steps:
  - name: step1
    command: sleep 0.05; echo one
  - name: step2
    command: sleep 0.05; echo two
  - name: step3
    command: echo three
`,
			order: []string{"step1", "step2", "step3"},
		},

		// step_id_test.go
		{
			name: "TestStepIDPropertyAccess/Basic_stdout/stderr_file_access",
			dag: `
steps:
  - name: both streams
    id: gen
    command: |
      echo "Test output data"
      echo "an error line" >&2
    output: GEN_OUTPUT
  - name: their files
    depends: gen
    command: printf 'stdout_file=%s\nstderr_file=%s\n' "${gen.stdout}" "${gen.stderr}"
    output: FILE_PATHS
`,
			outputs: map[string]want{"GEN_OUTPUT": is("Test output data"), "FILE_PATHS": has(".out", ".err")},
		},
		{
			name: "TestStepIDPropertyAccess/Exit_code_access", difference: partial,
			dag: `
steps:
  - name: succeeds
    id: ok
    command: "true"
  - name: fails
    id: failure
    command: exit 42
    continueOn:
      failure: true
  - name: codes
    depends: [ok, failure]
    command: |
      echo "success_code=${ok.exitCode}"
      echo "failure_code=${failure.exitCode}"
    output: EXIT_CODES
`,
			outputs: map[string]want{"EXIT_CODES": is("success_code=0\nfailure_code=42")},
			steps:   map[string]daguhav1.StepStatus{"fails": failed, "codes": ok},
		},
		{
			name: "TestStepIDPropertyAccess/Unknown_step_ID_remains_unchanged",
			dag: `
steps:
  - name: first
    id: first_step
    command: echo Hello
    output: FIRST_OUT
  - name: second
    depends: first_step
    command: |
      echo "known=${first_step.stdout}"
      echo "unknown=\${no_such_step.stdout}"
      echo "invalid=\${first_step.no_such_property}"
    output: RESULT
`,
			outputs: map[string]want{"FIRST_OUT": is("Hello"),
				"RESULT": has("known=", ".out", "${no_such_step.stdout}", "${first_step.no_such_property}")},
		},
		{
			name: "TestStepIDPropertyAccess/Regular_variable_takes_precedence_over_step_ID",
			dag: `
steps:
  - name: make json
    id: check
    command: echo '{"status":"from-step"}'
    output: check
  - name: read both
    depends: check
    command: |
      echo "variable=${check.status}"
      echo "stdout=${check.stdout}"
    output: PRECEDENCE_TEST
`,
			outputs: map[string]want{"check": is(`{"status":"from-step"}`),
				"PRECEDENCE_TEST": has("variable=from-step", "stdout=", ".out")},
		},
		{
			name: "TestStepIDComplexScenarios/MultipleStepsWithSameOutput",
			dag: `
steps:
  - name: first
    id: gen1
    command: echo "data from gen1"
    output: DATA
  - name: second
    id: gen2
    command: echo "data from gen2"
    output: DATA
  - name: consumer
    depends: [gen1, gen2]
    command: |
      echo "gen1_output=data from gen1"
      echo "gen2_output=data from gen2"
      echo "current_DATA=${DATA}"
    output: RESULT
`,
			outputs: map[string]want{"DATA": notEmpty,
				"RESULT": has("gen1_output=data from gen1", "gen2_output=data from gen2", "current_DATA=data from gen")},
		},
		{
			name: "TestStepIDComplexScenarios/ChainedStepReferences",
			dag: `
steps:
  - name: ten
    id: s1
    command: echo 10
    output: NUM
  - name: fifteen
    id: s2
    depends: s1
    command: echo 15
    output: NUM2
  - name: twenty
    id: s3
    depends: s2
    command: echo 20
    output: NUM3
  - name: sum
    depends: s3
    command: |
      echo "s1=${NUM}"
      echo "s2=${NUM2}"
      echo "s3=${NUM3}"
      echo "total=$((NUM + NUM2 + NUM3))"
    output: FINAL_RESULT
`,
			outputs: map[string]want{"NUM": is("10"), "NUM2": is("15"), "NUM3": is("20"), "FINAL_RESULT": is("s1=10\ns2=15\ns3=20\ntotal=45")},
		},
		{
			name: "TestStepIDComplexScenarios/StepIDInScript",
			dag: `
steps:
  - name: setup
    id: setup_step
    command: echo '{"env":"test","timeout":30}'
    output: CONFIG
  - name: script
    depends: setup_step
    script: |
      #!/bin/bash
      set -e
      echo "Setup logs available at: ${setup_step.stdout}"
    output: SCRIPT_OUTPUT
`,
			outputs: map[string]want{"CONFIG": is(`{"env":"test","timeout":30}`),
				"SCRIPT_OUTPUT": has("Setup logs available at:", ".out")},
		},
		{
			name: "TestStepIDErrorCases/InvalidJSONPath",
			dag: `
steps:
  - name: not json
    id: gen
    command: echo "not json"
    output: DATA
  - name: access
    depends: gen
    command: echo "data=${DATA}"
    output: RESULT
`,
			outputs: map[string]want{"DATA": is("not json"), "RESULT": is("data=not json")},
		},

		// partial_success_test.go
		{
			name: "TestPartialSuccess/Basic_partial_success", difference: partial,
			dag: `
steps:
  - name: fail-step
    command: exit 1
    continueOn:
      failure: true
  - name: success-step
    command: echo "runs after the failure"
`,
			steps: map[string]daguhav1.StepStatus{"fail-step": failed, "success-step": ok},
		},
		{
			name: "TestPartialSuccess/Success_by_marking_step_as_successful",
			dag: `
steps:
  - name: fail-step
    command: exit 1
    continueOn:
      failure: true
      markSuccess: true
  - name: success-step
    command: echo "runs after the failure"
`,
			steps: map[string]daguhav1.StepStatus{"fail-step": ok, "success-step": ok},
		},
		{
			name: "TestPartialSuccess/Single_step_with_continueOn_failure", difference: partial,
			dag: `
steps:
  - name: fail-step
    command: exit 1
    continueOn:
      failure: true
`,
			steps: map[string]daguhav1.StepStatus{"fail-step": failed},
		},
		{
			name: "TestPartialSuccess/Single_step_with_continueOn_marking_as_success",
			dag: `
steps:
  - name: fail-step
    command: exit 1
    continueOn:
      failure: true
      markSuccess: true
`,
			steps: map[string]daguhav1.StepStatus{"fail-step": ok},
		},

		// repeat_test.go, repeat_on_exitcode_test.go
		{
			name: "TestRepeatPolicy_WithLimit", daguFile: "integration/repeat-with-limit.yaml",
			dag: `
steps:
  - name: repeat-step
    command: echo "once more"
    repeatPolicy:
      repeat: true
      limit: 3
      intervalSec: 0
`,
			steps:   map[string]daguhav1.StepStatus{"repeat-step": ok},
			repeats: map[string]uint32{"repeat-step": 3},
		},
		{
			name: "TestRepeatPolicy_WithLimitAndCondition", daguFile: "integration/repeat-limit-condition.yaml",
			dag: `
steps:
  - name: increment-counter
    script: |
      n=$(cat "$CASE_DIR/count" 2>/dev/null || echo 0)
      n=$((n + 1))
      echo "$n" > "$CASE_DIR/count"
      echo "$n"
    output: FINAL_COUNT
    repeatPolicy:
      repeat: true
      limit: 5
      intervalSec: 0
      condition: "` + bq + `cat $CASE_DIR/count` + bq + `"
      expected: "10"
`,
			steps:   map[string]daguhav1.StepStatus{"increment-counter": ok},
			repeats: map[string]uint32{"increment-counter": 5},
		},
		{
			name: "TestRepeatPolicy_WithLimitReachedBeforeCondition", daguFile: "integration/repeat-limit-before-condition.yaml",
			dag: `
steps:
  - name: check-flag
    command: test ! -e "$CASE_DIR/flag"
    repeatPolicy:
      repeat: true
      limit: 3
      intervalSec: 0
`,
			steps:   map[string]daguhav1.StepStatus{"check-flag": ok},
			repeats: map[string]uint32{"check-flag": 3},
		},
		{
			// Dagu's file counts in a file of /tmp it never removes:
			// removed before the run, as Dagu's test does.
			name: "TestRepeatPolicy_OnExitCode", daguFile: "integration/repeat-on-exitcode-fail.yaml",
			setup: func(t *testing.T) {
				counter := "/tmp/dagu-test-counter-repeat-on-exitcode"
				_ = os.Remove(counter)
				t.Cleanup(func() { _ = os.Remove(counter) })
			},
			dag: `
steps:
  - name: repeat-on-fail
    command: |
      n=$(cat "$CASE_DIR/count" 2>/dev/null || echo 0)
      echo $((n + 1)) > "$CASE_DIR/count"
      [ "$n" -ge 3 ] || exit 1
    repeatPolicy:
      exitCode: [1]
      limit: 5
      intervalSec: 0
`,
			steps: map[string]daguhav1.StepStatus{"repeat-on-fail": ok},
			check: func(t *testing.T, r *caseRun) {
				if n := r.host.last()["repeat-on-fail"].GetRepeat(); n < 3 {
					t.Errorf("repeat-on-fail ran %d times, want at least 3", n)
				}
			},
		},

		// large_output_test.go
		{
			name: "TestLargeOutput_64KB", daguFile: "integration/large-output-64kb.yaml",
			dag: `
steps:
  - name: read-64kb-file
    command: head -c 65536 /dev/zero | tr '\0' a
    output: OUTPUT_64KB
`,
			steps:   map[string]daguhav1.StepStatus{"read-64kb-file": ok},
			outputs: map[string]want{"OUTPUT_64KB": notEmpty},
		},
		{
			name: "TestLargeOutput_65KB", daguFile: "integration/large-output-65kb.yaml",
			dag: `
steps:
  - name: read-65kb-file
    command: head -c 66560 /dev/zero | tr '\0' b
    output: OUTPUT_65KB
`,
			steps:   map[string]daguhav1.StepStatus{"read-65kb-file": ok},
			outputs: map[string]want{"OUTPUT_65KB": notEmpty},
		},
		{
			name: "TestLargeOutput_128KB", daguFile: "integration/large-output-128kb.yaml",
			dag: `
steps:
  - name: read-128kb-file
    command: head -c 131072 /dev/zero | tr '\0' c
    output: OUTPUT_128KB
`,
			steps:   map[string]daguhav1.StepStatus{"read-128kb-file": ok},
			outputs: map[string]want{"OUTPUT_128KB": notEmpty},
		},

		// localdag_test.go
		{
			name: "TestLocalDAGExecution/SimpleLocalDAG",
			dag: `
steps:
  - name: run-local-child
    run: greeter
    params: NAME=World
    output: CHILD_RESULT
  - name: use-output
    command: echo "Child said ${CHILD_RESULT.outputs.GREETING}"
    depends: run-local-child
---
name: greeter
params:
  - NAME
steps:
  - name: greet
    command: echo "Hello, ${NAME}!"
    output: GREETING
  - name: confirm
    command: echo "the greeting was ${GREETING}"
    output: CONFIRMATION
    depends: greet
`,
			steps: map[string]daguhav1.StepStatus{"run-local-child": ok},
			logs:  map[string]want{"use-output": has("Child said Hello, World!")},
		},
		{
			name: "TestLocalDAGExecution/ParallelLocalDAGExecution",
			dag: `
steps:
  - name: parallel-tasks
    run: task
    parallel:
      items:
        - TASK_ID=1 TASK_NAME=alpha
        - TASK_ID=2 TASK_NAME=beta
        - TASK_ID=3 TASK_NAME=gamma
      maxConcurrent: 2
---
name: task
params:
  - TASK_ID
  - TASK_NAME
steps:
  - name: begin
    command: echo "task ${TASK_ID} (${TASK_NAME}) begins"
  - name: work
    command: echo "working on ${TASK_NAME}, id ${TASK_ID}"
    depends: begin
  - name: end
    command: echo "${TASK_NAME} done"
    depends: work
`,
			steps:    map[string]daguhav1.StepStatus{"parallel-tasks": ok},
			children: map[string]int{"parallel-tasks": 3},
		},
		{
			name: "TestLocalDAGExecution/NestedLocalDAGs",
			difference: "Dagu 1.17 lets only the file's first DAG start its other DAGs, so middle cannot start leaf and the run fails; " +
				"in daguha a child inherits the local DAGs of its parent's file (docs/workflows.md, Child runs), so it runs",
			dag: `
steps:
  - name: run-middle-dag
    run: middle
    params: ROOT_PARAM=FromRoot
---
name: middle
params:
  - ROOT_PARAM
steps:
  - name: take the param
    command: echo "got ${ROOT_PARAM}"
    output: MIDDLE_OUTPUT
  - name: run-leaf-dag
    run: leaf
    params: "MIDDLE_PARAM=${MIDDLE_OUTPUT} LEAF_PARAM=FromMiddle"
    depends: take the param
---
name: leaf
params:
  - MIDDLE_PARAM
  - LEAF_PARAM
steps:
  - name: last
    command: echo "middle ${MIDDLE_PARAM}, leaf ${LEAF_PARAM}"
`,
			steps: map[string]daguhav1.StepStatus{"run-middle-dag": ok},
		},
		{
			name: "TestLocalDAGExecution/LocalDAGWithConditionalExecution",
			dag: `
env:
  - ENVIRONMENT: production
steps:
  - name: check-env
    command: echo "${ENVIRONMENT}"
    output: ENV_TYPE
  - name: run-prod-dag
    run: production
    depends: check-env
    preconditions:
      - condition: "${ENV_TYPE}"
        expected: production
  - name: run-dev-dag
    run: development
    depends: check-env
    preconditions:
      - condition: "${ENV_TYPE}"
        expected: development
---
name: production
steps:
  - name: deploy
    command: echo "deploying to production"
  - name: verify
    command: echo "verifying production"
    depends: deploy
---
name: development
steps:
  - name: build
    command: echo "building for development"
`,
			steps: map[string]daguhav1.StepStatus{"check-env": ok, "run-prod-dag": ok, "run-dev-dag": skipped},
		},
		{
			name: "TestLocalDAGExecution/LocalDAGWithOutputPassing",
			dag: `
steps:
  - name: generate-data
    run: generator
    output: GEN_OUTPUT
  - name: process-data
    run: processor
    params: "INPUT_DATA=${GEN_OUTPUT.outputs.DATA}"
    depends: generate-data
---
name: generator
steps:
  - name: create
    command: echo "test-value-42"
    output: DATA
---
name: processor
params:
  - INPUT_DATA
steps:
  - name: parse
    command: echo "processing ${INPUT_DATA}"
    output: RESULT
  - name: validate
    command: test "${RESULT}" = "processing test-value-42"
    depends: parse
`,
			steps: map[string]daguhav1.StepStatus{"generate-data": ok, "process-data": ok},
		},
		{
			name: "TestLocalDAGExecution/LocalDAGReferencesNonExistent",
			difference: "Dagu fails the run when the step starts; daguha refuses the file when it is pushed or enqueued " +
				"(docs/workflows.md: a child DAG that is neither local nor stored)",
			dag: `
steps:
  - name: run-missing-dag
    run: non-existent-dag
---
name: existing
steps:
  - name: task
    command: echo test
`,
			refused: `unknown DAG "non-existent-dag"`,
		},
		{
			// SETUP_STATUS holds a space: its value is quoted in the
			// params string, as Dagu's params syntax wants (Dagu's test
			// leaves it bare; both Dagu's parser and daguha's then read
			// SETUP=Setting and a positional "up").
			name: "TestLocalDAGExecution/LocalDAGWithComplexDependencies",
			dag: `
steps:
  - name: setup
    command: echo "Setting up"
    output: SETUP_STATUS
  - name: task1
    run: task
    params: 'TASK_NAME=Task1 SETUP="${SETUP_STATUS}"'
    depends: setup
    output: TASK1_RESULT
  - name: task2
    run: task
    params: 'TASK_NAME=Task2 SETUP="${SETUP_STATUS}"'
    depends: setup
    output: TASK2_RESULT
  - name: combine
    command: echo "Combining ${TASK1_RESULT.outputs.RESULT} and ${TASK2_RESULT.outputs.RESULT}"
    depends: [task1, task2]
---
name: task
params:
  - TASK_NAME
  - SETUP
steps:
  - name: process
    command: echo "${TASK_NAME} processing with ${SETUP}"
    output: RESULT
`,
			steps: map[string]daguhav1.StepStatus{"setup": ok, "task1": ok, "task2": ok, "combine": ok},
			logs:  map[string]want{"combine": has("Combining", "Task1 processing with Setting up", "Task2 processing with Setting up")},
		},

		// childdag_test.go
		{
			name: "TestRetryChildDAGRun",
			skip: "Dagu's `retry` command runs a finished run again from status records the test edits by hand; " +
				"daguha has no retry of a finished run (a DAG's retryPolicy queues a failed run again: docs/workflows.md)",
		},
		{
			name: "TestRetryPolicyChildDAGRunWithOutputCapture",
			stored: map[string]string{"child_retry": `
steps:
  - name: retry_step
    command: |
      if [ ! -e "$CASE_DIR/tried" ]; then
        touch "$CASE_DIR/tried"
        echo "output_attempt_1"
        exit 1
      fi
      echo "output_attempt_2_success"
    output: STEP_OUTPUT
    retryPolicy:
      limit: 2
      intervalSec: 0
`},
			dag: `
steps:
  - name: call_child
    run: child_retry
    output: CHILD_OUTPUT
`,
			steps:   map[string]daguhav1.StepStatus{"call_child": ok},
			outputs: map[string]want{"CHILD_OUTPUT.status": is("succeeded"), "CHILD_OUTPUT.outputs.STEP_OUTPUT": has("output_attempt_2_success")},
		},
		{
			name: "TestBasicChildDAGOutputCapture",
			stored: map[string]string{"child_basic": `
steps:
  - name: basic_step
    command: echo "hello_from_child"
    output: STEP_OUTPUT
`},
			dag: `
steps:
  - name: call_child
    run: child_basic
    output: CHILD_OUTPUT
`,
			steps:   map[string]daguhav1.StepStatus{"call_child": ok},
			outputs: map[string]want{"CHILD_OUTPUT.status": is("succeeded"), "CHILD_OUTPUT.outputs.STEP_OUTPUT": has("hello_from_child")},
		},
		{
			name: "TestRetryPolicyBasicOutputCapture",
			dag: `
steps:
  - name: retry_step
    command: |
      if [ ! -e "$CASE_DIR/tried" ]; then
        touch "$CASE_DIR/tried"
        echo "output_attempt_1"
        exit 1
      fi
      echo "output_attempt_2_success"
    output: STEP_OUTPUT
    retryPolicy:
      limit: 2
      intervalSec: 0
`,
			steps:   map[string]daguhav1.StepStatus{"retry_step": ok},
			outputs: map[string]want{"STEP_OUTPUT": has("output_attempt_2_success").but("output_attempt_1")},
		},
		{
			name: "TestNoRetryPolicyOutputCapture",
			dag: `
steps:
  - name: success_step
    command: echo "output_first_attempt_success"
    output: STEP_OUTPUT
`,
			steps:   map[string]daguhav1.StepStatus{"success_step": ok},
			outputs: map[string]want{"STEP_OUTPUT": has("output_first_attempt_success")},
		},

		// parallel_test.go
		{
			name: "TestParallelExecution_SimpleItems", daguFile: "integration/parallel-simple.yaml",
			stored: map[string]string{"item": itemChild},
			dag: `
steps:
  - name: process-items
    run: item
    parallel:
      items: [one, two, three]
      maxConcurrent: 2
`,
			steps:    map[string]daguhav1.StepStatus{"process-items": ok},
			children: map[string]int{"process-items": 3},
		},
		{
			name: "TestParallelExecution_ObjectItems", daguFile: "integration/parallel-objects.yaml",
			difference: "Dagu 1.17 passes a map item to its child as JSON; daguha passes it as the child's named params, " +
				"REGION=... VERSION=... (docs/workflows.md, Parallel steps: as current Dagu)",
			stored: map[string]string{"deploy": `
params:
  - REGION: nowhere
  - VERSION: "0"
steps:
  - name: deploy
    command: echo "version $VERSION to $REGION"
    output: DEPLOYMENT_RESULT
`},
			dag: `
steps:
  - name: process-regions
    run: deploy
    parallel:
      items:
        - {REGION: us-east-1, VERSION: "1.0.0"}
        - {REGION: us-west-2, VERSION: "1.0.1"}
        - {REGION: eu-west-1, VERSION: "1.0.2"}
      maxConcurrent: 2
`,
			steps:    map[string]daguhav1.StepStatus{"process-regions": ok},
			children: map[string]int{"process-regions": 3},
			check: func(t *testing.T, r *caseRun) {
				for _, child := range r.host.last()["process-regions"].GetParallelChildren() {
					if p := child.GetParams(); !strings.Contains(p, "REGION=") || !strings.Contains(p, "VERSION=") {
						t.Errorf("child params %q, want REGION= and VERSION=", p)
					}
				}
			},
		},
		{
			name: "TestParallelExecution_VariableReference", daguFile: "integration/parallel-variable.yaml",
			stored: map[string]string{"item": itemChild},
			dag: `
params:
  - ITEMS: '["alpha", "beta", "gamma", "delta"]'
steps:
  - name: process-from-var
    run: item
    parallel: ${ITEMS}
`,
			steps:    map[string]daguhav1.StepStatus{"process-from-var": ok},
			children: map[string]int{"process-from-var": 4},
		},
		{
			name: "TestParallelExecution_SpaceSeparated", daguFile: "integration/parallel-space-separated.yaml",
			stored: map[string]string{"item": itemChild},
			dag: `
env:
  - SERVERS: "server1 server2 server3"
steps:
  - name: process-servers
    run: item
    parallel: ${SERVERS}
`,
			steps:    map[string]daguhav1.StepStatus{"process-servers": ok},
			children: map[string]int{"process-servers": 3},
		},
		{
			name: "TestParallelExecution_DirectVariable", daguFile: "integration/parallel-direct-variable.yaml",
			stored: map[string]string{"task": taskChild},
			dag: `
env:
  - ITEMS: '["task1", "task2", "task3"]'
steps:
  - name: parallel-tasks
    run: task
    parallel: $ITEMS
  - name: aggregate-results
    command: echo "all done"
    depends: parallel-tasks
    output: FINAL_RESULT
`,
			steps:    map[string]daguhav1.StepStatus{"parallel-tasks": ok, "aggregate-results": ok},
			children: map[string]int{"parallel-tasks": 3},
		},
		{
			// Dagu's test also finds "PARALLEL_RESULTS=" in the value: its
			// record keeps an output as NAME=value; the value is the rest.
			name:   "TestParallelExecution_WithOutput",
			stored: map[string]string{"task": taskChild},
			dag: `
steps:
  - name: parallel-with-output
    run: task
    parallel:
      items: [A, B, C]
    output: PARALLEL_RESULTS
  - name: use-output
    command: |
      echo "Parallel execution results:"
      echo "${PARALLEL_RESULTS}"
    depends: parallel-with-output
    output: FINAL_OUTPUT
`,
			steps:    map[string]daguhav1.StepStatus{"parallel-with-output": ok, "use-output": ok},
			children: map[string]int{"parallel-with-output": 3},
			outputs: map[string]want{"PARALLEL_RESULTS": has(`"summary"`, `"total": 3`, `"succeeded": 3`, `"results"`, `"outputs"`,
				`"TASK_OUTPUT"`, "TASK_RESULT_A", "TASK_RESULT_B", "TASK_RESULT_C")},
		},
		{
			// The wording of the refusals is daguha's (Dagu's differs).
			name:    "TestParallelExecution_InvalidConfiguration/MissingChildDAG",
			refused: "steps[0].parallel: parallel is for run/call steps",
			dag: `
steps:
  - name: parallel-without-run
    command: echo test
    parallel:
      items: [a, b]
`,
		},
		{
			name:    "TestParallelExecution_InvalidConfiguration/NoItemsOrVariable",
			refused: "steps[0].parallel: want items",
			stored:  map[string]string{"item": itemChild},
			dag: `
steps:
  - name: empty-parallel
    run: item
    parallel:
      maxConcurrent: 2
`,
		},
		{
			name:    "TestParallelExecution_InvalidConfiguration/InvalidMaxConcurrent",
			refused: "steps[0].parallel.maxConcurrent: must be at least 1",
			stored:  map[string]string{"item": itemChild},
			dag: `
steps:
  - name: invalid-concurrent
    run: item
    parallel:
      items: [a, b]
      maxConcurrent: 0
`,
		},
		{
			name:   "TestParallelExecution_DeterministicIDs",
			stored: map[string]string{"item": itemChild},
			dag: `
steps:
  - name: process
    run: item
    parallel:
      items: [test1, test2, test1, test3, test2]
`,
			children: map[string]int{"process": 3},
			check: func(t *testing.T, r *caseRun) {
				var params []string
				for _, child := range r.host.last()["process"].GetParallelChildren() {
					params = append(params, child.GetParams())
				}
				if got := strings.Join(params, " "); got != "test1 test2 test3" {
					t.Errorf("children's params %q, want test1 test2 test3", got)
				}
			},
		},
		{
			name: "TestParallelExecution_PartialFailure",
			stored: map[string]string{"maybe-fail": `
params:
  - INPUT: default
steps:
  - name: process
    command: |
      if [ "$1" = fail ]; then
        echo "failing as asked"
        exit 1
      fi
      echo "Processing: $1"
`},
			dag: `
steps:
  - name: parallel-mixed
    run: maybe-fail
    parallel:
      items: [ok1, fail, ok2, fail, ok3]
`,
			status:   runFailed,
			message:  "step parallel-mixed failed",
			steps:    map[string]daguhav1.StepStatus{"parallel-mixed": failed},
			children: map[string]int{"parallel-mixed": 4},
		},
		{
			name:   "TestParallelExecution_OutputsArray",
			stored: map[string]string{"task": taskChild},
			dag: `
steps:
  - name: parallel-tasks
    run: task
    parallel:
      items: [task1, task2, task3]
    output: RESULTS
  - name: use-first-output
    command: |
      echo "First output: ${RESULTS.outputs[0].TASK_OUTPUT}"
    depends: parallel-tasks
    output: FIRST_OUTPUT
  - name: use-all-outputs
    command: |
      echo "Output 0: ${RESULTS.outputs[0].TASK_OUTPUT}"
      echo "Output 1: ${RESULTS.outputs[1].TASK_OUTPUT}"
      echo "Output 2: ${RESULTS.outputs[2].TASK_OUTPUT}"
    depends: parallel-tasks
    output: ALL_OUTPUTS
`,
			steps: map[string]daguhav1.StepStatus{"use-first-output": ok, "use-all-outputs": ok},
			outputs: map[string]want{
				"FIRST_OUTPUT": {contains: []string{"First output:"}, pattern: `TASK_RESULT_task[123]`},
				"ALL_OUTPUTS":  has("TASK_RESULT_task1", "TASK_RESULT_task2", "TASK_RESULT_task3"),
			},
		},
		{
			name:   "TestParallelExecution_OutOfBoundsAccess",
			stored: map[string]string{"task": taskChild},
			dag: `
steps:
  - name: parallel-tasks
    run: task
    parallel:
      items: [task1, task2]
    output: RESULTS
  - name: access-out-of-bounds
    command: |
      echo "Valid index 0: ${RESULTS.outputs[0].TASK_OUTPUT}"
      echo "Valid index 1: ${RESULTS.outputs[1].TASK_OUTPUT}"
      echo "Out of bounds index 2: ${RESULTS.outputs[2].TASK_OUTPUT}"
      echo "Out of bounds index 10: ${RESULTS.outputs[10].TASK_OUTPUT}"
    depends: parallel-tasks
    output: TEST_OUTPUT
`,
			steps: map[string]daguhav1.StepStatus{"access-out-of-bounds": ok},
			outputs: map[string]want{"TEST_OUTPUT": has("Valid index 0:", "TASK_RESULT_task1", "Valid index 1:", "TASK_RESULT_task2",
				"Out of bounds index 2: <nil>", "Out of bounds index 10: <nil>")},
		},
		{
			name:   "TestParallelExecution_MinimalRetry",
			stored: map[string]string{"always-fails": "steps:\n  - name: fail\n    command: exit 1\n"},
			dag: `
steps:
  - name: parallel-execution
    run: always-fails
    parallel:
      items: [item1]
    retryPolicy:
      limit: 1
      intervalSec: 0
    output: RESULTS
`,
			status:  runFailed,
			steps:   map[string]daguhav1.StepStatus{"parallel-execution": failed},
			retries: map[string]uint32{"parallel-execution": 2}, // the second try: Dagu's RetryCount 1
		},
		{
			name: "TestParallelExecution_RetryAndContinueOn", difference: partial,
			stored: map[string]string{"always-fails": "steps:\n  - name: fail\n    command: exit 1\n"},
			dag: `
steps:
  - name: parallel-execution
    run: always-fails
    parallel:
      items: [item1]
    retryPolicy:
      limit: 1
      intervalSec: 0
    continueOn:
      failure: true
    output: RESULTS
  - name: next-step
    command: echo "runs anyway"
    depends: parallel-execution
`,
			steps:   map[string]daguhav1.StepStatus{"parallel-execution": failed, "next-step": ok},
			retries: map[string]uint32{"parallel-execution": 2},
			outputs: map[string]want{"RESULTS": has(`"failed": 1`)},
		},
		{
			name: "TestParallelExecution_OutputCaptureWithFailures", difference: partial,
			stored: map[string]string{"output-or-fail": `
steps:
  - name: process
    command: |
      echo "Output for $1"
      [ "$1" != fail ]
    output: RESULT
`},
			dag: `
steps:
  - name: parallel-test
    run: output-or-fail
    parallel:
      items: [success, fail]
    output: RESULTS
    continueOn:
      failure: true
`,
			steps: map[string]daguhav1.StepStatus{"parallel-test": failed},
			outputs: map[string]want{
				"RESULTS":                   has(`"total": 2`, `"succeeded": 1`, `"failed": 1`, "Output for success", `"status": "failed"`).but("Output for fail"),
				"RESULTS.outputs[0].RESULT": is("Output for success"),
				"RESULTS.outputs[1]":        is("<nil>"),
			},
		},
		{
			name: "TestParallelExecution_OutputCaptureWithRetry",
			stored: map[string]string{"retry-once": `
steps:
  - name: retry-step
    command: |
      if [ ! -e "$CASE_DIR/tried" ]; then
        touch "$CASE_DIR/tried"
        echo "First attempt"
        exit 1
      fi
      echo "Retry success"
    output: OUTPUT
    retryPolicy:
      limit: 1
      intervalSec: 0
`},
			dag: `
steps:
  - name: parallel-retry
    run: retry-once
    parallel:
      items: [item1]
    output: RESULTS
`,
			steps:   map[string]daguhav1.StepStatus{"parallel-retry": ok},
			outputs: map[string]want{"RESULTS": has(`"succeeded": 1`, `"failed": 0`, "Retry success").but("First attempt")},
		},
		{
			name: "TestParallelExecution_FailedChildOutputExclusion", difference: partial,
			stored: map[string]string{"conditional": `
steps:
  - name: process
    command: |
      case "$1" in
        fail1) echo "Failed output 1"; exit 1 ;;
        fail2) echo "Failed output 2"; exit 2 ;;
      esac
      echo "Success output for $1"
    output: RESULT
`},
			dag: `
steps:
  - name: parallel-mixed
    run: conditional
    parallel:
      items: [success1, fail1, success2, fail2, success3]
    output: RESULTS
    continueOn:
      failure: true
`,
			steps: map[string]daguhav1.StepStatus{"parallel-mixed": failed},
			outputs: map[string]want{
				"RESULTS": has(`"total": 5`, `"succeeded": 3`, `"failed": 2`, `"outputs": [`,
					"Success output for success1", "Success output for success2", "Success output for success3").
					but("Failed output 1", "Failed output 2"),
				"RESULTS.outputs[0].RESULT": has("Success output"),
				"RESULTS.outputs[1].RESULT": has("Success output"),
				"RESULTS.outputs[2].RESULT": has("Success output"),
				"RESULTS.outputs[3]":        is("<nil>"),
			},
		},
		{
			name:       "TestParallelExecution_ExceedsMaxLimit",
			difference: "Dagu fails the run when the step starts; daguha refuses the file when it is pushed or enqueued (docs/workflows.md, Parallel steps: 1-1000 items)",
			stored:     map[string]string{"item": itemChild},
			dag:        manyItems(1001),
			refused:    "steps[0].parallel.items: 1001 items, more than the limit of 1000",
		},
		{
			// Dagu's test only sees the run start; here it runs to its end.
			name:     "TestParallelExecution_ExactlyMaxLimit",
			stored:   map[string]string{"item": itemChild},
			dag:      manyItems(1000),
			children: map[string]int{"fan out": 1000},
		},
		{
			name: "TestParallelExecution_ObjectItemProperties",
			stored: map[string]string{"sync-data": `
params:
  - REGION: ""
  - BUCKET: ""
steps:
  - name: sync
    script: |
      echo "Syncing data from region: $REGION"
      echo "Using bucket: $BUCKET"
      echo "Sync completed for $BUCKET in $REGION"
    output: SYNC_RESULT
`},
			dag: `
steps:
  - name: get configs
    command: |
      echo '[{"region": "us-east-1", "bucket": "data-us"},
             {"region": "eu-west-1", "bucket": "data-eu"},
             {"region": "ap-south-1", "bucket": "data-ap"}]'
    output: CONFIGS
  - name: sync data
    run: sync-data
    parallel:
      items: ${CONFIGS}
      maxConcurrent: 2
    params:
      - REGION: ${ITEM.region}
      - BUCKET: ${ITEM.bucket}
    depends: get configs
    output: RESULTS
`,
			steps:    map[string]daguhav1.StepStatus{"get configs": ok, "sync data": ok},
			children: map[string]int{"sync data": 3},
			outputs: map[string]want{"RESULTS": has(`"total": 3`, `"succeeded": 3`, `"failed": 0`,
				"Syncing data from region: us-east-1", "Using bucket: data-us",
				"Syncing data from region: eu-west-1", "Using bucket: data-eu",
				"Syncing data from region: ap-south-1", "Using bucket: data-ap",
				"Sync completed for data-us in us-east-1", "Sync completed for data-eu in eu-west-1", "Sync completed for data-ap in ap-south-1")},
		},
		{
			name: "TestParallelExecution_DynamicFileDiscovery",
			files: map[string]string{"test-data/data1.csv": "id,name\n1,data1.csv\n", "test-data/data2.csv": "id,name\n1,data2.csv\n",
				"test-data/data3.csv": "id,name\n1,data3.csv\n"},
			stored: map[string]string{"process-file": `
params:
  - ITEM: ""
steps:
  - name: process
    script: |
      FILE="$ITEM"
      echo "Processing file: ${FILE}"
      if [ ! -f "$FILE" ]; then
        echo "no such file"
        exit 1
      fi
      echo "File has $(wc -l < "$FILE") lines"
    output: PROCESS_RESULT
`},
			dag: `
steps:
  - name: get files
    command: find "$CASE_DIR/test-data" -name "*.csv" -type f
    output: FILES
  - name: process files
    run: process-file
    parallel: ${FILES}
    params:
      - ITEM: ${ITEM}
    depends: get files
    output: RESULTS
`,
			steps:    map[string]daguhav1.StepStatus{"get files": ok, "process files": ok},
			children: map[string]int{"process files": 3},
			outputs: map[string]want{
				"FILES": has("data1.csv", "data2.csv", "data3.csv"),
				"RESULTS": {contains: []string{`"total": 3`, `"succeeded": 3`, `"failed": 0`, "Processing file:", "data1.csv", "data2.csv", "data3.csv"},
					pattern: `File has\s+2 lines`},
			},
		},
		{
			name: "TestParallelExecution_StaticObjectItems", difference: partial,
			stored: map[string]string{"deploy-service": `
params:
  - SERVICE_NAME: ""
  - PORT: ""
  - REPLICAS: ""
steps:
  - name: validate
    script: |
      if [ -z "$SERVICE_NAME" ] || [ -z "$PORT" ] || [ -z "$REPLICAS" ]; then
        echo "a parameter is missing"
        exit 1
      fi
      echo "Service: $SERVICE_NAME"
      echo "Port: $PORT"
      echo "Replicas: $REPLICAS"
    output: VALIDATE_RESULT
  - name: deploy
    script: |
      echo "Deploying $SERVICE_NAME..."
      echo "  - Binding to port $PORT"
      echo "  - Scaling to $REPLICAS replicas"
      if [ "$SERVICE_NAME" = api-service ]; then
        echo "port $PORT is taken"
        exit 1
      fi
      echo "Successfully deployed $SERVICE_NAME"
    depends: validate
    output: DEPLOY_RESULT
`},
			dag: `
steps:
  - name: deploy services
    run: deploy-service
    parallel:
      maxConcurrent: 3
      items:
        - {name: web-service, port: 8080, replicas: 3}
        - {name: api-service, port: 8081, replicas: 2}
        - {name: worker-service, port: 8082, replicas: 5}
    params:
      - SERVICE_NAME: ${ITEM.name}
      - PORT: ${ITEM.port}
      - REPLICAS: ${ITEM.replicas}
    continueOn:
      failure: true
    output: DEPLOYMENT_RESULTS
`,
			steps:    map[string]daguhav1.StepStatus{"deploy services": failed},
			children: map[string]int{"deploy services": 3},
			outputs: map[string]want{"DEPLOYMENT_RESULTS": has(`"total": 3`, `"succeeded": 2`, `"failed": 1`,
				"Service: web-service", "Port: 8080", "Replicas: 3", "Service: worker-service", "Port: 8082", "Replicas: 5",
				"Successfully deployed web-service", "Successfully deployed worker-service",
				"Binding to port 8080", "Scaling to 3 replicas", "Binding to port 8082", "Scaling to 5 replicas")},
		},
	}
}
