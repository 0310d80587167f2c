package worker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/dispatch/dagfile"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

const (
	stepSucceeded = daguhav1.StepStatus_STEP_STATUS_SUCCEEDED
	stepFailed    = daguhav1.StepStatus_STEP_STATUS_FAILED
	stepSkipped   = daguhav1.StepStatus_STEP_STATUS_SKIPPED
	stepCancelled = daguhav1.StepStatus_STEP_STATUS_CANCELLED
	stepRunning   = daguhav1.StepStatus_STEP_STATUS_RUNNING
)

// ran reads the lines a test's steps appended to $D/name.
func ran(t *testing.T, dir, name string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(data))
}

// A step whose preconditions are not met is skipped with how they
// evaluated; its dependants are skipped too unless it continues on
// skipped; a step whose preconditions are met runs and keeps them.
func TestEnginePreconditionsSkipSteps(t *testing.T) {
	dir := t.TempDir()
	host := &fakeHost{}
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "prod-only", Command: `echo ran >> "$D/prod-only"`, Preconditions: []*daguhav1.Condition{
			{Condition: "$ENVIRONMENT", Expected: "production"},
			{Condition: `test -d "$D"`},
		}},
		&daguhav1.StepSpec{Name: "after-prod", Command: `echo ran >> "$D/after-prod"`, Depends: []string{"prod-only"}},
		&daguhav1.StepSpec{Name: "weekday", Command: `echo ran >> "$D/weekday"`, Preconditions: []*daguhav1.Condition{
			{Condition: "`printf 'x\\n3\\n'`", Expected: "re:^[1-5]$"},
			{Condition: "$ENVIRONMENT", Expected: "re:^prod", Negate: true},
		}},
		&daguhav1.StepSpec{Name: "optional", Command: "echo never", ContinueOn: &daguhav1.ContinueOn{Skipped: true}, Preconditions: []*daguhav1.Condition{{Condition: "exit 3"}}},
		&daguhav1.StepSpec{Name: "after-optional", Command: `echo ran >> "$D/after-optional"`, Depends: []string{"optional"}},
	)
	// A param given with the run is data (the DAG's own env and defaults
	// are the author's text, whose backquotes run, as in Dagu).
	value := "staging; $(touch " + dir + "/injected) `touch " + dir + "/injected`"
	run.Params = dagfile.FormatParams([]*daguhav1.Param{{Name: "ENVIRONMENT", Value: value}})
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	wantStatus(t, host, map[string]daguhav1.StepStatus{
		"prod-only": stepSkipped, "after-prod": stepSkipped, "weekday": stepSucceeded,
		"optional": stepSkipped, "after-optional": stepSucceeded,
	})
	last := host.last()
	skipped := last["prod-only"]
	if got := skipped.GetPreconditions(); len(got) != 2 || got[0].GetMet() || got[0].GetActual() != value ||
		!got[1].GetMet() || got[1].GetActual() != "exit status 0" {
		t.Errorf("prod-only's preconditions: %v", got)
	}
	if !strings.Contains(skipped.GetError(), `preconditions not met: "$ENVIRONMENT" expected "production", got "staging; $(touch `) {
		t.Errorf("prod-only's reason: %q", skipped.GetError())
	}
	if got := last["after-prod"].GetError(); got != `dependency "prod-only" was skipped` {
		t.Errorf("after-prod's reason: %q", got)
	}
	if got := last["weekday"].GetPreconditions(); len(got) != 2 || !got[0].GetMet() || !got[1].GetMet() || got[0].GetActual() != "x\n3" {
		t.Errorf("weekday's preconditions: %v", got)
	}
	if got := last["optional"].GetPreconditions(); len(got) != 1 || got[0].GetActual() != "exit status 3" {
		t.Errorf("optional's preconditions: %v", got)
	}
	for name, want := range map[string]int{"prod-only": 0, "after-prod": 0, "weekday": 1, "after-optional": 1} {
		if got := len(ran(t, dir, name)); got != want {
			t.Errorf("%s ran %d times, want %d", name, got, want)
		}
	}
	// A value is data in the condition, never shell text.
	if _, err := os.Stat(filepath.Join(dir, "injected")); err == nil {
		t.Errorf("a variable's value ran as a command")
	}
}

// A DAG's preconditions not met cancel the run before any step, and its
// cancel and exit handlers run, as in Dagu.
func TestEngineDagPreconditionsCancelTheRun(t *testing.T) {
	dir := t.TempDir()
	host := &fakeHost{}
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "a", Command: `echo ran >> "$D/a"`},
		&daguhav1.StepSpec{Name: "b", Command: `echo ran >> "$D/b"`, Depends: []string{"a"}},
	)
	run.Dag.Preconditions = []*daguhav1.Condition{{Condition: `test -f "$D/ready"`}}
	run.Dag.HandlerOn = &daguhav1.HandlerOn{
		Cancel: &daguhav1.StepSpec{Name: "onCancel", Command: `echo "$DAG_RUN_STATUS" >> "$D/handlers"`},
		Exit:   &daguhav1.StepSpec{Name: "onExit", Command: `echo exit >> "$D/handlers"`},
	}
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_CANCELLED || !strings.HasPrefix(r.message, `preconditions not met: "test -f \"$D/ready\"": exit status 1`) {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	wantStatus(t, host, map[string]daguhav1.StepStatus{"a": stepSkipped, "b": stepSkipped, "onCancel": stepSucceeded, "onExit": stepSucceeded})
	if got := host.last()["a"].GetError(); got != "the run's preconditions were not met" {
		t.Errorf("a's reason: %q", got)
	}
	if got := strings.Join(ran(t, dir, "handlers"), " "); got != "aborted exit" {
		t.Errorf("handlers ran: %q, want the cancel handler (seeing aborted) then exit", got)
	}

	// Met, the steps run.
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	host = &fakeHost{}
	r = execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED || len(ran(t, dir, "b")) != 1 {
		t.Fatalf("run with its preconditions met: %s %q", r.status, r.message)
	}
}

// Handlers run after the steps, by the run's end, then exit; each is
// reported as a step marked with its kind; a failed handler fails a run
// that had succeeded; handlers see every step's outputs.
func TestEngineHandlers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		main       string
		want       daguhav1.RunStatus
		message    string
		handlers   string
		exitStatus daguhav1.StepStatus
		exitFails  bool
	}{
		{"success", "true", daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "", "success:succeeded:v exit:succeeded:v", stepSucceeded, false},
		{"failure", "exit 4", daguhav1.RunStatus_RUN_STATUS_FAILED, "step main failed: exit status 4", "failure:failed:v exit:failed:v", stepSucceeded, false},
		{"failing exit handler", "true", daguhav1.RunStatus_RUN_STATUS_FAILED, "handler onExit failed: exit status 9", "success:succeeded:v exit:succeeded:v", stepFailed, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			host := &fakeHost{}
			run := testRun(dir, &daguhav1.StepSpec{Name: "main", Command: "echo v; " + tc.main, Output: "OUT"})
			exit := `echo "exit:$DAG_RUN_STATUS:$OUT" >> "$D/handlers"`
			if tc.exitFails {
				exit += "; exit 9"
			}
			run.Dag.HandlerOn = &daguhav1.HandlerOn{
				Success: &daguhav1.StepSpec{Name: "onSuccess", Command: `echo "success:$DAG_RUN_STATUS:$OUT" >> "$D/handlers"`},
				Failure: &daguhav1.StepSpec{Name: "onFailure", Command: `echo "failure:$DAG_RUN_STATUS:$OUT" >> "$D/handlers"`},
				Cancel:  &daguhav1.StepSpec{Name: "onCancel", Command: `echo cancel >> "$D/handlers"`},
				Exit:    &daguhav1.StepSpec{Name: "onExit", Command: exit},
			}
			r := execute(t, context.Background(), testEngine(t), run, host)
			if r.status != tc.want || r.message != tc.message {
				t.Fatalf("run: %s %q", r.status, r.message)
			}
			if got := strings.Join(ran(t, dir, "handlers"), " "); got != tc.handlers {
				t.Errorf("handlers ran: %q, want %q", got, tc.handlers)
			}
			last := host.last()
			if e := last["onExit"]; e.GetStatus() != tc.exitStatus || e.GetHandler() != "exit" {
				t.Errorf("onExit: %v", e)
			}
			if _, ran := last["onCancel"]; ran {
				t.Errorf("the cancel handler was reported: %v", last["onCancel"])
			}
			// The handlers' states come after the step's end.
			host.mu.Lock()
			names := []string{}
			for _, s := range host.reports {
				if s.GetStatus() != stepRunning {
					names = append(names, s.GetName())
				}
			}
			host.mu.Unlock()
			if names[0] != "main" || names[len(names)-1] != "onExit" {
				t.Errorf("ends reported in the order %v", names)
			}
		})
	}
}

// Cancelling a run stops its steps, then its cancel and exit handlers
// run even though the run's context is cancelled.
func TestEngineCancelRunsTheCancelAndExitHandlers(t *testing.T) {
	dir := t.TempDir()
	host := &fakeHost{}
	run := testRun(dir, &daguhav1.StepSpec{Name: "slow", Command: `echo $$ > "$D/pid"; exec sleep 300`})
	run.Dag.HandlerOn = &daguhav1.HandlerOn{
		Cancel: &daguhav1.StepSpec{Name: "onCancel", Command: `echo "cancel:$DAG_RUN_STATUS" >> "$D/handlers"`},
		Exit:   &daguhav1.StepSpec{Name: "onExit", Command: `sleep 0.2; echo exit >> "$D/handlers"`},
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	go func() {
		readPid(t, filepath.Join(dir, "pid"))
		cancel(errCancelled)
	}()
	r := execute(t, ctx, testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_CANCELLED {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	wantStatus(t, host, map[string]daguhav1.StepStatus{"slow": stepCancelled, "onCancel": stepSucceeded, "onExit": stepSucceeded})
	if got := strings.Join(ran(t, dir, "handlers"), " "); got != "cancel:aborted exit" {
		t.Errorf("handlers ran: %q", got)
	}
}

// An init handler runs before the steps; when it fails, no step runs and
// the run fails (then its failure and exit handlers run).
func TestEngineInitHandler(t *testing.T) {
	dir := t.TempDir()
	host := &fakeHost{}
	run := testRun(dir, &daguhav1.StepSpec{Name: "main", Command: `echo main >> "$D/order"`})
	run.Dag.HandlerOn = &daguhav1.HandlerOn{
		Init: &daguhav1.StepSpec{Name: "onInit", Command: `echo init >> "$D/order"; [ -f "$D/ok" ]`},
		Exit: &daguhav1.StepSpec{Name: "onExit", Command: `echo exit >> "$D/order"`},
	}
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_FAILED || r.message != "handler onInit failed: exit status 1" {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	if got := strings.Join(ran(t, dir, "order"), " "); got != "init exit" {
		t.Errorf("ran %q", got)
	}
	wantStatus(t, host, map[string]daguhav1.StepStatus{"main": stepSkipped, "onInit": stepFailed})

	os.Remove(filepath.Join(dir, "order"))
	os.WriteFile(filepath.Join(dir, "ok"), nil, 0o600)
	r = execute(t, context.Background(), testEngine(t), run, &fakeHost{})
	if got := strings.Join(ran(t, dir, "order"), " "); r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED || got != "init main exit" {
		t.Errorf("run %s %q: ran %q", r.status, r.message, got)
	}
}

// A handler's preconditions decide whether it runs; a handler may start
// a child run.
func TestEngineHandlerPreconditionsAndChild(t *testing.T) {
	dir := t.TempDir()
	host := &fakeHost{children: map[string]*daguhav1.Run{
		"child-onExit-1": {Id: "child-onExit-1", Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED},
	}}
	run := testRun(dir, &daguhav1.StepSpec{Name: "main", Command: "true"})
	run.Dag.HandlerOn = &daguhav1.HandlerOn{
		Success: &daguhav1.StepSpec{Name: "onSuccess", Command: `echo ran >> "$D/success"`,
			Preconditions: []*daguhav1.Condition{{Condition: "$ALERT", Expected: "yes"}}},
		Exit: &daguhav1.StepSpec{Name: "onExit", ChildDag: "cleanup"},
	}
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	wantStatus(t, host, map[string]daguhav1.StepStatus{"onSuccess": stepSkipped, "onExit": stepSucceeded})
	if last := host.last(); last["onSuccess"].GetHandler() != "success" || last["onExit"].GetChildRunId() != "child-onExit-1" {
		t.Errorf("handlers: %v", last)
	}
	if len(ran(t, dir, "success")) != 0 {
		t.Errorf("a handler ran with its preconditions not met")
	}
}

// repeatPolicy: each form repeats as Dagu's does, every execution is
// reported with its number, and the limit bounds the executions.
func TestEngineRepeatPolicy(t *testing.T) {
	dir := t.TempDir()
	host := &fakeHost{}
	count := func(name string) string {
		return `echo x >> "$D/` + name + `"; n=$(wc -l < "$D/` + name + `"); `
	}
	run := testRun(dir,
		// while it succeeds, at most 3 times
		&daguhav1.StepSpec{Name: "limited", Command: count("limited") + "true",
			RepeatPolicy: &daguhav1.RepeatPolicy{Mode: "while", Limit: 3}},
		// while it exits 1 (fails twice, then succeeds)
		&daguhav1.StepSpec{Name: "exit-code", Command: count("exit-code") + `[ "$n" -ge 3 ]`,
			RepeatPolicy: &daguhav1.RepeatPolicy{Mode: "while", ExitCodes: []int32{1}, Limit: 10}},
		// until its own output says done
		&daguhav1.StepSpec{Name: "until-output", Command: count("until-output") + `[ "$n" -ge 2 ] && echo done || echo not-yet`, Output: "STATE",
			RepeatPolicy: &daguhav1.RepeatPolicy{Mode: "until", Condition: &daguhav1.Condition{Condition: "$STATE", Expected: "done"}, Limit: 10}},
		// while a command succeeds
		&daguhav1.StepSpec{Name: "while-command", Command: count("while-command") + "true",
			RepeatPolicy: &daguhav1.RepeatPolicy{Mode: "while", Condition: &daguhav1.Condition{Condition: `[ $(wc -l < "$D/while-command") -lt 4 ]`}}},
		// until it succeeds
		&daguhav1.StepSpec{Name: "until-success", Command: count("until-success") + `[ "$n" -ge 2 ]`,
			RepeatPolicy: &daguhav1.RepeatPolicy{Mode: "until", Limit: 5}},
	)
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	for name, want := range map[string]int{"limited": 3, "exit-code": 3, "until-output": 2, "while-command": 4, "until-success": 2} {
		if got := len(ran(t, dir, name)); got != want {
			t.Errorf("%s ran %d times, want %d", name, got, want)
		}
		var repeats []uint32
		for _, s := range host.of(name) {
			if s.GetStatus() == stepRunning {
				repeats = append(repeats, s.GetRepeat())
			}
		}
		if len(repeats) != want || repeats[want-1] != uint32(want) {
			t.Errorf("%s: running reports with repeats %v, want 1..%d", name, repeats, want)
		}
		if last := host.last()[name]; last.GetStatus() != stepSucceeded || last.GetRepeat() != uint32(want) || last.GetRetry() != 1 {
			t.Errorf("%s ended %v", name, last)
		}
	}
	if got := r.outputs["STATE"]; got != "done" {
		t.Errorf("STATE = %q", got)
	}
}

// A repeat waits its interval, growing by its backoff up to its maximum;
// a step failing its last execution fails.
func TestEngineRepeatIntervalBackoffAndFailure(t *testing.T) {
	dir := t.TempDir()
	host := &fakeHost{}
	run := testRun(dir, &daguhav1.StepSpec{Name: "poll", Command: `date +%s.%N >> "$D/poll"; exit 1`,
		RepeatPolicy: &daguhav1.RepeatPolicy{Mode: "while", ExitCodes: []int32{1}, Limit: 3, IntervalSec: 1, Backoff: 3, MaxIntervalSec: 1}})
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_FAILED || r.message != "step poll failed: exit status 1" {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	if got := len(ran(t, dir, "poll")); got != 3 {
		t.Errorf("ran %d times, want 3", got)
	}
	// 1 s and min(3 s, 1 s): about 2 s in all.
	if r.took < 1900*time.Millisecond || r.took > 4*time.Second {
		t.Errorf("three executions took %s, want about 2 s", r.took)
	}
	if d := daguhav1.BackoffWait(2, 2, 0, 3); d != 16*time.Second {
		t.Errorf("daguhav1.BackoffWait(2 s, ×2, n=3) = %s", d)
	}
	if d := daguhav1.BackoffWait(2, 2, 10, 3); d != 10*time.Second {
		t.Errorf("backoffWait capped at 10 s = %s", d)
	}
}

// retryPolicy.exitCode retries only the tries that exited with one of
// its codes; retries of a repeated step count up within each execution.
func TestEngineRetryOnlyOnListedExitCodes(t *testing.T) {
	dir := t.TempDir()
	host := &fakeHost{}
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "listed", Command: `echo x >> "$D/listed"; [ $(wc -l < "$D/listed") -ge 3 ] || exit 75`,
			RetryPolicy: &daguhav1.RetryPolicy{Limit: 5, ExitCodes: []int32{75}}},
		&daguhav1.StepSpec{Name: "unlisted", Command: `echo x >> "$D/unlisted"; exit 2`,
			RetryPolicy: &daguhav1.RetryPolicy{Limit: 5, ExitCodes: []int32{75}}},
	)
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_FAILED || r.message != "step unlisted failed: exit status 2" {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	if got, want := len(ran(t, dir, "listed")), 3; got != want {
		t.Errorf("listed ran %d times, want %d", got, want)
	}
	if got := len(ran(t, dir, "unlisted")); got != 1 {
		t.Errorf("unlisted ran %d times, want 1: its exit code is not listed", got)
	}
	if last := host.last()["listed"]; last.GetStatus() != stepSucceeded || last.GetRetry() != 3 {
		t.Errorf("listed ended %v", last)
	}
}

// A repeated run/call step starts a new child run for each execution.
func TestEngineRepeatedChildStepsStartOneChildEach(t *testing.T) {
	host := &fakeHost{children: map[string]*daguhav1.Run{
		"child-sub-1": {Id: "child-sub-1", Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED},
		"child-sub-2": {Id: "child-sub-2", Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED},
	}}
	run := testRun(t.TempDir(), &daguhav1.StepSpec{Name: "sub", ChildDag: "sub", RepeatPolicy: &daguhav1.RepeatPolicy{Mode: "while", Limit: 2}})
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	host.mu.Lock()
	calls := strings.Join(host.childCalls, " ")
	host.mu.Unlock()
	if calls != "sub/1 sub/2" {
		t.Errorf("child starts %q, want sub/1 sub/2", calls)
	}
	if last := host.last()["sub"]; last.GetChildRunId() != "child-sub-2" || last.GetRepeat() != 2 {
		t.Errorf("sub ended %v", last)
	}
}

func TestMatchExpected(t *testing.T) {
	for _, tc := range []struct {
		value, expected string
		want            bool
	}{
		{"production", "production", true},
		{"production\n", "production", true},
		{"a\nproduction\nb", "production", true},
		{"production-2", "production", false},
		{"3", "re:[1-5]", true},
		{"x\ny7", "re:^[1-5]$", false},
		{"", "re:^$", true},
		{"abc", "re:[", false},
	} {
		if got := matchExpected(tc.value, tc.expected); got != tc.want {
			t.Errorf("matchExpected(%q, %q) = %v", tc.value, tc.expected, got)
		}
	}
}
