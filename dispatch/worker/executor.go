package worker

import (
	"context"
	"fmt"
	"slices"
	"strings"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// The kinds of step, each run by the executor registered under it.
const (
	// kindCommand runs a command or a script with sh (exec_command.go).
	kindCommand = "command"
	// kindChild is a run/call step: it starts a child run and takes its
	// result (exec_child.go).
	kindChild = "child"
	// kindNoop stands for kindCommand on a worker with the no-op
	// executor: the step succeeds at once (exec_noop.go).
	kindNoop = "noop"
)

// executor runs one try of a step of one kind. Each kind is a file of
// its own that registers its executor; a new kind of step is a new such
// file, and a case in kindOf.
type executor interface {
	// execute runs the try until it ends or ctx does and returns how it
	// ended: status, and what else the kind knows (exit code, output
	// tail, error, child run id). The engine sets the state's name,
	// retry and times, and reports it.
	execute(ctx context.Context, t *stepTry) *daguhav1.StepState
}

// executors are the registered executors by kind.
var executors = map[string]executor{}

// registerExecutor makes e run the steps of kind. Executors register as
// the package starts: a kind registered twice is a mistake in this
// package, and panics.
func registerExecutor(kind string, e executor) {
	if _, dup := executors[kind]; dup {
		panic(fmt.Sprintf("worker: two executors for steps of kind %q", kind))
	}
	executors[kind] = e
}

// prober is an executor that can say whether this worker can run its
// steps now (docker's answers only where the worker's Docker socket
// does). An executor without one can always run.
type prober interface {
	probe(ctx context.Context) error
}

// internalKinds are the kinds a DAG never names: every worker runs them,
// so a worker advertises only the others (Dagu's executor names).
var internalKinds = map[string]bool{kindCommand: true, kindChild: true, kindNoop: true, kindParallel: true, kindContainer: true}

// Executors are the Dagu executors this worker can run now, sorted: the
// registered ones whose probe, if any, passes. The worker advertises
// them, and the leader gives it only runs whose steps need no other
// (dispatch.NeededExecutors). Probes run at once, each bounded by ctx.
func Executors(ctx context.Context) []string {
	var kinds []string
	for kind, e := range executors {
		if internalKinds[kind] {
			continue
		}
		if p, ok := e.(prober); ok && p.probe(ctx) != nil {
			continue
		}
		kinds = append(kinds, kind)
	}
	slices.Sort(kinds)
	return kinds
}

// executorFor is the executor of kind, or an error naming the kind and
// the ones this worker runs.
func executorFor(kind string) (executor, error) {
	if e, ok := executors[kind]; ok {
		return e, nil
	}
	kinds := make([]string, 0, len(executors))
	for k := range executors {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return nil, fmt.Errorf("no executor runs steps of kind %q (this worker runs %s)", kind, strings.Join(kinds, ", "))
}

// kindOf is the kind of a step: a run/call step starts a child run (one
// per item with parallel); every other step runs its command or script,
// or nothing on an engine with the no-op executor.
func (e *Engine) kindOf(spec *daguhav1.StepSpec) string {
	switch {
	case spec.GetChildDag() != "" && spec.GetParallel() != nil:
		return kindParallel
	case spec.GetChildDag() != "":
		return kindChild
	case e.Noop:
		return kindNoop
	case spec.GetExecutor() != "":
		// Dagu's executors (exec_http.go, exec_jq.go): the kind is its name.
		return spec.GetExecutor()
	default:
		return kindCommand
	}
}

// stepTry is one try of one step, as its executor sees it.
type stepTry struct {
	x *execution
	// i is the step's index in the run's DAG.
	i int
	// retry counts the tries of the step in the attempt, repeats
	// included: it names the try's log section and child run.
	retry uint32
	// number places the try among the step's (see tryNumber), and met
	// are the step's preconditions, for the states reported.
	number *tryNumber
	met    []*daguhav1.ConditionResult
	// started is when the try began (unix nanoseconds).
	started int64
	// vars is the step's scope (see stepVars).
	vars []envVar
}

func (t *stepTry) spec() *daguhav1.StepSpec { return t.x.steps[t.i] }

// scope resolves variables in the try's values as every kind of step
// does: the step's scope, then the worker's environment, and the run's
// positional params.
func (t *stepTry) scope() resolver {
	return resolver{x: t.x, vars: t.vars, osEnv: true, positional: true}
}
