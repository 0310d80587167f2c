package worker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daguha/daguha/dispatch/dagfile"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's step forms, run by the engine with real processes. Each test
// writes a DAG file as a Dagu user would, parses it with package dagfile
// and runs it.

// yamlRun is a run of the first DAG of text; $D in it is dir.
func yamlRun(t *testing.T, dir, text, params string) *daguhav1.Run {
	t.Helper()
	f, err := dagfile.Parse("test.yaml", []byte(strings.ReplaceAll(text, "$D", dir)))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return &daguhav1.Run{Id: "run-1", DagName: f.Dags[0].GetName(), Attempt: 1, Dag: f.Dags[0], Params: params}
}

// runYAML runs the DAG text and returns the run's end and the host.
func runYAML(t *testing.T, dir, text string) (result, *fakeHost) {
	t.Helper()
	host := &fakeHost{}
	return execute(t, context.Background(), testEngine(t), yamlRun(t, dir, text, ""), host), host
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func wantRun(t *testing.T, r result, host *fakeHost, status daguhav1.RunStatus, message string) {
	t.Helper()
	if r.status != status || !strings.Contains(r.message, message) {
		t.Fatalf("run: %s %q, want %s …%s…; steps %v", r.status, r.message, status, message, host.last())
	}
}

func TestEngineRunsOneLineStepsInOrderUnderTheirGeneratedNames(t *testing.T) {
	dir := t.TempDir()
	r, host := runYAML(t, dir, "steps:\n  - echo one >> $D/order\n  - echo two >> $D/order\n  - id: third\n    command: echo three >> $D/order\n")
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
	wantStatus(t, host, map[string]daguhav1.StepStatus{"cmd_1": 2, "cmd_2": 2, "third": 2})
	if got := readFile(t, filepath.Join(dir, "order")); got != "one\ntwo\nthree\n" {
		t.Errorf("order %q", got)
	}
}

func TestEngineStepsDependOnEachOtherByID(t *testing.T) {
	dir := t.TempDir()
	r, host := runYAML(t, dir, `type: graph
steps:
  - name: make the file
    id: make
    command: sleep 0.2; echo made > $D/file
  - command: cat $D/file
    depends: make
`)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
	if tail := host.last()["cmd_2"].GetOutputTail(); tail != "made\n" {
		t.Errorf("the dependant ran before its dependency: %q", tail)
	}
}

func TestEngineRunsACommandListInTurnStoppingAtTheFirstFailure(t *testing.T) {
	dir := t.TempDir()
	r, host := runYAML(t, dir, `type: graph
steps:
  - name: both
    command: [echo hello, echo world]
  - name: broken
    command:
      - echo first
      - exit 4
      - touch $D/never
`)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "step broken failed: command 2 failed: exit status 4")
	last := host.last()
	if last["both"].GetOutputTail() != "hello\nworld\n" || last["both"].GetStatus() != daguhav1.StepStatus_STEP_STATUS_SUCCEEDED {
		t.Errorf("both: %v", last["both"])
	}
	if b := last["broken"]; b.GetExitCode() != 4 || b.GetOutputTail() != "first\n" {
		t.Errorf("broken: %v", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "never")); err == nil {
		t.Error("a command after the failed one ran")
	}
}

func TestEngineRunsAScriptWithTheCommandAsItsInterpreter(t *testing.T) {
	dir := t.TempDir()
	host := &fakeHost{}
	run := yamlRun(t, dir, `type: graph
steps:
  - name: awk
    command: awk -f
    script: |
      BEGIN { printf "%d\n", 6 * 7 }
  - name: bash
    command: bash
    script: |
      echo "$1 ${BASH_VERSION:+from bash}"
`, "first")
	r := execute(t, context.Background(), testEngine(t), run, host)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
	if got := host.last()["awk"].GetOutputTail(); got != "42\n" {
		t.Errorf("awk: %q", got)
	}
	if got := host.last()["bash"].GetOutputTail(); got != "first from bash\n" {
		t.Errorf("bash: %q", got)
	}
}

func TestEngineShells(t *testing.T) {
	dir := t.TempDir()
	// A stand-in nix-shell that shows how it was called.
	nix := filepath.Join(dir, "nix-shell")
	if err := os.WriteFile(nix, []byte("#!/bin/sh\nfor a in \"$@\"; do printf '[%s]' \"$a\"; done\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	r, host := runYAML(t, dir, `type: graph
shell: bash -o pipefail
steps:
  - name: dag shell
    command: false | true
    continueOn: {failure: true}
  - name: errexit by default
    command: false; echo after
    continueOn: {failure: true}
  - name: own shell has no errexit
    shell: sh
    command: false; echo after
  - name: script with errexit
    script: |
      false
      echo after
    continueOn: {failure: true}
  - name: nix
    shell: $D/nix-shell
    shellPackages: [jq]
    command: jq --version
  - name: missing shell
    shell: no-such-shell-here
    command: "true"
    continueOn: {failure: true}
`)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
	last := host.last()
	if last["dag shell"].GetStatus() != daguhav1.StepStatus_STEP_STATUS_FAILED {
		t.Errorf("pipefail of the DAG's shell did not apply: %v", last["dag shell"])
	}
	for _, name := range []string{"errexit by default", "script with errexit"} {
		if s := last[name]; s.GetStatus() != daguhav1.StepStatus_STEP_STATUS_FAILED || s.GetOutputTail() != "" {
			t.Errorf("%s: %v", name, s)
		}
	}
	if s := last["own shell has no errexit"]; s.GetStatus() != daguhav1.StepStatus_STEP_STATUS_SUCCEEDED || s.GetOutputTail() != "after\n" {
		t.Errorf("own shell: %v", s)
	}
	if got := last["nix"].GetOutputTail(); got != "[-p][jq][--pure][--run][jq --version]" {
		t.Errorf("nix-shell called as %s", got)
	}
	if s := last["missing shell"]; !strings.Contains(s.GetError(), "cannot start no-such-shell-here: it is not installed on this worker") {
		t.Errorf("missing shell: %v", s)
	}
}

func TestEngineResolvesDirAndWorkingDirAsDaguDoes(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, d := range []string{"data", "work/sub"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	r, host := runYAML(t, home, `type: graph
workingDir: ~/work
steps:
  - name: home
    dir: ~/data
    command: pwd
  - name: relative
    dir: sub
    command: pwd
  - name: dag's
    command: pwd
  - name: missing
    dir: ~/nowhere
    command: pwd
`)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "step missing failed: working directory "+home+"/nowhere does not exist on this worker")
	last := host.last()
	for step, want := range map[string]string{"home": "data", "relative": "work/sub", "dag's": "work"} {
		if got := last[step].GetOutputTail(); got != filepath.Join(home, want)+"\n" {
			t.Errorf("%s ran in %q, want %s", step, got, want)
		}
	}
}

func TestEngineCopiesStdoutAndStderrToFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "out.log"), []byte("before\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, host := runYAML(t, dir, `steps:
  - dir: $D
    command: echo out; echo err >&2
    stdout: out.log
    stderr: $D/err.log
`)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
	if got := readFile(t, filepath.Join(dir, "out.log")); got != "before\nout\n" {
		t.Errorf("stdout file %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "err.log")); got != "err\n" {
		t.Errorf("stderr file %q", got)
	}
	if tail := host.last()["cmd_1"].GetOutputTail(); !strings.Contains(tail, "out\n") || !strings.Contains(tail, "err\n") {
		t.Errorf("the step's tail lost a stream: %q", tail)
	}
}

func TestEngineStopsAStepWithItsSignalOnStop(t *testing.T) {
	dir := t.TempDir()
	r, host := runYAML(t, dir, `steps:
  - name: trapper
    shell: sh
    signalOnStop: SIGINT
    timeoutSec: 1
    command: trap 'echo got INT; exit 3' INT; echo ready; while :; do sleep 0.1; done
`)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "timed out after 1s")
	if tail := host.last()["trapper"].GetOutputTail(); !strings.Contains(tail, "got INT") {
		t.Errorf("the step did not get SIGINT: %q", tail)
	}
}

func TestEngineGivesStoppedProcessesMaxCleanUpTime(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	r, host := runYAML(t, dir, `maxCleanUpTimeSec: 2
steps:
  - timeoutSec: 1
    command: trap '' TERM; while :; do sleep 0.1; done
`)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "timed out")
	// The engine's own grace is 300 ms: the DAG's 2 s applied.
	if took := time.Since(start); took < 2900*time.Millisecond {
		t.Errorf("killed after %v, before the clean-up time", took)
	}
}

func TestEngineContinueOn(t *testing.T) {
	dir := t.TempDir()
	r, host := runYAML(t, dir, `type: graph
steps:
  - name: exit code
    command: exit 3
    continueOn: {exitCode: [1, 3]}
  - name: after exit code
    command: "true"
    depends: exit code
  - name: output
    command: echo "WARN disk 91%"; exit 1
    continueOn: {output: ["re:^WARN disk [0-9]+%$"]}
  - name: after output
    command: "true"
    depends: output
  - name: marked
    command: exit 2
    continueOn: {failure: true, markSuccess: true}
  - name: other code
    command: exit 5
    continueOn: {exitCode: 3}
  - name: after other code
    command: "true"
    depends: other code
    continueOn: skipped
  - name: after a skip for a failure
    command: "true"
    depends: after other code
`)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "step other code failed: exit status 5")
	wantStatus(t, host, map[string]daguhav1.StepStatus{
		"exit code": daguhav1.StepStatus_STEP_STATUS_FAILED, "after exit code": daguhav1.StepStatus_STEP_STATUS_SUCCEEDED,
		"output": daguhav1.StepStatus_STEP_STATUS_FAILED, "after output": daguhav1.StepStatus_STEP_STATUS_SUCCEEDED,
		"marked": daguhav1.StepStatus_STEP_STATUS_SUCCEEDED, "other code": daguhav1.StepStatus_STEP_STATUS_FAILED,
		"after other code":           daguhav1.StepStatus_STEP_STATUS_SKIPPED,
		"after a skip for a failure": daguhav1.StepStatus_STEP_STATUS_SKIPPED,
	})
	if m := host.last()["marked"]; m.GetExitCode() != 2 || !strings.Contains(m.GetError(), "marked succeeded by continueOn.failure") {
		t.Errorf("marked: %v", m)
	}
}

// continueOn.skipped lets the dependants of a step skipped for its own
// reason run (Dagu's preconditions skip steps so); a step skipped because
// a step before it failed does not.
func TestEngineContinueOnSkipped(t *testing.T) {
	run := yamlRun(t, t.TempDir(), "type: graph\nsteps:\n  - {name: a, command: 'true', continueOn: skipped}\n  - {name: b, command: 'true', depends: a}\n  - {name: c, command: 'true'}\n  - {name: d, command: 'true', depends: c}\n", "")
	x := &execution{e: testEngine(t), run: run, steps: run.GetDag().GetSteps()}
	if err := x.buildGraph(); err != nil {
		t.Fatal(err)
	}
	x.status[0], x.status[2] = daguhav1.StepStatus_STEP_STATUS_SKIPPED, daguhav1.StepStatus_STEP_STATUS_SKIPPED
	x.skippedByCondition[0], x.skippedByCondition[2] = true, true // by their preconditions
	if why, _ := x.blockedBy(1); why != "" {
		t.Errorf("b is blocked: %s", why)
	}
	if why, _ := x.blockedBy(3); why != `dependency "c" was skipped` {
		t.Errorf("d: %q", why)
	}
	x.upstream[0] = true
	if why, _ := x.blockedBy(1); why == "" {
		t.Error("b runs after a step skipped for a failure")
	}
}

func TestEngineWaitsDelaySecBetweenStarts(t *testing.T) {
	r, host := runYAML(t, t.TempDir(), "type: graph\ndelaySec: 1\nsteps:\n  - {name: a, command: 'true'}\n  - {name: b, command: 'true'}\n")
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
	a, b := host.of("a")[0].GetStartedAtUnixNano(), host.of("b")[0].GetStartedAtUnixNano()
	if gap := time.Duration(b - a); gap < 950*time.Millisecond {
		t.Errorf("b started %v after a", gap)
	}
}

func TestEngineMaxOutputSize(t *testing.T) {
	r, host := runYAML(t, t.TempDir(), "maxOutputSize: 10\nsteps:\n  - command: echo 12345678901234567890\n    output: BIG\n")
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "output BIG: the step printed more than 10 bytes")
}

func TestEngineReadsDotenvFiles(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		".env":      "# comment\nFROM_DEFAULT=yes\nSHARED=from .env\n",
		"extra.env": "export SHARED='from extra'\nQUOTED=\"a\\tb $FROM_DEFAULT\"\nBARE=x y # comment\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, host := runYAML(t, dir, `workingDir: $D
dotenv: [extra.env, missing.env]
steps:
  - command: printf '%s|%s|%s|%s' "$FROM_DEFAULT" "$SHARED" "$QUOTED" "$BARE"
`)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
	if got := host.last()["cmd_1"].GetOutputTail(); got != "yes|from extra|a\tb yes|x y" {
		t.Errorf("got %q", got)
	}
}

func TestEngineChecksParamsAgainstTheirSchema(t *testing.T) {
	text := "params:\n  type: object\n  properties:\n    count: {type: integer, default: 1}\nsteps:\n  - echo $count\n"
	host := &fakeHost{}
	r := execute(t, context.Background(), testEngine(t), yamlRun(t, t.TempDir(), text, "count=many"), host)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, `params: param count: want an integer, got "many"`)
	host = &fakeHost{}
	r = execute(t, context.Background(), testEngine(t), yamlRun(t, t.TempDir(), text, "count=7"), host)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
	if got := host.last()["cmd_1"].GetOutputTail(); got != "7\n" {
		t.Errorf("got %q", got)
	}
}

func TestEnginePublishesTheOutputMap(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("shipped\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	published := map[string]map[string]any{}
	e := testEngine(t)
	e.published = func(step string, values map[string]any) {
		mu.Lock()
		defer mu.Unlock()
		published[step] = values
	}
	host := &fakeHost{}
	run := yamlRun(t, dir, `env: [VERSION=v1]
type: graph
steps:
  - id: inspect
    dir: $D
    command: |
      echo '{"version":"v1.2.3","artifact":{"urls":["https://example.test/app.tgz"]}}'; echo 'level: 3' >&2
    output:
      version: {from: stdout, decode: json, select: .version}
      url: {from: stdout, decode: json, select: ".artifact.urls[0]"}
      level: {from: stderr, decode: yaml, select: .level}
      notes: {from: file, path: notes.txt}
      label: "release ${VERSION}"
  - id: literal_only
    output: {answer: 42}
  - id: bad
    command: echo not json
    output:
      v: {from: stdout, decode: json}
`, "")
	r := execute(t, context.Background(), e, run, host)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "step bad failed: output v: decoding JSON")
	want := map[string]any{"version": "v1.2.3", "url": "https://example.test/app.tgz", "level": float64(3), "notes": "shipped", "label": "release v1"}
	got := published["inspect"]
	for k, v := range want {
		if got[k] != v {
			t.Errorf("inspect.output.%s = %#v, want %#v", k, got[k], v)
		}
	}
	if published["literal_only"]["answer"] != float64(42) {
		t.Errorf("literal_only: %v", published["literal_only"])
	}
}

func TestEngineAppliesDefaultsToEveryStep(t *testing.T) {
	dir := t.TempDir()
	r, host := runYAML(t, dir, `type: graph
defaults:
  retryPolicy: {limit: 1}
  env: [WHO=default]
steps:
  - name: flaky
    command: echo $WHO >> $D/tries; [ $(wc -l < $D/tries) -ge 2 ]
  - name: own
    retryPolicy: {limit: 0}
    env: [WHO=own]
    command: echo $WHO
`)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
	if tries := host.of("flaky"); len(tries) != 4 || tries[3].GetRetry() != 2 {
		t.Errorf("flaky was not retried by the default policy: %v", tries)
	}
	if got := host.last()["own"].GetOutputTail(); got != "own\n" {
		t.Errorf("own: %q", got)
	}
}

func TestEngineRunsAtMostMaxActiveStepsAtOnce(t *testing.T) {
	r, host := runYAML(t, t.TempDir(), "type: graph\nmaxActiveSteps: 1\nsteps:\n  - {name: a, command: sleep 0.2}\n  - {name: b, command: sleep 0.2}\n  - {name: c, command: sleep 0.2}\n")
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
	last := host.last()
	for _, pair := range [][2]string{{"a", "b"}, {"b", "c"}, {"a", "c"}} {
		x, y := last[pair[0]], last[pair[1]]
		if x.GetStartedAtUnixNano() < y.GetFinishedAtUnixNano() && y.GetStartedAtUnixNano() < x.GetFinishedAtUnixNano() {
			t.Errorf("%s and %s ran at once", pair[0], pair[1])
		}
	}
}
