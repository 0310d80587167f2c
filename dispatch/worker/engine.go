package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/daguha/daguha/dispatch/dagfile"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// RunHost is what the engine needs from the cluster while running one
// attempt.
type RunHost interface {
	ReportStep(ctx context.Context, step *daguhav1.StepState) error
	// StartChild asks the cluster to enqueue the child run of a run/call
	// step (idempotent per step+retry).
	StartChild(ctx context.Context, stepName string, retry uint32, params string) (childRunID string, err error)
	// WaitChild blocks until the child run has ended and returns its
	// record.
	WaitChild(ctx context.Context, childRunID string) (*daguhav1.Run, error)
}

// StepHolder is a RunHost that need not send a step's end at once. A
// step's end (SUCCEEDED, FAILED, SKIPPED, CANCELLED) changes nothing the
// attempt does next, so HoldStep may keep it to go with the run's next
// report or its finish, or send it on its own shortly after. If the
// cluster refuses it, or it cannot be sent, the host calls failed with the
// error a ReportStep of it would have returned (from another goroutine,
// at most once).
//
// A step's start is reported, and taken, before its command runs: that is
// what keeps an attempt whose lease has passed to another from running
// anything more. The one exception is a lease the host knows to be fresh
// (LeaseFresh): granted so recently that it cannot have run out and gone
// to another attempt, so the start is held like an end and the command
// runs at once. A held start that is refused later gives the attempt up,
// as a refused end does.
type StepHolder interface {
	HoldStep(step *daguhav1.StepState, failed func(error))
	// LeaseFresh tells whether the attempt's lease is certain to be held
	// still, by the host's own clock (see Task.poll_held_millis).
	LeaseFresh() bool
}

// Engine runs the steps of a DAG run as Dagu does: as a graph by their
// dependencies, independent steps at once.
//
// Semantics, step by step:
//   - A step starts when every step it depends on has ended. It runs if
//     each of them succeeded, or failed and continues (continue_on_failure,
//     or continue_on's exit codes or output), or was skipped for its own
//     reason with continue_on.skipped; else it is reported SKIPPED and does
//     not run. delay_sec of the DAG spaces the starts of steps.
//   - A command runs as `sh -e -c COMMAND sh ARG1 ARG2...`, a script as
//     `sh -e FILE ARG1...`, so the run's positional params are $1, $2... in
//     the shell itself; a step's or the DAG's shell replaces sh, and a
//     step's own shell gets no -e (commandArgv). Commands of a list run in
//     turn until one fails; a command with a script is its interpreter.
//     Each runs in the step's directory (dir and the DAG's working_dir,
//     resolved on the worker; one that is not there fails the step) and in
//     its own process group; when it ends, times out or is cancelled, the
//     whole group is stopped (signal_on_stop, default SIGTERM, then
//     SIGKILL after the DAG's max_clean_up_time_sec, else KillGrace), so no
//     process outlives its step.
//   - A DAG with a container (Dagu's DAG-level container) has its
//     command steps executed in one container of the run instead
//     (exec_container.go): made when the first needs it, removed when
//     the attempt ends.
//   - Variables, in increasing precedence: the worker's environment;
//     DAG_NAME, DAG_RUN_ID, DAG_RUN_ATTEMPT and DAG_RUN_FENCING_TOKEN (the
//     attempt's number and its lease's fencing token, so a step can tell
//     one execution from another), DAG_RUN_LOG_FILE (the attempt's run
//     log, streams.go); the DAG's env in order (a value may use the
//     ones before it and the worker's environment); the named params (the
//     run's params merged over the DAG's defaults; a default may use the
//     env and the defaults before it, a param given with the run is taken
//     literally); the outputs of the steps the step depends on, directly or
//     not; DAG_RUN_STEP_NAME, DAG_RUN_STEP_STDOUT_FILE and
//     DAG_RUN_STEP_STDERR_FILE (stepFiles); the step's env in order. All of them are in
//     the process's environment, where the shell expands $NAME and ${NAME}
//     in command and script itself. The engine does not paste values into
//     the shell text as Dagu does: a value holding quotes or `;` (a param
//     given with the run, a step's output) would change the command, where
//     the shell's own expansion keeps it data. A reference the shell cannot
//     read (a JSON path into a variable, ${OUT.a.b[0]}, or a property of a
//     step by its id, ${id.stdout}) is evaluated by the engine and handed
//     to the shell as a variable of its own (see shellText, vars.go).
//     In env values, default params, dir and child_params, which no
//     shell sees, the engine puts the values in itself (expandVars), and
//     runs `commands` in backquotes in env values, default params and
//     child_params (evalValue); other references are left as they are.
//   - output: VAR captures the step's stdout, without its trailing
//     newlines, when the step ran to its end (succeeded, or failed); more
//     than 1 MiB of stdout (or the DAG's max_output_size) fails the step.
//     For a run/call step the value is the child run's result as Dagu
//     prints it: indented JSON of its name, dagRunId, params, outputs and
//     status. A step's output map is worked out when it succeeds
//     (publishOutputs). The DAG's .env files are read when the run starts,
//     after its env; params are held to the DAG's param rules.
//   - A step with an id keeps its stdout and stderr apart in files of
//     their own (streams.go), which ${id.stdout} and ${id.stderr} name.
//   - continue_on.mark_success records a failure that continues as a
//     success (its error says so).
//   - retry_policy retries a failed step (a timeout is a failure) up to
//     limit times, interval_sec apart (growing by backoff), only on its
//     exit_codes when it has some; each try is reported with retry
//     1, 2, ...; the end of every try is reported.
//   - preconditions are evaluated after a step's running report; not met,
//     it is SKIPPED with their results, and its dependants too unless it
//     has continue_on_skipped. The DAG's are evaluated first: not met,
//     the run is CANCELLED with every step SKIPPED. repeat_policy runs a
//     step again while or until its condition or exit codes hold; each
//     execution is reported with repeat 1, 2, .... Handlers run after
//     the steps (init before them). See control.go.
//   - timeout_sec of a step fails the try with "timed out after Ns";
//     timeout_sec of the DAG stops the whole run: running steps fail with
//     "run timed out after Ns", the rest are SKIPPED, the run FAILS.
//   - The run SUCCEEDS when no step failed, counting a failure that
//     continues as no failure (Dagu would mark such a run
//     partially succeeded; there is no such status here). It FAILS with
//     "step X failed: ..." naming the first failed step in DAG order. It is
//     CANCELLED when ctx is cancelled with cause errCancelled: running
//     steps are reported CANCELLED, steps not started SKIPPED.
//   - An attempt queued by a retry (daguha retry) starts from the step
//     states the retry kept (Run.kept_steps): those steps do not run
//     again, their output variables keep the run's recorded values, and
//     the others run as the graph says (keep).
//   - Any other end of ctx (lease lost, worker stopping) or a refused
//     report stops the attempt silently: processes are killed, nothing more
//     is reported, and Execute returns RUN_STATUS_UNSPECIFIED. A step's
//     start report must be taken before the step runs, unless the host is
//     a StepHolder that vouches for its lease; its end may be held by a
//     StepHolder, and a held state refused later stops the attempt the
//     same way.
type Engine struct {
	// LogDir holds the full output of every step, at LogPath. Empty: full
	// logs are not kept (reports still carry the tail).
	LogDir string
	Now    func() time.Time
	Logger *slog.Logger
	// MaxParallel bounds the steps of one run running at once (0: no
	// bound).
	MaxParallel int
	// KillGrace is how long stopped processes get between SIGTERM and
	// SIGKILL (default 5 s).
	KillGrace time.Duration
	// Noop: command and script steps succeed at once without starting a
	// process (their output variables are empty). run/call steps still
	// start child runs. For benchmarks of the coordinator.
	Noop bool

	// published, when set, is told the values of each step's output map
	// (tests).
	published func(step string, values map[string]any)
	// Mail is the worker's own mail settings, under the DAGs' (mail.go).
	Mail MailSettings
}

// LogPath is the file holding the full output of a step in one attempt of
// a run: LogDir/<run-id>/<attempt>/<step>.log, names made safe for a path.
func (e *Engine) LogPath(runID string, attempt uint32, step string) string {
	return filepath.Join(e.LogDir, safeName(runID), strconv.FormatUint(uint64(attempt), 10), safeName(step)+".log")
}

// safeName turns a run id or step name into one path element: kept as it
// is when it is made of letters, digits, '.', '_' and '-' only and does
// not start with a dot; else the other bytes become '_' and a hash of the
// original is appended, so two names never share a file.
func safeName(name string) string {
	ok := name != "" && name[0] != '.'
	for i := 0; ok && i < len(name); i++ {
		ok = isSafeByte(name[i])
	}
	if ok {
		return name
	}
	b := []byte(name)
	for i := range b {
		if !isSafeByte(b[i]) {
			b[i] = '_'
		}
	}
	sum := sha256.Sum256([]byte(name))
	return "_" + string(b) + "-" + hex.EncodeToString(sum[:4])
}

func isSafeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// timeoutError is the cause of a context ended by a step's or the run's
// timeout.
type timeoutError struct {
	run bool
	sec int64
}

func (t *timeoutError) Error() string {
	if t.run {
		return fmt.Sprintf("run timed out after %ds", t.sec)
	}
	return fmt.Sprintf("timed out after %ds", t.sec)
}

// Execute runs one attempt of run and returns its end: status, error
// message and output variables. A report the host refuses means the
// attempt must stop (its lease is lost): RUN_STATUS_UNSPECIFIED then.
func (e *Engine) Execute(ctx context.Context, run *daguhav1.Run, host RunHost) (daguhav1.RunStatus, string, map[string]string) {
	x := &execution{e: e, run: run, host: host, parent: ctx, steps: run.GetDag().GetSteps()}
	if x.now = e.Now; x.now == nil {
		x.now = time.Now
	}
	if x.logger = e.Logger; x.logger == nil {
		x.logger = slog.Default()
	}
	x.logger = x.logger.With("run", run.GetId(), "attempt", run.GetAttempt())
	if err := x.buildGraph(); err != nil {
		return daguhav1.RunStatus_RUN_STATUS_FAILED, "invalid DAG: " + err.Error(), nil
	}
	defer x.removeStreams()
	if closeLog := x.openRunLog(); closeLog != nil {
		defer closeLog()
	}
	defer x.closeContainer()
	var stop context.CancelCauseFunc
	x.ctx, stop = context.WithCancelCause(ctx)
	defer stop(nil)
	x.stop = stop
	if sec := run.GetDag().GetTimeoutSec(); sec > 0 {
		var cancel context.CancelFunc
		x.ctx, cancel = context.WithTimeoutCause(x.ctx, time.Duration(sec)*time.Second, &timeoutError{run: true, sec: sec})
		defer cancel()
	}
	if err := x.buildScope(); err != nil {
		// Backquoted commands in the DAG's env and params ran under the
		// attempt's context: its end is the run's, not the values'.
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errCancelled):
			return daguhav1.RunStatus_RUN_STATUS_CANCELLED, "cancelled", nil
		case cause != nil:
			return daguhav1.RunStatus_RUN_STATUS_UNSPECIFIED, cause.Error(), nil
		}
		return x.mailed(daguhav1.RunStatus_RUN_STATUS_FAILED, err.Error(), nil)
	}
	switch blocked := x.start(); blocked {
	case nil:
		x.schedule()
	default:
		x.skipAll(blocked.reason)
		x.ended = blocked
	}
	status, message := x.result()
	status, message = x.runHandlers(status, message)
	return x.mailed(status, message, x.outputMap())
}

// execution is the state of one Execute call.
type execution struct {
	e      *Engine
	run    *daguhav1.Run
	host   RunHost
	now    func() time.Time
	logger *slog.Logger
	// parent is Execute's ctx; ctx is the attempt's (stop, run timeout).
	parent context.Context
	ctx    context.Context
	stop   context.CancelCauseFunc

	// steps are the DAG's steps, then its handlers (from index handlers).
	steps     []*daguhav1.StepSpec
	handlers  int
	executors []executor // per step, by its kind
	deps      [][]int
	children  [][]int
	ancestors [][]int        // in DAG order
	byID      map[string]int // steps by their id

	base       []envVar // builtins, DAG env, named params
	positional []string

	mu        sync.Mutex
	status    []daguhav1.StepStatus // final; UNSPECIFIED until ended
	errs      []string
	outputs   []*envVar // output variable per step, once captured
	started   []bool    // a try of the step has started
	exitCodes []int32   // of the step's last try that ended
	reportErr error
	// streamsDir holds the stdout and stderr of steps with an id when the
	// engine keeps no logs; removed when the attempt ends.
	streamsDir string
	// runLog is the attempt's run log (DAG_RUN_LOG_FILE), runLogger
	// writes to it alone; none when the engine keeps no logs.
	runLog    string
	runLogger *slog.Logger
	// Per step, once it ended: whether its dependants run although it did
	// not succeed (continueOn), and whether it was skipped or stopped
	// because a step before it failed (Dagu's "cancelled": continueOn.skipped
	// does not apply to it).
	continues []bool
	upstream  []bool
	// Per step: its stdout as kept for continueOn.output, and the values
	// of its output map.
	stdouts   []string
	published []map[string]any
	// skippedByCondition: the step was skipped by its preconditions, or
	// by a dependency so skipped (continue_on_skipped lets dependants of
	// such a step run).
	skippedByCondition []bool
	// kept are the states a retry kept (Run.kept_steps), per step: such a
	// step does not run again (keep).
	kept []*daguhav1.StepState
	// stops end the contexts handlers run in when the attempt is given up.
	stops []context.CancelCauseFunc

	// ended, when the run's preconditions or its init handler stopped it
	// before its steps, is why.
	ended *runBlocked
	// runStatus is DAG_RUN_STATUS for the handlers.
	runStatus string
	// mail keeps the steps' ends for the attempt's mails (mail.go).
	mail mailRecord
	// container is the DAG's container, which its command steps run in
	// (exec_container.go).
	container dagContainer
}

type envVar struct{ name, value string }

func (x *execution) buildGraph() error {
	x.handlers = len(x.steps)
	x.steps = append(slices.Clip(x.steps), dagfile.HandlerSteps(x.run.GetDag())...)
	n := len(x.steps)
	index := make(map[string]int, n)
	for i, s := range x.steps {
		if s.GetName() == "" {
			return fmt.Errorf("step %d has no name", i+1)
		}
		if _, dup := index[s.GetName()]; dup {
			return fmt.Errorf("two steps are named %q", s.GetName())
		}
		index[s.GetName()] = i
	}
	x.executors = make([]executor, n)
	for i, s := range x.steps {
		kind := x.e.kindOf(s)
		if kind == kindCommand && x.run.GetDag().GetContainerJson() != "" {
			kind = kindContainer
		}
		run, err := executorFor(kind)
		if err != nil {
			return fmt.Errorf("step %q: %w", s.GetName(), err)
		}
		x.executors[i] = run
	}
	x.deps, x.children = make([][]int, n), make([][]int, n)
	for i, s := range x.steps {
		seen := map[int]bool{}
		for _, d := range s.GetDepends() {
			j, ok := index[d]
			if !ok {
				return fmt.Errorf("step %q depends on %q, which is not a step", s.GetName(), d)
			}
			if j == i {
				return fmt.Errorf("step %q depends on itself", s.GetName())
			}
			if !seen[j] {
				seen[j] = true
				x.deps[i] = append(x.deps[i], j)
				x.children[j] = append(x.children[j], i)
			}
		}
	}
	// Ancestors by depth-first search; a grey node met again is a cycle.
	const white, grey, black = 0, 1, 2
	colour := make([]int, n)
	sets := make([]map[int]bool, n)
	var visit func(i int) error
	visit = func(i int) error {
		switch colour[i] {
		case grey:
			return fmt.Errorf("steps depend on each other in a cycle through %q", x.steps[i].GetName())
		case black:
			return nil
		}
		colour[i] = grey
		sets[i] = map[int]bool{}
		for _, j := range x.deps[i] {
			if err := visit(j); err != nil {
				return err
			}
			sets[i][j] = true
			for k := range sets[j] {
				sets[i][k] = true
			}
		}
		colour[i] = black
		return nil
	}
	x.ancestors = make([][]int, n)
	for i := range x.steps {
		if err := visit(i); err != nil {
			return err
		}
	}
	for i := range x.steps {
		for j := range x.steps {
			if sets[i][j] {
				x.ancestors[i] = append(x.ancestors[i], j)
			}
		}
	}
	// A handler sees the outputs of every step, as in Dagu.
	for h := x.handlers; h < n; h++ {
		for j := 0; j < x.handlers; j++ {
			x.ancestors[h] = append(x.ancestors[h], j)
		}
	}
	x.status = make([]daguhav1.StepStatus, n)
	x.errs = make([]string, n)
	x.outputs = make([]*envVar, n)
	x.started = make([]bool, n)
	x.exitCodes = make([]int32, n)
	x.byID = map[string]int{}
	for i, s := range x.steps {
		if id := s.GetId(); id != "" {
			if _, dup := x.byID[id]; !dup {
				x.byID[id] = i
			}
		}
	}
	x.continues, x.upstream = make([]bool, n), make([]bool, n)
	x.stdouts, x.published = make([]string, n), make([]map[string]any, n)
	x.skippedByCondition = make([]bool, n)
	x.kept = make([]*daguhav1.StepState, n)
	for _, st := range x.run.GetKeptSteps() {
		if i, ok := index[st.GetName()]; ok && i < x.handlers {
			x.kept[i] = st
		}
	}
	return nil
}

// buildScope computes the variables every step shares. The DAG's env
// values and default params are the DAG author's: their references are
// expanded and their backquoted commands run (see evalValue), each
// against the variables before it. The params given with the run are
// taken literally.
func (x *execution) buildScope() error {
	dag := x.run.GetDag()
	x.base = []envVar{
		{"DAG_NAME", dagName(x.run)}, {"DAG_RUN_ID", x.run.GetId()},
		{"DAG_RUN_ATTEMPT", strconv.FormatUint(uint64(x.run.GetAttempt()), 10)},
		{"DAG_RUN_FENCING_TOKEN", strconv.FormatUint(x.run.GetFencingToken(), 10)},
	}
	if x.runLog != "" {
		x.base = append(x.base, envVar{"DAG_RUN_LOG_FILE", x.runLog})
	}
	for _, v := range dag.GetEnv() {
		value, err := x.evalValue(x.ctx, v.GetValue(), resolver{x: x, vars: x.base, osEnv: true})
		if err != nil {
			return fmt.Errorf("env %s: %w", v.GetName(), err)
		}
		x.base = append(x.base, envVar{v.GetName(), value})
	}
	dotenv, err := x.readDotenv()
	if err != nil {
		return err
	}
	x.base = append(x.base, dotenv...)
	defaults := make([]*daguhav1.Param, len(dag.GetParams()))
	scope := append([]envVar(nil), x.base...)
	for i, p := range dag.GetParams() {
		value, err := x.evalValue(x.ctx, p.GetValue(), resolver{x: x, vars: scope, osEnv: true})
		if err != nil {
			what := p.GetName()
			if what == "" {
				what = "$" + strconv.Itoa(i+1)
			}
			return fmt.Errorf("params: %s: %w", what, err)
		}
		defaults[i] = &daguhav1.Param{Name: p.GetName(), Value: value}
		if p.GetName() != "" {
			scope = append(scope, envVar{p.GetName(), value})
		}
	}
	params, err := dagfile.MergeParams(defaults, x.run.GetParams())
	if err == nil {
		err = dagfile.CheckParams(dag.GetParamRules(), params)
	}
	if err != nil {
		return fmt.Errorf("params: %w", err)
	}
	for _, p := range params {
		if p.GetName() == "" {
			x.positional = append(x.positional, p.GetValue())
		} else {
			x.base = append(x.base, envVar{p.GetName(), p.GetValue()})
		}
	}
	return nil
}

func dagName(run *daguhav1.Run) string {
	if name := run.GetDag().GetName(); name != "" {
		return name
	}
	return run.GetDagName()
}

// stepVars is the scope of step i: the shared variables, the outputs of
// its ancestors, its name and its env (evaluated as the DAG's is).
func (x *execution) stepVars(ctx context.Context, i int) ([]envVar, error) {
	vars := append([]envVar(nil), x.base...)
	x.mu.Lock()
	for _, j := range x.ancestors[i] {
		if o := x.outputs[j]; o != nil {
			vars = append(vars, *o)
		}
	}
	x.mu.Unlock()
	vars = append(vars, envVar{"DAG_RUN_STEP_NAME", x.steps[i].GetName()})
	if stdout, stderr := x.stepFiles(i); stdout != "" {
		vars = append(vars, envVar{"DAG_RUN_STEP_STDOUT_FILE", stdout}, envVar{"DAG_RUN_STEP_STDERR_FILE", stderr})
	}
	if i >= x.handlers {
		vars = append(vars, envVar{"DAG_RUN_STATUS", x.runStatus})
	}
	for _, v := range x.steps[i].GetEnv() {
		value, err := x.evalValue(ctx, v.GetValue(), resolver{x: x, vars: vars, osEnv: true})
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", v.GetName(), err)
		}
		vars = append(vars, envVar{v.GetName(), value})
	}
	return vars, nil
}

// schedule starts steps as their dependencies end until none is left.
func (x *execution) schedule() {
	n := x.handlers
	waiting := make([]int, n)
	var ready []int
	for i := range n {
		waiting[i] = len(x.deps[i])
	}
	ended := make(chan int)
	running := 0
	// release marks the dependants of a step that ended; the ones whose
	// dependencies all ended run or are skipped (skipping releases theirs),
	// or end as a retry kept them (keeping releases theirs).
	var release func(i int)
	release = func(i int) {
		for _, c := range x.children[i] {
			if waiting[c]--; waiting[c] > 0 {
				continue
			}
			if x.kept[c] != nil {
				x.keep(c)
				release(c)
				continue
			}
			if reason, byCondition := x.blockedBy(c); reason != "" {
				x.skipFor(c, reason, byCondition, nil)
				release(c)
			} else {
				ready = append(ready, c)
			}
		}
	}
	var roots []int
	for i := range n {
		if waiting[i] == 0 {
			roots = append(roots, i)
		}
	}
	for _, i := range roots {
		if x.kept[i] != nil {
			x.keep(i)
			release(i)
		} else {
			ready = append(ready, i)
		}
	}
	// delaySec: after starting a step, wait before starting another, as
	// Dagu's runner does.
	delay := time.Duration(x.run.GetDag().GetDelaySec()) * time.Second
	// The DAG's maxActiveSteps bounds its steps below the worker's bound.
	limit := x.e.MaxParallel
	if n := int(x.run.GetDag().GetMaxActiveSteps()); n > 0 && (limit <= 0 || n < limit) {
		limit = n
	}
	var delayed <-chan time.Time
	for {
		for delayed == nil && len(ready) > 0 && x.ctx.Err() == nil && (limit <= 0 || running < limit) {
			i := ready[0]
			ready = ready[1:]
			running++
			go func() {
				x.runStep(i)
				ended <- i
			}()
			if delay > 0 {
				delayed = time.After(delay)
			}
		}
		var stopped <-chan struct{}
		if running == 0 {
			if delayed == nil || len(ready) == 0 || x.ctx.Err() != nil {
				break
			}
			// Only the delay holds the next step back.
			stopped = x.ctx.Done()
		}
		select {
		case i := <-ended:
			running--
			release(i)
		case <-delayed:
			delayed = nil
		case <-stopped:
		}
	}
	// The attempt stopped early: what never started was skipped.
	reason := "the run ended first"
	if cause := context.Cause(x.ctx); cause != nil {
		reason = cause.Error()
	}
	x.skipAll(reason)
}

// keep ends step i as the retry that queued this attempt kept it: it does
// not run again, its output variable has the value the run recorded, and
// its dependants see it as it ended. Nothing is reported: its state is in
// the run's record already. (A kept step's stdout and stderr files, which
// ${id.stdout} names, were the earlier attempt's: they are not here.)
func (x *execution) keep(i int) {
	st := x.kept[i]
	spec := x.steps[i]
	if name := spec.GetOutput(); name != "" {
		if value, ok := x.run.GetOutputs()[name]; ok {
			x.setOutput(i, value)
		}
	}
	failed := st.GetStatus() == daguhav1.StepStatus_STEP_STATUS_FAILED
	x.mu.Lock()
	x.status[i], x.errs[i], x.exitCodes[i] = st.GetStatus(), st.GetError(), st.GetExitCode()
	// A failure that went on before goes on again; the output that let it
	// is not kept, so continueOn.output does not count here.
	x.continues[i] = failed && (spec.GetContinueOnFailure() || containsCode(spec.GetContinueOn().GetExitCodes(), st.GetExitCode()))
	x.skippedByCondition[i] = st.GetStatus() == daguhav1.StepStatus_STEP_STATUS_SKIPPED && len(st.GetPreconditions()) > 0
	x.mu.Unlock()
	x.recordEnd(i, st)
	x.logger.Info("step kept from the attempt before the retry", "step", spec.GetName(), "status", st.GetStatus().String())
}

// skipAll skips the steps (not the handlers) that have not ended.
func (x *execution) skipAll(reason string) {
	for i := range x.handlers {
		if x.final(i) == daguhav1.StepStatus_STEP_STATUS_UNSPECIFIED {
			x.skip(i, reason)
		}
	}
}

// blockedBy says why step i may not run, or "" when it may: a dependency
// failed, was cancelled or skipped, and does not let its dependants run
// anyway (continueOn). byCondition when it is because a dependency was
// skipped by its preconditions (or by a dependency so skipped). A step
// blocked by a failure, or by a step skipped for one, is marked so:
// continueOn.skipped does not let its own dependants run (in Dagu such a
// step is cancelled, not skipped).
func (x *execution) blockedBy(i int) (reason string, byCondition bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, d := range x.deps[i] {
		name := x.steps[d].GetName()
		switch x.status[d] {
		case daguhav1.StepStatus_STEP_STATUS_SUCCEEDED:
		case daguhav1.StepStatus_STEP_STATUS_FAILED:
			if !x.continues[d] {
				x.upstream[i] = true
				return fmt.Sprintf("dependency %q failed", name), false
			}
		case daguhav1.StepStatus_STEP_STATUS_SKIPPED:
			if x.upstream[d] || !x.skippedByCondition[d] {
				x.upstream[i] = true
				return fmt.Sprintf("dependency %q did not succeed", name), false
			}
			if !x.steps[d].GetContinueOn().GetSkipped() {
				return fmt.Sprintf("dependency %q was skipped", name), true
			}
		default:
			x.upstream[i] = true
			return fmt.Sprintf("dependency %q did not succeed", name), false
		}
	}
	return "", false
}

func (x *execution) final(i int) daguhav1.StepStatus {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.status[i]
}

func (x *execution) setFinal(i int, st *daguhav1.StepState) {
	x.mu.Lock()
	x.status[i], x.errs[i] = st.GetStatus(), st.GetError()
	x.mu.Unlock()
	x.stepEnded(i, st)
}

func (x *execution) skip(i int, reason string) {
	x.skipFor(i, reason, false, nil)
}

// skipFor skips step i: byCondition when its preconditions (or those of
// a dependency) were not met, with how they evaluated.
func (x *execution) skipFor(i int, reason string, byCondition bool, results []*daguhav1.ConditionResult) {
	now := x.now().UnixNano()
	st := &daguhav1.StepState{Name: x.steps[i].GetName(), Status: daguhav1.StepStatus_STEP_STATUS_SKIPPED,
		StartedAtUnixNano: now, FinishedAtUnixNano: now, Error: reason, Preconditions: results, Handler: x.handlerKind(i)}
	x.mu.Lock()
	x.skippedByCondition[i] = byCondition
	x.mu.Unlock()
	x.setFinal(i, st)
	x.reportEnd(st)
}

// cancelled tells whether the run is being cancelled (as opposed to
// abandoned).
func (x *execution) cancelled() bool {
	return errors.Is(context.Cause(x.parent), errCancelled)
}

func sanitize(st *daguhav1.StepState) {
	clipStepTexts(st)
}

// failure is the refusal that gave the attempt up, if one did.
func (x *execution) failure() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.reportErr
}

// refused gives the attempt up after the cluster refused a report of st.
func (x *execution) refused(st *daguhav1.StepState, err error) error {
	x.mu.Lock()
	if x.reportErr == nil {
		x.reportErr = fmt.Errorf("reporting step %q: %w", st.GetName(), err)
	}
	err = x.reportErr
	stops := x.stops
	x.mu.Unlock()
	x.stop(err)
	for _, stop := range stops {
		stop(err)
	}
	return err
}

// report sends a step's state unless the attempt is being given up. A
// refused report gives the attempt up. Once the run is being cancelled
// the reports go out regardless of the cancelled context and their
// failures no longer matter.
func (x *execution) report(st *daguhav1.StepState) error {
	sanitize(st)
	if failed := x.failure(); failed != nil {
		return failed
	}
	if x.cancelled() {
		if err := x.host.ReportStep(context.WithoutCancel(x.parent), st); err != nil {
			x.logger.Warn("step report failed while cancelling", "step", st.GetName(), "error", err)
		}
		return nil
	}
	if err := x.parent.Err(); err != nil {
		return context.Cause(x.parent)
	}
	err := x.host.ReportStep(x.parent, st)
	if err != nil && x.cancelled() {
		// Cancelled during the call: the report still goes out.
		if err := x.host.ReportStep(context.WithoutCancel(x.parent), st); err != nil {
			x.logger.Warn("step report failed while cancelling", "step", st.GetName(), "error", err)
		}
		return nil
	}
	if err != nil {
		return x.refused(st, err)
	}
	return nil
}

// reportStart reports a try's start: as report does, waiting for it to
// be taken, unless the host holds states and vouches for its lease
// (StepHolder.LeaseFresh); then it is held as an end is and the step runs
// at once.
func (x *execution) reportStart(st *daguhav1.StepState) error {
	holder, ok := x.host.(StepHolder)
	if !ok || x.cancelled() || !holder.LeaseFresh() {
		return x.report(st)
	}
	return x.hold(holder, st)
}

// reportEnd reports a step's end (a try's, or a skip): as report does, or,
// with a host that holds ends, handed to it to go with a later call. A
// held end refused later gives the attempt up then.
func (x *execution) reportEnd(st *daguhav1.StepState) error {
	x.logEnd(st)
	holder, ok := x.host.(StepHolder)
	if !ok {
		return x.report(st)
	}
	return x.hold(holder, st)
}

// hold hands a step state to the host to go with a later call.
func (x *execution) hold(holder StepHolder, st *daguhav1.StepState) error {
	sanitize(st)
	if failed := x.failure(); failed != nil {
		return failed
	}
	warn := func(err error) {
		x.logger.Warn("step report failed while cancelling", "step", st.GetName(), "error", err)
	}
	if x.cancelled() {
		holder.HoldStep(st, warn)
		return nil
	}
	if err := x.parent.Err(); err != nil {
		return context.Cause(x.parent)
	}
	holder.HoldStep(st, func(err error) {
		if x.cancelled() {
			warn(err)
			return
		}
		x.refused(st, err)
	})
	return x.failure()
}

// runStep runs step i: its preconditions, then its executions (more than
// one with a repeat policy), each with its retries, and reports its end.
func (x *execution) runStep(i int) {
	spec := x.steps[i]
	var met []*daguhav1.ConditionResult
	if len(spec.GetPreconditions()) > 0 {
		var ok bool
		if met, ok = x.checkPreconditions(x.ctx, i); !ok {
			return
		}
	}
	policy := spec.GetRetryPolicy()
	limit := policy.GetLimit()
	repeat := spec.GetRepeatPolicy()
	// seq counts every try of the step in this attempt (repeats
	// included): it names the try's log section and child run. Retries
	// are counted across repeats, as Dagu counts them.
	seq, retries := uint32(0), uint32(0)
	for execution := uint32(1); ; execution++ {
		for try := uint32(1); ; try++ {
			seq++
			n := &tryNumber{seq: seq, retry: try}
			if repeat != nil {
				n.repeat = execution
			}
			st, ok := x.try(x.ctx, i, n, met)
			if !ok {
				// The running report was refused: the attempt is over.
				x.setFinal(i, &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_CANCELLED, Error: "not started"})
				return
			}
			if st.GetStatus() != daguhav1.StepStatus_STEP_STATUS_FAILED || retries >= limit || x.ctx.Err() != nil || !retriesOn(policy, st) {
				if repeat == nil || x.ctx.Err() != nil || st.GetStatus() == daguhav1.StepStatus_STEP_STATUS_CANCELLED || !x.repeats(i, repeat, execution, st) {
					x.continueOn(i, st)
					x.setFinal(i, st)
					x.reportEnd(st)
					return
				}
				// Repeated: this execution's end is reported, then the
				// next one starts after the interval.
				x.logger.Info("step repeats", "step", spec.GetName(), "execution", execution, "status", st.GetStatus().String())
				if x.reportEnd(st) != nil {
					x.setFinal(i, st)
					return
				}
				if !sleepCtx(x.ctx, daguhav1.BackoffWait(repeat.GetIntervalSec(), repeat.GetBackoff(), repeat.GetMaxIntervalSec(), int(execution))) {
					// Stopped between executions: the last one stands, as
					// in Dagu, where a repeating step ends by itself.
					x.setFinal(i, st)
					return
				}
				break
			}
			retries++
			x.logger.Info("step failed; retrying", "step", spec.GetName(), "retry", try, "error", st.GetError())
			if x.reportEnd(st) != nil {
				x.setFinal(i, st)
				return
			}
			if !sleepCtx(x.ctx, daguhav1.BackoffWait(policy.GetIntervalSec(), policy.GetBackoff(), policy.GetMaxIntervalSec(), int(retries)-1)) {
				// Stopped between tries: the failed try stands, or the step
				// is cancelled with the run.
				if x.cancelled() {
					st = &daguhav1.StepState{Name: st.GetName(), Status: daguhav1.StepStatus_STEP_STATUS_CANCELLED, Retry: try,
						StartedAtUnixNano: st.GetStartedAtUnixNano(), FinishedAtUnixNano: x.now().UnixNano(),
						ExitCode: st.GetExitCode(), OutputTail: st.GetOutputTail(), ChildRunId: st.GetChildRunId(), Error: "cancelled",
						Repeat: st.GetRepeat(), Preconditions: st.GetPreconditions()}
					x.reportEnd(st)
				}
				x.setFinal(i, st)
				return
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// tryNumber places a try among the step's: seq counts all of them in
// the attempt, retry within the execution, repeat the execution (0
// without a repeat policy).
type tryNumber struct {
	seq, retry, repeat uint32
}

// try runs one try of step i in ctx: it reports it running and returns
// how it ended (not yet reported). ok is false when the running report
// was refused and nothing ran. met are the step's preconditions, kept in
// each of its states.
func (x *execution) try(ctx context.Context, i int, n *tryNumber, met []*daguhav1.ConditionResult) (*daguhav1.StepState, bool) {
	spec := x.steps[i]
	started := x.now().UnixNano()
	running := x.state(i, n, met)
	running.Status, running.StartedAtUnixNano = daguhav1.StepStatus_STEP_STATUS_RUNNING, started
	if x.reportStart(running) != nil {
		return nil, false
	}
	x.mu.Lock()
	x.started[i] = true
	x.mu.Unlock()
	if sec := spec.GetTimeoutSec(); sec > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, time.Duration(sec)*time.Second, &timeoutError{sec: sec})
		defer cancel()
	}
	var st *daguhav1.StepState
	if vars, err := x.stepVars(ctx, i); err != nil {
		st = &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_FAILED, ExitCode: -1, Error: err.Error()}
		if ctx.Err() != nil {
			st = stoppedState(ctx)
		}
	} else {
		st = x.executors[i].execute(ctx, &stepTry{x: x, i: i, retry: n.seq, number: n, met: met, started: started, vars: vars})
	}
	st.Name, st.Retry, st.StartedAtUnixNano, st.FinishedAtUnixNano = spec.GetName(), n.retry, started, x.now().UnixNano()
	st.Repeat, st.Preconditions, st.Handler = n.repeat, met, x.handlerKind(i)
	x.mu.Lock()
	x.exitCodes[i] = st.GetExitCode()
	x.mu.Unlock()
	return st, true
}

// state is a new state of step i for a try numbered n.
func (x *execution) state(i int, n *tryNumber, met []*daguhav1.ConditionResult) *daguhav1.StepState {
	return &daguhav1.StepState{Name: x.steps[i].GetName(), Retry: n.retry, Repeat: n.repeat, Preconditions: met, Handler: x.handlerKind(i)}
}

// stopped turns the end of ctx into the step's state: FAILED for a
// timeout, CANCELLED otherwise.
func stoppedState(ctx context.Context) *daguhav1.StepState {
	cause := context.Cause(ctx)
	var timeout *timeoutError
	if errors.As(cause, &timeout) {
		return &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_FAILED, Error: timeout.Error()}
	}
	if errors.Is(cause, errCancelled) {
		return &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_CANCELLED, Error: "cancelled"}
	}
	return &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_CANCELLED, Error: cause.Error()}
}

func (x *execution) setOutput(i int, value string) {
	name := x.steps[i].GetOutput()
	if name == "" {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.outputs[i] = &envVar{name, value}
}

// result is the run's end once every step has (before its handlers).
func (x *execution) result() (daguhav1.RunStatus, string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch {
	case errors.Is(context.Cause(x.parent), errCancelled):
		return daguhav1.RunStatus_RUN_STATUS_CANCELLED, "cancelled"
	case x.reportErr != nil:
		return daguhav1.RunStatus_RUN_STATUS_UNSPECIFIED, x.reportErr.Error()
	case x.parent.Err() != nil:
		return daguhav1.RunStatus_RUN_STATUS_UNSPECIFIED, context.Cause(x.parent).Error()
	case x.ended != nil:
		return x.ended.status, x.ended.message
	}
	steps := x.status[:x.handlers]
	// The run's timeout counts when it stopped something (it may fire as
	// the last step ends).
	var timeout *timeoutError
	if cause := context.Cause(x.ctx); errors.As(cause, &timeout) && timeout.run {
		for i, s := range steps {
			if s != daguhav1.StepStatus_STEP_STATUS_SUCCEEDED && !x.skippedByCondition[i] {
				return daguhav1.RunStatus_RUN_STATUS_FAILED, timeout.Error()
			}
		}
	}
	for i, s := range steps {
		if s == daguhav1.StepStatus_STEP_STATUS_FAILED && !x.continues[i] {
			return daguhav1.RunStatus_RUN_STATUS_FAILED, fmt.Sprintf("step %s failed: %s", x.steps[i].GetName(), x.errs[i])
		}
	}
	return daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, ""
}

// outputMap is the run's output variables: those of its steps and
// handlers that set one.
func (x *execution) outputMap() map[string]string {
	x.mu.Lock()
	defer x.mu.Unlock()
	outputs := map[string]string{}
	for _, o := range x.outputs {
		if o != nil {
			outputs[o.name] = strings.ToValidUTF8(o.value, "\uFFFD")
		}
	}
	return outputs
}
