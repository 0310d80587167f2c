package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// What decides whether and how often a step runs, and what runs when a
// run ends: Dagu's preconditions, repeat and retry policies and handlers.

// cleanupTimeout bounds the handlers of a cancelled run (Dagu's default
// maxCleanUpTimeSec): the run is being stopped, and a handler must not
// hold its worker for ever.
const cleanupTimeout = 60 * time.Second

// runBlocked is why a run ended before its steps ran: its preconditions
// were not met, or its init handler failed.
type runBlocked struct {
	status  daguhav1.RunStatus
	message string
	// reason is the error of the steps, all skipped.
	reason string
}

// start evaluates the run's preconditions, then runs its init handler.
// nil: the steps may run.
func (x *execution) start() *runBlocked {
	if conds := x.run.GetDag().GetPreconditions(); len(conds) > 0 {
		results, met := x.evalConditions(x.ctx, conds, x.base, "")
		if !met && x.ctx.Err() == nil {
			return &runBlocked{status: daguhav1.RunStatus_RUN_STATUS_CANCELLED,
				message: "preconditions not met: " + unmet(results), reason: "the run's preconditions were not met"}
		}
	}
	if i := x.handlerIndex("init"); i >= 0 && x.ctx.Err() == nil {
		x.runStatus = "running"
		st := x.runHandler(i)
		if st != nil && st.GetStatus() != daguhav1.StepStatus_STEP_STATUS_SUCCEEDED && st.GetStatus() != daguhav1.StepStatus_STEP_STATUS_SKIPPED {
			return &runBlocked{status: daguhav1.RunStatus_RUN_STATUS_FAILED,
				message: fmt.Sprintf("handler %s failed: %s", st.GetName(), st.GetError()), reason: "the init handler failed"}
		}
	}
	return nil
}

// handlerKind is which handler step i is ("" for a step).
func (x *execution) handlerKind(i int) string {
	if i < x.handlers {
		return ""
	}
	on := x.run.GetDag().GetHandlerOn()
	switch x.steps[i] {
	case on.GetInit():
		return "init"
	case on.GetSuccess():
		return "success"
	case on.GetFailure():
		return "failure"
	case on.GetCancel():
		return "cancel"
	case on.GetExit():
		return "exit"
	}
	return ""
}

// handlerIndex is the index of the handler of kind, -1 when the DAG has
// none.
func (x *execution) handlerIndex(kind string) int {
	for i := x.handlers; i < len(x.steps); i++ {
		if x.handlerKind(i) == kind {
			return i
		}
	}
	return -1
}

// runHandlers runs the handlers of a run that ended as status: success,
// failure or cancel by the status, then exit, one after the other, as
// Dagu does. A handler that fails fails a run that succeeded. Nothing
// runs for an attempt given up.
func (x *execution) runHandlers(status daguhav1.RunStatus, message string) (daguhav1.RunStatus, string) {
	if status == daguhav1.RunStatus_RUN_STATUS_UNSPECIFIED || x.handlers == len(x.steps) {
		return status, message
	}
	var kinds []string
	switch status {
	case daguhav1.RunStatus_RUN_STATUS_SUCCEEDED:
		kinds = append(kinds, "success")
	case daguhav1.RunStatus_RUN_STATUS_FAILED:
		kinds = append(kinds, "failure")
	case daguhav1.RunStatus_RUN_STATUS_CANCELLED:
		kinds = append(kinds, "cancel")
	}
	kinds = append(kinds, "exit")
	for _, kind := range kinds {
		i := x.handlerIndex(kind)
		if i < 0 {
			continue
		}
		_, x.runStatus = status.Dagu()
		st := x.runHandler(i)
		if err := x.failure(); err != nil {
			return daguhav1.RunStatus_RUN_STATUS_UNSPECIFIED, err.Error()
		}
		if st != nil && (st.GetStatus() == daguhav1.StepStatus_STEP_STATUS_FAILED || st.GetStatus() == daguhav1.StepStatus_STEP_STATUS_CANCELLED) &&
			status == daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
			status, message = daguhav1.RunStatus_RUN_STATUS_FAILED, fmt.Sprintf("handler %s failed: %s", st.GetName(), st.GetError())
		}
	}
	switch {
	case x.cancelled():
		return daguhav1.RunStatus_RUN_STATUS_CANCELLED, "cancelled"
	case x.parent.Err() != nil:
		return daguhav1.RunStatus_RUN_STATUS_UNSPECIFIED, context.Cause(x.parent).Error()
	}
	return status, message
}

// handlerContext is what a handler runs in: the attempt's context, not
// the run's timeout (the run has ended); once the run is cancelled, a
// context of its own bounded by cleanupTimeout. Either ends when a report
// is refused.
func (x *execution) handlerContext() (context.Context, func()) {
	base, release := x.parent, func() {}
	if x.cancelled() {
		base, release = context.WithTimeout(context.WithoutCancel(x.parent), cleanupTimeout)
	}
	ctx, stop := context.WithCancelCause(base)
	x.mu.Lock()
	if x.reportErr != nil {
		stop(x.reportErr)
	}
	x.stops = append(x.stops, stop)
	x.mu.Unlock()
	return ctx, func() { stop(nil); release() }
}

// runHandler runs handler i once (Dagu neither retries nor repeats a
// handler) and returns its end: nil when its start was refused.
func (x *execution) runHandler(i int) *daguhav1.StepState {
	ctx, done := x.handlerContext()
	defer done()
	var met []*daguhav1.ConditionResult
	if len(x.steps[i].GetPreconditions()) > 0 {
		var ok bool
		if met, ok = x.checkPreconditions(ctx, i); !ok {
			if x.final(i) == daguhav1.StepStatus_STEP_STATUS_SKIPPED {
				return &daguhav1.StepState{Name: x.steps[i].GetName(), Status: daguhav1.StepStatus_STEP_STATUS_SKIPPED}
			}
			return nil
		}
	}
	st, ok := x.try(ctx, i, &tryNumber{seq: 1, retry: 1}, met)
	if !ok {
		x.setFinal(i, &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_CANCELLED, Error: "not started"})
		return nil
	}
	x.setFinal(i, st)
	x.reportEnd(st)
	return st
}

// checkPreconditions evaluates the preconditions of step i in ctx, after
// reporting it running (they run commands). When they are not met the
// step is reported SKIPPED with how they evaluated; when ctx ends first,
// as a try would be. ok: the step may run, met are the results.
func (x *execution) checkPreconditions(ctx context.Context, i int) (met []*daguhav1.ConditionResult, ok bool) {
	spec := x.steps[i]
	n := &tryNumber{retry: 1}
	if spec.GetRepeatPolicy() != nil && i < x.handlers {
		n.repeat = 1
	}
	started := x.now().UnixNano()
	running := x.state(i, n, nil)
	running.Status, running.StartedAtUnixNano = daguhav1.StepStatus_STEP_STATUS_RUNNING, started
	if x.report(running) != nil {
		x.setFinal(i, &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_CANCELLED, Error: "not started"})
		return nil, false
	}
	vars, err := x.stepVars(ctx, i)
	dir := ""
	if err == nil {
		dir, err = x.stepDir(spec, resolver{x: x, vars: vars, osEnv: true, positional: true})
	}
	if err != nil {
		st := &daguhav1.StepState{Name: spec.GetName(), Status: daguhav1.StepStatus_STEP_STATUS_FAILED, ExitCode: -1, Error: err.Error(),
			StartedAtUnixNano: started, FinishedAtUnixNano: x.now().UnixNano(), Handler: x.handlerKind(i)}
		x.setFinal(i, st)
		x.reportEnd(st)
		return nil, false
	}
	results, all := x.evalConditions(ctx, spec.GetPreconditions(), vars, dir)
	if ctx.Err() != nil {
		st := stoppedState(ctx)
		st.Name, st.StartedAtUnixNano, st.FinishedAtUnixNano, st.Preconditions, st.Handler = spec.GetName(), started, x.now().UnixNano(), results, x.handlerKind(i)
		x.setFinal(i, st)
		x.reportEnd(st)
		return nil, false
	}
	if !all {
		x.skipFor(i, "preconditions not met: "+unmet(results), true, results)
		return nil, false
	}
	return results, true
}

// unmet describes the conditions that were not met.
func unmet(results []*daguhav1.ConditionResult) string {
	var parts []string
	for _, r := range results {
		if r.GetMet() {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%q", r.GetCondition())
		if r.GetExpected() != "" {
			fmt.Fprintf(&b, " expected %q, got %q", r.GetExpected(), r.GetActual())
		} else {
			fmt.Fprintf(&b, ": %s", r.GetActual())
		}
		if r.GetNegate() {
			b.WriteString(" (negated)")
		}
		parts = append(parts, b.String())
	}
	return strings.Join(parts, "; ")
}

// evalConditions evaluates every condition (Dagu evaluates them all, so
// each is recorded) in ctx with vars in the environment and dir as the
// working directory. all: every one was met.
func (x *execution) evalConditions(ctx context.Context, conds []*daguhav1.Condition, vars []envVar, dir string) (results []*daguhav1.ConditionResult, all bool) {
	all = true
	for _, c := range conds {
		r := x.evalCondition(ctx, c, vars, dir)
		results = append(results, r)
		all = all && r.GetMet()
	}
	return results, all
}

// evalCondition evaluates one condition. Without expected, the condition
// is a shell command, met when it exits 0. With expected, the shell
// expands it as the text of a here-document (so $VAR, ${VAR}, `command`
// and $(command) are expanded, quotes kept) and it is met when a line of
// the value is expected, or matches the regular expression after "re:".
// Values reach the shell as environment, never pasted into its text.
// negate turns met into not met and back, but not a failure to evaluate.
func (x *execution) evalCondition(ctx context.Context, c *daguhav1.Condition, vars []envVar, dir string) *daguhav1.ConditionResult {
	res := &daguhav1.ConditionResult{Condition: c.GetCondition(), Expected: c.GetExpected(), Negate: c.GetNegate()}
	if x.e.Noop {
		res.Met, res.Actual = true, "not evaluated: no-op executor"
		return res
	}
	env := os.Environ()
	for _, v := range vars {
		env = append(env, v.name+"="+v.value)
	}
	var ok bool
	if c.GetExpected() == "" {
		r := runProcess(ctx, process{argv: append([]string{"sh", "-c", c.GetCondition(), "sh"}, x.positional...), dir: dir, env: env, grace: x.e.KillGrace})
		switch {
		case r.stopped:
			res.Actual = "stopped: " + context.Cause(ctx).Error()
			return res
		case r.exitCode >= 0:
			res.Actual, ok = fmt.Sprintf("exit status %d", r.exitCode), r.exitCode == 0
		default:
			res.Actual = r.err.Error()
		}
	} else {
		value, err := x.expandCondition(ctx, c.GetCondition(), env, dir)
		if err != nil {
			res.Actual = "not evaluated: " + err.Error()
			return res
		}
		res.Actual, ok = value, matchExpected(value, c.GetExpected())
	}
	res.Met = ok != c.GetNegate()
	return res
}

// expandCondition is the text of a condition as the shell expands it.
// A text without $, ` or \ is its own value, with no process started.
func (x *execution) expandCondition(ctx context.Context, text string, env []string, dir string) (string, error) {
	if !strings.ContainsAny(text, "$`\\") {
		return text, nil
	}
	var delim string
	for delim == "" || strings.Contains(text, delim) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		delim = "DAGUHA_CONDITION_" + hex.EncodeToString(b[:])
	}
	script := "cat <<" + delim + "\n" + text + "\n" + delim + "\n"
	stdout := &capBuffer{max: maxOutputValueBytes}
	r := runProcess(ctx, process{argv: append([]string{"sh", "-c", script, "sh"}, x.positional...), dir: dir, env: env, stdout: stdout, grace: x.e.KillGrace})
	switch {
	case r.stopped:
		return "", fmt.Errorf("stopped: %v", context.Cause(ctx))
	case stdout.overflow:
		return "", fmt.Errorf("the value is more than %d bytes", maxOutputValueBytes)
	case r.err != nil:
		return "", fmt.Errorf("%v: %s", r.err, strings.TrimSpace(r.tail))
	}
	return strings.TrimSuffix(string(stdout.buf), "\n"), nil
}

// matchExpected tells whether a line of value is expected, or, for
// "re:PATTERN", whether the pattern is found in a line (Dagu's test).
func matchExpected(value, expected string) bool {
	lines := strings.Split(strings.TrimSuffix(value, "\n"), "\n")
	pattern, isRegexp := strings.CutPrefix(expected, "re:")
	var re *regexp.Regexp
	if isRegexp {
		var err error
		if re, err = regexp.Compile(pattern); err != nil {
			return false
		}
	}
	for _, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		if isRegexp && re.MatchString(line) || !isRegexp && line == expected {
			return true
		}
	}
	return false
}

// exitCodeOf is the exit code a policy tests: a failure that had none (a
// child run, a process that could not start) counts as 1, as in Dagu.
func exitCodeOf(st *daguhav1.StepState) int32 {
	if st.GetStatus() == daguhav1.StepStatus_STEP_STATUS_FAILED && st.GetExitCode() == 0 {
		return 1
	}
	return st.GetExitCode()
}

// retriesOn tells whether a failed try may be retried: any failure, or
// only those with one of the policy's exit codes.
func retriesOn(policy *daguhav1.RetryPolicy, st *daguhav1.StepState) bool {
	codes := policy.GetExitCodes()
	return len(codes) == 0 || slices.Contains(codes, exitCodeOf(st))
}

// repeats tells whether step i runs again after its execution-th
// execution ended as st: never past the limit of executions; else, in
// while mode, while the condition is met, the exit code is one of the
// policy's, or (with neither) the step succeeds (or fails with
// continue_on_failure, as in Dagu 1.x); in until mode, until they are.
func (x *execution) repeats(i int, policy *daguhav1.RepeatPolicy, execution uint32, st *daguhav1.StepState) bool {
	if limit := policy.GetLimit(); limit > 0 && execution >= limit {
		return false
	}
	var holds bool
	switch {
	case policy.GetCondition() != nil:
		// The condition sees the step's own output.
		vars, err := x.stepVars(x.ctx, i)
		if err != nil {
			return false
		}
		x.mu.Lock()
		if o := x.outputs[i]; o != nil {
			vars = append(vars, *o)
		}
		x.mu.Unlock()
		dir, err := x.stepDir(x.steps[i], resolver{x: x, vars: vars, osEnv: true, positional: true})
		if err != nil {
			return false
		}
		r := x.evalCondition(x.ctx, policy.GetCondition(), vars, dir)
		if x.ctx.Err() != nil {
			return false
		}
		x.logger.Info("repeat condition", "step", x.steps[i].GetName(), "met", r.GetMet(), "actual", r.GetActual())
		holds = r.GetMet()
	case len(policy.GetExitCodes()) > 0:
		holds = slices.Contains(policy.GetExitCodes(), exitCodeOf(st))
	default:
		holds = st.GetStatus() == daguhav1.StepStatus_STEP_STATUS_SUCCEEDED ||
			st.GetStatus() == daguhav1.StepStatus_STEP_STATUS_FAILED && x.steps[i].GetContinueOnFailure()
		if policy.GetMode() == "until" {
			return st.GetStatus() == daguhav1.StepStatus_STEP_STATUS_FAILED
		}
	}
	if policy.GetMode() == "until" {
		return !holds
	}
	return holds
}
