package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/dispatch/logticket"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// fakeHost records reports and plays the cluster's part for child runs.
type fakeHost struct {
	mu      sync.Mutex
	reports []*daguhav1.StepState
	// refuse, when set, decides which reports the cluster refuses.
	refuse func(*daguhav1.StepState) error
	// children: the status and outputs each child run ends with, by id.
	children    map[string]*daguhav1.Run
	childCalls  []string
	childParams []string
	childByStep map[string]string
}

func (h *fakeHost) ReportStep(ctx context.Context, step *daguhav1.StepState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refuse != nil {
		if err := h.refuse(step); err != nil {
			return err
		}
	}
	h.reports = append(h.reports, cloneState(step))
	return nil
}

func cloneState(s *daguhav1.StepState) *daguhav1.StepState {
	return proto.Clone(s).(*daguhav1.StepState)
}

// StartChild derives the child's id from step and retry, as the cluster
// does, and records every call.
func (h *fakeHost) StartChild(ctx context.Context, step string, retry uint32, params string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := fmt.Sprintf("child-%s-%d", step, retry)
	h.childCalls = append(h.childCalls, fmt.Sprintf("%s/%d", step, retry))
	h.childParams = append(h.childParams, params)
	return id, nil
}

func (h *fakeHost) WaitChild(ctx context.Context, id string) (*daguhav1.Run, error) {
	h.mu.Lock()
	run, ok := h.children[id]
	h.mu.Unlock()
	if !ok {
		<-ctx.Done()
		return nil, context.Cause(ctx)
	}
	return run, nil
}

// last is the last report of each step.
func (h *fakeHost) last() map[string]*daguhav1.StepState {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]*daguhav1.StepState{}
	for _, r := range h.reports {
		out[r.GetName()] = r
	}
	return out
}

func (h *fakeHost) of(step string) []*daguhav1.StepState {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*daguhav1.StepState
	for _, r := range h.reports {
		if r.GetName() == step {
			out = append(out, r)
		}
	}
	return out
}

func testEngine(t *testing.T) *Engine {
	return &Engine{LogDir: t.TempDir(), KillGrace: 300 * time.Millisecond}
}

func testRun(dir string, steps ...*daguhav1.StepSpec) *daguhav1.Run {
	return &daguhav1.Run{Id: "run-1", DagName: "test", Attempt: 1, Dag: &daguhav1.DagSpec{
		Name: "test", Steps: steps, Env: []*daguhav1.EnvVar{{Name: "D", Value: dir}},
	}}
}

type result struct {
	status  daguhav1.RunStatus
	message string
	outputs map[string]string
	took    time.Duration
}

func execute(t *testing.T, ctx context.Context, e *Engine, run *daguhav1.Run, host RunHost) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	status, message, outputs := e.Execute(ctx, run, host)
	return result{status, message, outputs, time.Since(start)}
}

func wantStatus(t *testing.T, host *fakeHost, want map[string]daguhav1.StepStatus) {
	t.Helper()
	last := host.last()
	for name, status := range want {
		if got := last[name]; got.GetStatus() != status {
			t.Errorf("step %s: last report %v, want %s", name, got, status)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processGone tells whether pid has exited. An exited process whose
// parent is gone may stay a zombie (PID 1 of a container need not reap):
// that counts as gone.
func processGone(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(data, ')')
	return i < 0 || i+2 >= len(data) || data[i+2] == 'Z' || data[i+2] == 'X'
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, 5*time.Second, "the pid file "+path, func() bool {
		data, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil
	})
	return pid
}

// b and c of a diamond run at once: each waits until the other has
// started (or gives up after 5 s and fails); d starts after both ended.
func TestEngineRunsADiamondWithTheMiddleInParallel(t *testing.T) {
	dir := t.TempDir()
	meet := func(self, other string) string {
		return fmt.Sprintf(`touch "$D/%s.started"; i=0; while [ ! -e "$D/%s.started" ]; do i=$((i+1)); [ $i -gt 250 ] && exit 7; sleep 0.02; done; touch "$D/%s.done"`, self, other, self)
	}
	host := &fakeHost{}
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "a", Command: `touch "$D/a.done"`},
		&daguhav1.StepSpec{Name: "b", Command: meet("b", "c"), Depends: []string{"a"}},
		&daguhav1.StepSpec{Name: "c", Command: meet("c", "b"), Depends: []string{"a"}},
		&daguhav1.StepSpec{Name: "d", Command: `[ -e "$D/b.done" ] && [ -e "$D/c.done" ]`, Depends: []string{"b", "c"}},
	)
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("run: %s %q; reports %v", r.status, r.message, host.last())
	}
	wantStatus(t, host, map[string]daguhav1.StepStatus{"a": 2, "b": 2, "c": 2, "d": 2})
	last := host.last()
	dStart := host.of("d")[0].GetStartedAtUnixNano()
	for _, s := range []string{"b", "c"} {
		if last[s].GetFinishedAtUnixNano() > dStart {
			t.Errorf("d started at %d before %s ended at %d", dStart, s, last[s].GetFinishedAtUnixNano())
		}
		if last[s].GetStartedAtUnixNano() < last["a"].GetFinishedAtUnixNano() {
			t.Errorf("%s started before a ended", s)
		}
	}
}

// A failed step skips its dependants, and theirs; an independent step
// still runs; the run fails naming the step.
func TestEngineSkipsTheDependantsOfAFailedStep(t *testing.T) {
	host := &fakeHost{}
	run := testRun(t.TempDir(),
		&daguhav1.StepSpec{Name: "a", Command: "echo broken >&2; exit 3"},
		&daguhav1.StepSpec{Name: "b", Command: "true", Depends: []string{"a"}},
		&daguhav1.StepSpec{Name: "c", Command: "true", Depends: []string{"b"}},
		&daguhav1.StepSpec{Name: "other", Command: "true"},
	)
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_FAILED || r.message != "step a failed: exit status 3" {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	wantStatus(t, host, map[string]daguhav1.StepStatus{
		"a": daguhav1.StepStatus_STEP_STATUS_FAILED, "b": daguhav1.StepStatus_STEP_STATUS_SKIPPED,
		"c": daguhav1.StepStatus_STEP_STATUS_SKIPPED, "other": daguhav1.StepStatus_STEP_STATUS_SUCCEEDED,
	})
	a := host.last()["a"]
	if a.GetExitCode() != 3 || a.GetOutputTail() != "broken\n" {
		t.Errorf("a: exit %d tail %q", a.GetExitCode(), a.GetOutputTail())
	}
	if len(host.of("b")) != 1 || len(host.of("c")) != 1 {
		t.Errorf("skipped steps are reported once and never run: b %v c %v", host.of("b"), host.of("c"))
	}
}

// continue_on_failure lets the dependants run, and the run succeeds.
func TestEngineContinueOnFailureLetsDependantsRun(t *testing.T) {
	host := &fakeHost{}
	run := testRun(t.TempDir(),
		&daguhav1.StepSpec{Name: "a", Command: "exit 1", ContinueOnFailure: true},
		&daguhav1.StepSpec{Name: "b", Command: "true", Depends: []string{"a"}},
	)
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	wantStatus(t, host, map[string]daguhav1.StepStatus{"a": daguhav1.StepStatus_STEP_STATUS_FAILED, "b": daguhav1.StepStatus_STEP_STATUS_SUCCEEDED})
}

// A failing step runs limit+1 times, each try reported with its number;
// a step that succeeds on its second try stops there.
func TestEngineRetriesFailedSteps(t *testing.T) {
	dir := t.TempDir()
	host := &fakeHost{}
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "broken", Command: `echo try >> "$D/broken"; exit 1`, RetryPolicy: &daguhav1.RetryPolicy{Limit: 2}},
		&daguhav1.StepSpec{Name: "flaky", Command: `echo try >> "$D/flaky"; [ $(wc -l < "$D/flaky") -ge 2 ]`, RetryPolicy: &daguhav1.RetryPolicy{Limit: 5}},
	)
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_FAILED || !strings.HasPrefix(r.message, "step broken failed") {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	for name, tries := range map[string]int{"broken": 3, "flaky": 2} {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		if got := strings.Count(string(data), "try"); got != tries {
			t.Errorf("%s ran %d times, want %d", name, got, tries)
		}
		var running []uint32
		for _, s := range host.of(name) {
			if s.GetStatus() == daguhav1.StepStatus_STEP_STATUS_RUNNING {
				running = append(running, s.GetRetry())
			}
		}
		if len(running) != tries || running[tries-1] != uint32(tries) {
			t.Errorf("%s: running reports with retries %v, want 1..%d", name, running, tries)
		}
	}
	if last := host.last(); last["broken"].GetRetry() != 3 || last["flaky"].GetStatus() != daguhav1.StepStatus_STEP_STATUS_SUCCEEDED {
		t.Errorf("ends: %v", last)
	}
}

// A step's timeout stops its whole process group, including a background
// child, and fails the step; a group that ignores SIGTERM gets SIGKILL.
func TestEngineStepTimeoutKillsTheProcessGroup(t *testing.T) {
	for _, c := range []struct{ name, prefix string }{{"terminated", ""}, {"killed", "trap '' TERM; "}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			host := &fakeHost{}
			run := testRun(dir, &daguhav1.StepSpec{Name: "slow", TimeoutSec: 1,
				Command: c.prefix + `sleep 300 & echo $! > "$D/pid"; wait`})
			r := execute(t, context.Background(), testEngine(t), run, host)
			if r.status != daguhav1.RunStatus_RUN_STATUS_FAILED || r.message != "step slow failed: timed out after 1s" {
				t.Fatalf("run: %s %q", r.status, r.message)
			}
			if r.took > 5*time.Second {
				t.Errorf("the run took %s", r.took)
			}
			pid := readPid(t, filepath.Join(dir, "pid"))
			waitFor(t, 5*time.Second, "the background sleep to be gone", func() bool { return processGone(pid) })
		})
	}
}

// The DAG's timeout stops the run: the running step fails, the one after
// it is skipped.
func TestEngineRunTimeoutStopsTheRun(t *testing.T) {
	dir := t.TempDir()
	host := &fakeHost{}
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "slow", Command: `echo $$ > "$D/pid"; exec sleep 300`},
		&daguhav1.StepSpec{Name: "after", Command: "true", Depends: []string{"slow"}},
	)
	run.Dag.TimeoutSec = 1
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_FAILED || r.message != "run timed out after 1s" {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	wantStatus(t, host, map[string]daguhav1.StepStatus{"slow": daguhav1.StepStatus_STEP_STATUS_FAILED, "after": daguhav1.StepStatus_STEP_STATUS_SKIPPED})
	if got := host.last()["slow"].GetError(); got != "run timed out after 1s" {
		t.Errorf("slow: %q", got)
	}
	pid := readPid(t, filepath.Join(dir, "pid"))
	waitFor(t, 5*time.Second, "the sleep to be gone", func() bool { return processGone(pid) })
}

// Cancelling the run (cause errCancelled) kills the running step's
// processes and reports it CANCELLED, the others SKIPPED.
func TestEngineCancelKillsProcessesAndReportsCancelled(t *testing.T) {
	dir := t.TempDir()
	host := &fakeHost{}
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "slow", Command: `sleep 300 & echo $! > "$D/pid"; wait`},
		&daguhav1.StepSpec{Name: "after", Command: "true", Depends: []string{"slow"}},
	)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	go func() {
		pid := readPid(t, filepath.Join(dir, "pid"))
		_ = pid
		cancel(errCancelled)
	}()
	r := execute(t, ctx, testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_CANCELLED {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	wantStatus(t, host, map[string]daguhav1.StepStatus{"slow": daguhav1.StepStatus_STEP_STATUS_CANCELLED, "after": daguhav1.StepStatus_STEP_STATUS_SKIPPED})
	pid := readPid(t, filepath.Join(dir, "pid"))
	waitFor(t, 5*time.Second, "the background sleep to be gone", func() bool { return processGone(pid) })
}

// A refused report (the lease is lost) stops the attempt: the other
// running step is killed, nothing more is reported, and the end is
// UNSPECIFIED.
func TestEngineStopsSilentlyWhenAReportIsRefused(t *testing.T) {
	dir := t.TempDir()
	lost := errors.New("lease lost")
	host := &fakeHost{refuse: func(s *daguhav1.StepState) error {
		if s.GetName() == "quick" && s.GetStatus() != daguhav1.StepStatus_STEP_STATUS_RUNNING {
			return lost
		}
		return nil
	}}
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "quick", Command: `while [ ! -s "$D/pid" ]; do sleep 0.02; done`},
		&daguhav1.StepSpec{Name: "slow", Command: `echo $$ > "$D/pid"; exec sleep 300`},
		&daguhav1.StepSpec{Name: "after", Command: "true", Depends: []string{"quick"}},
	)
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_UNSPECIFIED || !strings.Contains(r.message, "lease lost") {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	if got := host.last(); got["slow"].GetStatus() != daguhav1.StepStatus_STEP_STATUS_RUNNING || got["after"] != nil {
		t.Errorf("reports after the refusal: %v", got)
	}
	pid := readPid(t, filepath.Join(dir, "pid"))
	waitFor(t, 5*time.Second, "the sleep to be gone", func() bool { return processGone(pid) })
}

// Params (defaults merged with the run's), env in order, built-in
// variables, step outputs and dir all reach the commands.
func TestEngineVariables(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DAGUHA_TEST_OS", "os")
	host := &fakeHost{}
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "params", Command: `printf '%s|%s|%s|%s|%s' "$1" "$2" "${NAME}" "$OTHER" "$#" > "$D/params"`},
		&daguhav1.StepSpec{Name: "env", Command: `printf '%s|%s|%s' "$B" "${S}" "$C" > "$D/env"`,
			Env: []*daguhav1.EnvVar{{Name: "S", Value: "${B}3"}}},
		&daguhav1.StepSpec{Name: "quoted", Command: `printf '%s' "$Q" > "$D/quoted"; printf '%s' "${Q}" >> "$D/quoted"`},
		&daguhav1.StepSpec{Name: "builtins", Command: `printf '%s|%s|%s|%s|%s' "$DAG_NAME" "${DAG_RUN_ID}" "$DAG_RUN_STEP_NAME" "$DAG_RUN_ATTEMPT" "$DAG_RUN_FENCING_TOKEN" > "$D/builtins"`},
		&daguhav1.StepSpec{Name: "produce", Command: `echo "made by $DAG_RUN_STEP_NAME"; echo; echo`, Output: "MADE"},
		&daguhav1.StepSpec{Name: "consume", Depends: []string{"produce"}, Dir: "${D}/sub",
			Command: `printf '%s|%s|%s' "${MADE}" "$MADE" "$(basename "$(pwd)")" > "$D/consume"`},
		&daguhav1.StepSpec{Name: "script", Depends: []string{"consume"},
			Script: "#!/bin/sh\nprintf '%s|%s' \"$1\" \"${MADE}\" > \"$D/script\"\n"},
	)
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	run.Attempt, run.FencingToken = 3, 41
	run.Params = `first NAME="hello world" Q="it's \"quoted\"; touch $D/pwned"`
	run.Dag.Params = []*daguhav1.Param{{Value: "p1"}, {Value: "p2"}, {Name: "NAME", Value: "default"}, {Name: "OTHER", Value: "kept"}}
	run.Dag.Env = append(run.Dag.Env, &daguhav1.EnvVar{Name: "A", Value: "1"}, &daguhav1.EnvVar{Name: "B", Value: "${A}2"},
		&daguhav1.EnvVar{Name: "C", Value: "$DAGUHA_TEST_OS-$A"})
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("run: %s %q; %v", r.status, r.message, host.last())
	}
	for file, want := range map[string]string{
		"params":   "first|p2|hello world|kept|2",
		"env":      "12|123|os-1",
		"builtins": "test|run-1|builtins|3|41",
		"consume":  "made by produce|made by produce|sub",
		"script":   "first|made by produce",
		"quoted":   strings.Repeat(`it's "quoted"; touch $D/pwned`, 2),
	} {
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || string(data) != want {
			t.Errorf("%s: %q (%v), want %q", file, data, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("a param's value ran as a command")
	}
	if len(r.outputs) != 1 || r.outputs["MADE"] != "made by produce" {
		t.Errorf("outputs: %v", r.outputs)
	}
}

// The reported tail keeps the last 64 KiB; the log file keeps all.
func TestEngineOutputTailIsBoundedAndTheLogHasAll(t *testing.T) {
	host := &fakeHost{}
	e := testEngine(t)
	run := testRun(t.TempDir(), &daguhav1.StepSpec{Name: "loud step", Command: `head -c 204800 /dev/zero | tr '\0' x; echo END`})
	if r := execute(t, context.Background(), e, run, host); r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	tail := host.last()["loud step"].GetOutputTail()
	if len(tail) != outputTailBytes || !strings.HasSuffix(tail, "xxEND\n") {
		t.Errorf("tail: %d bytes ending %q", len(tail), tail[max(0, len(tail)-10):])
	}
	path := e.LogPath("run-1", 1, "loud step")
	info, err := os.Stat(path)
	if err != nil || info.Size() != 204800+4 || info.Mode().Perm() != 0o600 {
		t.Fatalf("log %s: %v %v", path, info, err)
	}
	if dir, _ := os.Stat(filepath.Dir(path)); dir.Mode().Perm() != 0o700 {
		t.Errorf("log dir mode %v", dir.Mode())
	}
}

// A run/call step starts one child per try (the retry is passed on, so the
// cluster's ids differ) and takes its result and outputs, which later
// steps read as ${CHILD.outputs.NAME}; a failed child fails its step.
func TestEngineChildSteps(t *testing.T) {
	host := &fakeHost{children: map[string]*daguhav1.Run{
		"child-call-1": {Id: "child-call-1", Status: daguhav1.RunStatus_RUN_STATUS_FAILED, Error: "first try"},
		"child-call-2": {Id: "child-call-2", DagName: "sub", Params: "X=/x", Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED,
			Outputs: map[string]string{"b": "2", "a": "1"}},
		"child-bad-1":  {Id: "child-bad-1", Status: daguhav1.RunStatus_RUN_STATUS_FAILED, Error: "boom"},
		"child-gone-1": {Id: "child-gone-1", Status: daguhav1.RunStatus_RUN_STATUS_CANCELLED},
	}}
	dir := t.TempDir()
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "call", ChildDag: "sub", ChildParams: "X=$D", Output: "CHILD", RetryPolicy: &daguhav1.RetryPolicy{Limit: 3}},
		&daguhav1.StepSpec{Name: "use", Depends: []string{"call"}, Command: `printf '%s' "$CHILD" > "$D/child"; printf '%s|%s' "${CHILD.outputs.b}" ${CHILD.status} > "$D/b"`},
		&daguhav1.StepSpec{Name: "bad", ChildDag: "sub"},
		&daguhav1.StepSpec{Name: "gone", ChildDag: "sub"},
	)
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_FAILED || r.message != "step bad failed: child run child-bad-1 failed: boom" {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	host.mu.Lock()
	calls := strings.Join(host.childCalls, " ")
	host.mu.Unlock()
	for _, want := range []string{"call/1", "call/2", "bad/1", "gone/1"} {
		if strings.Count(calls, want) != 1 {
			t.Errorf("child starts %q: want %s once", calls, want)
		}
	}
	if params := strings.Join(host.childParams, " "); !strings.Contains(params, "X="+dir) {
		t.Errorf("child params %q: want X=%s, the run's D substituted", params, dir)
	}
	if strings.Contains(calls, "call/3") {
		t.Errorf("a child was started after one succeeded: %q", calls)
	}
	last := host.last()
	if c := last["call"]; c.GetStatus() != daguhav1.StepStatus_STEP_STATUS_SUCCEEDED || c.GetChildRunId() != "child-call-2" || c.GetRetry() != 2 {
		t.Errorf("call: %v", c)
	}
	if g := last["gone"]; g.GetStatus() != daguhav1.StepStatus_STEP_STATUS_FAILED || g.GetError() != "child run child-gone-1 was cancelled" {
		t.Errorf("a child cancelled alone fails its step: %v", g)
	}
	// What Dagu's run step prints and its output holds: the child's
	// result as indented JSON.
	want := `{
  "name": "sub",
  "dagRunId": "child-call-2",
  "params": "X=/x",
  "outputs": {
    "a": "1",
    "b": "2"
  },
  "status": "succeeded"
}`
	if data, _ := os.ReadFile(filepath.Join(dir, "child")); string(data) != want || r.outputs["CHILD"] != want {
		t.Errorf("child outputs: step saw %q, run outputs %v", data, r.outputs)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "b")); string(data) != "2|succeeded" {
		t.Errorf("${CHILD.outputs.b} ${CHILD.status}: %q", data)
	}
}

// MaxParallel bounds the steps running at once.
func TestEngineMaxParallel(t *testing.T) {
	dir := t.TempDir()
	step := func(name string) *daguhav1.StepSpec {
		return &daguhav1.StepSpec{Name: name, Command: `mkdir "$D/busy" || exit 1; sleep 0.1; rmdir "$D/busy"`}
	}
	e := testEngine(t)
	e.MaxParallel = 1
	host := &fakeHost{}
	if r := execute(t, context.Background(), e, testRun(dir, step("a"), step("b"), step("c")), host); r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
}

// The no-op executor succeeds command steps without running them.
func TestEngineNoopRunsNothing(t *testing.T) {
	dir := t.TempDir()
	e := testEngine(t)
	e.Noop = true
	host := &fakeHost{}
	r := execute(t, context.Background(), e, testRun(dir, &daguhav1.StepSpec{Name: "a", Command: `touch "$D/ran"; exit 1`}), host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("the no-op executor ran the command")
	}
	if got := len(host.of("a")); got != 2 {
		t.Errorf("%d reports, want running and succeeded", got)
	}
}

// A DAG whose steps cannot be ordered fails without running anything.
func TestEngineRefusesABrokenGraph(t *testing.T) {
	for name, steps := range map[string][]*daguhav1.StepSpec{
		"cycle":   {{Name: "a", Command: "true", Depends: []string{"b"}}, {Name: "b", Command: "true", Depends: []string{"a"}}},
		"missing": {{Name: "a", Command: "true", Depends: []string{"nope"}}},
		"twice":   {{Name: "a", Command: "true"}, {Name: "a", Command: "true"}},
	} {
		host := &fakeHost{}
		r := execute(t, context.Background(), testEngine(t), testRun(t.TempDir(), steps...), host)
		if r.status != daguhav1.RunStatus_RUN_STATUS_FAILED || !strings.HasPrefix(r.message, "invalid DAG: ") || len(host.last()) != 0 {
			t.Errorf("%s: %s %q, reports %v", name, r.status, r.message, host.last())
		}
	}
}

// The log server streams a step's whole log in chunks (attempt 0: the
// latest) and answers NotFound for what it does not have (requests carry
// the attempts' log tickets; their checks have a test of their own).
func TestLogServerStreamsStepLogs(t *testing.T) {
	e := testEngine(t)
	key := []byte("the cluster's signing key")
	var tickets []string
	for attempt, size := range map[uint32]int{1: 10, 2: 100000} {
		run := testRun(t.TempDir(), &daguhav1.StepSpec{Name: "big", Command: fmt.Sprintf(`head -c %d /dev/zero | tr '\0' y`, size)})
		run.Attempt = attempt
		if err := e.keepLogTicket(run.GetId(), attempt, logticket.Sign(key, run.GetId(), attempt, "w1")); err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, logticket.Sign(key, run.GetId(), attempt, "w1"))
		if r := execute(t, context.Background(), e, run, &fakeHost{}); r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
			t.Fatalf("run: %s %q", r.status, r.message)
		}
	}
	listener := bufconn.Listen(1 << 20)
	server := grpc.NewServer()
	daguhav1.RegisterWorkerLogServiceServer(server, NewLogServer(e.LogDir))
	go func() { _ = server.Serve(listener) }()
	defer server.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return listener.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := daguhav1.NewWorkerLogServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fetch := func(req *daguhav1.StepLogRequest) ([]byte, int, error) {
		req.LogTickets = tickets
		stream, err := client.StepLog(ctx, req)
		if err != nil {
			return nil, 0, err
		}
		var data []byte
		chunks := 0
		for {
			chunk, err := stream.Recv()
			if err == io.EOF {
				return data, chunks, nil
			}
			if err != nil {
				return nil, 0, err
			}
			if len(chunk.GetData()) > logChunkBytes {
				t.Errorf("a chunk of %d bytes", len(chunk.GetData()))
			}
			data = append(data, chunk.GetData()...)
			chunks++
		}
	}
	data, chunks, err := fetch(&daguhav1.StepLogRequest{RunId: "run-1", StepName: "big"})
	if err != nil || len(data) != 100000 || chunks != 4 || strings.Trim(string(data), "y") != "" {
		t.Fatalf("latest attempt: %d bytes in %d chunks, %v", len(data), chunks, err)
	}
	if data, _, err := fetch(&daguhav1.StepLogRequest{RunId: "run-1", StepName: "big", Attempt: 1}); err != nil || len(data) != 10 {
		t.Fatalf("attempt 1: %d bytes, %v", len(data), err)
	}
	for _, req := range []*daguhav1.StepLogRequest{
		{RunId: "run-1", StepName: "nope"},
		{RunId: "run-2", StepName: "big"},
		{RunId: "../run-1", StepName: "big"},
		{RunId: "run-1", StepName: "big", Attempt: 3},
	} {
		_, _, err := fetch(req)
		if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), req.GetRunId()) {
			t.Errorf("%v: %v, want NotFound naming the run", req, err)
		}
	}
}

// holdingHost is a fakeHost that holds step ends (a StepHolder): held
// records them, and refuseHeld, when set, refuses one (from another
// goroutine, as a later call would).
type holdingHost struct {
	fakeHost
	heldMu     sync.Mutex
	held       []*daguhav1.StepState
	refuseHeld func(*daguhav1.StepState) error
	lost       error
	// fresh, when set, answers LeaseFresh (else the lease is never
	// fresh and every start waits to be taken).
	fresh func() bool
}

func (h *holdingHost) LeaseFresh() bool { return h.fresh != nil && h.fresh() }

func (h *holdingHost) HoldStep(step *daguhav1.StepState, failed func(error)) {
	h.heldMu.Lock()
	h.held = append(h.held, cloneState(step))
	var err error
	if h.refuseHeld != nil {
		err = h.refuseHeld(step)
	}
	if err != nil && h.lost == nil {
		h.lost = err
	}
	h.heldMu.Unlock()
	if err != nil {
		go failed(err)
	}
}

// ReportStep refuses every report after a refused held end, as the
// worker's host does: the next report would have carried it.
func (h *holdingHost) ReportStep(ctx context.Context, step *daguhav1.StepState) error {
	h.heldMu.Lock()
	lost := h.lost
	h.heldMu.Unlock()
	if lost != nil {
		return lost
	}
	return h.fakeHost.ReportStep(ctx, step)
}

func (h *holdingHost) heldStates() []*daguhav1.StepState {
	h.heldMu.Lock()
	defer h.heldMu.Unlock()
	return append([]*daguhav1.StepState(nil), h.held...)
}

// A host that holds ends gets every end through HoldStep and only starts
// through ReportStep, and a step still runs only once its start report was
// taken: a refused start runs nothing.
func TestEngineHoldsEndsAndRunsAStepOnlyAfterItsStartWasTaken(t *testing.T) {
	dir := t.TempDir()
	host := &holdingHost{}
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "a", Command: `touch "$D/a"`},
		&daguhav1.StepSpec{Name: "b", Command: `exit 2`, Depends: []string{"a"}, RetryPolicy: &daguhav1.RetryPolicy{Limit: 1}},
		&daguhav1.StepSpec{Name: "c", Command: `true`, Depends: []string{"b"}},
	)
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_FAILED {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	var started, ended []string
	for _, s := range host.last() {
		if s.GetStatus() != daguhav1.StepStatus_STEP_STATUS_RUNNING {
			t.Errorf("an end went through ReportStep: %v", s)
		}
	}
	host.mu.Lock()
	for _, s := range host.reports {
		started = append(started, fmt.Sprintf("%s/%d", s.GetName(), s.GetRetry()))
	}
	host.mu.Unlock()
	for _, s := range host.heldStates() {
		ended = append(ended, fmt.Sprintf("%s/%d:%s", s.GetName(), s.GetRetry(), strings.TrimPrefix(s.GetStatus().String(), "STEP_STATUS_")))
	}
	if got := strings.Join(started, " "); got != "a/1 b/1 b/2" {
		t.Errorf("starts reported: %s", got)
	}
	if got := strings.Join(ended, " "); got != "a/1:SUCCEEDED b/1:FAILED b/2:FAILED c/0:SKIPPED" {
		t.Errorf("ends held: %s", got)
	}

	refusing := &holdingHost{fakeHost: fakeHost{refuse: func(s *daguhav1.StepState) error {
		if s.GetName() == "b" {
			return errors.New("lease lost")
		}
		return nil
	}}}
	r = execute(t, context.Background(), testEngine(t), testRun(dir,
		&daguhav1.StepSpec{Name: "a", Command: `true`},
		&daguhav1.StepSpec{Name: "b", Command: `touch "$D/b-ran"`, Depends: []string{"a"}},
	), refusing)
	if r.status != daguhav1.RunStatus_RUN_STATUS_UNSPECIFIED || !strings.Contains(r.message, "lease lost") {
		t.Fatalf("run with a refused start: %s %q", r.status, r.message)
	}
	if _, err := os.Stat(filepath.Join(dir, "b-ran")); err == nil {
		t.Error("a step whose start report was refused ran")
	}
}

// Under a lease the host vouches for (LeaseFresh) a step's start is held
// like its end and the step runs at once; a held start refused later gives
// the attempt up (the running step is killed, nothing after it starts);
// once the lease is no longer fresh, starts wait to be taken again.
func TestEngineHoldsStartsOnlyUnderAFreshLease(t *testing.T) {
	dir := t.TempDir()
	states := func(list []*daguhav1.StepState) string {
		var out []string
		for _, s := range list {
			out = append(out, fmt.Sprintf("%s/%d:%s", s.GetName(), s.GetRetry(), strings.TrimPrefix(s.GetStatus().String(), "STEP_STATUS_")))
		}
		return strings.Join(out, " ")
	}
	host := &holdingHost{fresh: func() bool { return true }}
	r := execute(t, context.Background(), testEngine(t), testRun(dir,
		&daguhav1.StepSpec{Name: "a", Command: `touch "$D/a"`},
		&daguhav1.StepSpec{Name: "b", Command: `touch "$D/b"`, Depends: []string{"a"}},
	), host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	host.mu.Lock()
	waited := states(host.reports)
	host.mu.Unlock()
	if waited != "" {
		t.Errorf("under a fresh lease these states were waited for: %s", waited)
	}
	if got := states(host.heldStates()); got != "a/1:RUNNING a/1:SUCCEEDED b/1:RUNNING b/1:SUCCEEDED" {
		t.Errorf("held: %s", got)
	}

	// Fresh for the first start only: b's start waits.
	var calls atomic.Int32
	host = &holdingHost{fresh: func() bool { return calls.Add(1) == 1 }}
	r = execute(t, context.Background(), testEngine(t), testRun(dir,
		&daguhav1.StepSpec{Name: "a", Command: `true`},
		&daguhav1.StepSpec{Name: "b", Command: `true`, Depends: []string{"a"}},
	), host)
	host.mu.Lock()
	waited = states(host.reports)
	host.mu.Unlock()
	if r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED || waited != "b/1:RUNNING" {
		t.Errorf("with the lease fresh for a only: %s, waited for %q", r.status, waited)
	}

	// slow's held start is refused once slow runs, as a later call would.
	refusing := &lateRefusal{holdingHost: holdingHost{fresh: func() bool { return true }}, step: "slow", after: filepath.Join(dir, "slow-ran")}
	r = execute(t, context.Background(), testEngine(t), testRun(dir,
		&daguhav1.StepSpec{Name: "slow", Command: `touch "$D/slow-ran"; exec sleep 300`},
		&daguhav1.StepSpec{Name: "after", Command: `touch "$D/after-ran"`, Depends: []string{"slow"}},
	), refusing)
	if r.status != daguhav1.RunStatus_RUN_STATUS_UNSPECIFIED || !strings.Contains(r.message, "lease lost") {
		t.Fatalf("run with a held start refused: %s %q", r.status, r.message)
	}
	// The refusal ended the attempt, not execute's 10 s deadline: the
	// step's process was killed.
	if r.took >= 9*time.Second {
		t.Errorf("the step whose held start was refused ran on for %s", r.took)
	}
	if _, err := os.Stat(filepath.Join(dir, "slow-ran")); err != nil {
		t.Error("under a fresh lease the step did not start before its start was taken")
	}
	if _, err := os.Stat(filepath.Join(dir, "after-ran")); err == nil {
		t.Error("a step after one whose held start was refused ran")
	}
}

// lateRefusal is a holdingHost that refuses the held start of one step
// once the file after exists (the step ran).
type lateRefusal struct {
	holdingHost
	step, after string
}

func (h *lateRefusal) HoldStep(step *daguhav1.StepState, failed func(error)) {
	if step.GetName() != h.step || step.GetStatus() != daguhav1.StepStatus_STEP_STATUS_RUNNING {
		h.holdingHost.HoldStep(step, failed)
		return
	}
	h.heldMu.Lock()
	h.held = append(h.held, cloneState(step))
	h.heldMu.Unlock()
	go func() {
		for range 1000 {
			if _, err := os.Stat(h.after); err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		failed(errors.New("lease lost"))
	}()
}

// A held end refused later gives the attempt up as a refused report does:
// the running step is killed, nothing else starts, the end is UNSPECIFIED;
// while the run is being cancelled such a refusal no longer matters.
func TestEngineGivesUpWhenAHeldEndIsRefused(t *testing.T) {
	dir := t.TempDir()
	host := &holdingHost{refuseHeld: func(s *daguhav1.StepState) error {
		if s.GetName() == "quick" {
			return errors.New("lease lost")
		}
		return nil
	}}
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "quick", Command: `while [ ! -s "$D/pid" ]; do sleep 0.02; done`},
		&daguhav1.StepSpec{Name: "slow", Command: `echo $$ > "$D/pid"; exec sleep 300`},
		&daguhav1.StepSpec{Name: "after", Command: `touch "$D/after-ran"`, Depends: []string{"quick"}},
	)
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_UNSPECIFIED || !strings.Contains(r.message, "lease lost") {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	if got := host.last(); got["after"] != nil {
		t.Errorf("a step started after the refusal: %v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "after-ran")); err == nil {
		t.Error("a step ran after the refusal")
	}
	pid := readPid(t, filepath.Join(dir, "pid"))
	waitFor(t, 5*time.Second, "the sleep to be gone", func() bool { return processGone(pid) })

	dir = t.TempDir()
	cancelling := &holdingHost{refuseHeld: func(*daguhav1.StepState) error { return errors.New("server gone") }}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	go func() {
		readPid(t, filepath.Join(dir, "pid"))
		cancel(errCancelled)
	}()
	r = execute(t, ctx, testEngine(t), testRun(dir, &daguhav1.StepSpec{Name: "slow", Command: `echo $$ > "$D/pid"; exec sleep 300`}), cancelling)
	if r.status != daguhav1.RunStatus_RUN_STATUS_CANCELLED {
		t.Fatalf("cancelled run: %s %q", r.status, r.message)
	}
	if held := cancelling.heldStates(); len(held) != 1 || held[0].GetStatus() != daguhav1.StepStatus_STEP_STATUS_CANCELLED {
		t.Errorf("held while cancelling: %v", held)
	}
}

// An attempt queued by a retry runs only the steps the retry did not keep:
// a kept step is neither run nor reported, its output variable has the
// value the run recorded for the steps after it, and a kept failure
// counts in the run's result as it did before.
func TestEngineRunsOnlyTheStepsARetryDidNotKeep(t *testing.T) {
	dir := t.TempDir()
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "a", Command: `echo ran >> "$D/a"; echo fresh`, Output: "A"},
		&daguhav1.StepSpec{Name: "b", Command: `echo "$A" >> "$D/b"`, Depends: []string{"a"}},
		&daguhav1.StepSpec{Name: "c", Command: `echo ran >> "$D/c"`},
	)
	run.Attempt = 2
	run.KeptSteps = []*daguhav1.StepState{{Name: "a", Status: daguhav1.StepStatus_STEP_STATUS_SUCCEEDED}}
	run.Outputs = map[string]string{"A": "kept value"}
	host := &fakeHost{}
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED || r.outputs["A"] != "kept value" {
		t.Fatalf("run: %s %q, outputs %v", r.status, r.message, r.outputs)
	}
	if reports := host.of("a"); len(reports) != 0 {
		t.Errorf("the kept step was reported: %v", reports)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Errorf("the kept step ran again (%v)", err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "b")); err != nil || string(data) != "kept value\n" {
		t.Errorf("b saw A=%q (%v), want the kept value", data, err)
	}
	wantStatus(t, host, map[string]daguhav1.StepStatus{"b": daguhav1.StepStatus_STEP_STATUS_SUCCEEDED, "c": daguhav1.StepStatus_STEP_STATUS_SUCCEEDED})

	// A kept failure (a retry from another step) still fails the run, and
	// its dependants do not run.
	run = testRun(dir,
		&daguhav1.StepSpec{Name: "bad", Command: "true"},
		&daguhav1.StepSpec{Name: "after", Command: "true", Depends: []string{"bad"}},
		&daguhav1.StepSpec{Name: "again", Command: "true"},
	)
	run.KeptSteps = []*daguhav1.StepState{{Name: "bad", Status: daguhav1.StepStatus_STEP_STATUS_FAILED, Error: "exit status 4", ExitCode: 4}}
	host = &fakeHost{}
	r = execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_FAILED || r.message != "step bad failed: exit status 4" {
		t.Fatalf("run with a kept failure: %s %q", r.status, r.message)
	}
	wantStatus(t, host, map[string]daguhav1.StepStatus{"after": daguhav1.StepStatus_STEP_STATUS_SKIPPED, "again": daguhav1.StepStatus_STEP_STATUS_SUCCEEDED})
}
