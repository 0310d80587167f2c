package worker

import (
	"context"
	"encoding/json"
	"fmt"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// childExecutor runs a run/call step: it starts the child run (the cluster
// derives its id from the step and the retry, so asking again is safe)
// and takes its result.
type childExecutor struct{}

func init() { registerExecutor(kindChild, childExecutor{}) }

func (childExecutor) execute(ctx context.Context, t *stepTry) *daguhav1.StepState {
	x, i, retry, started, vars := t.x, t.i, t.retry, t.started, t.vars
	spec := x.steps[i]
	// The child's params are the step's, with this run's variables
	// (params, env, outputs) substituted: no shell sees them.
	params := expandVars(spec.GetChildParams(), x.lookup(vars, true, true))
	childID, err := x.host.StartChild(ctx, spec.GetName(), retry, params)
	if err != nil {
		if ctx.Err() != nil {
			return stoppedState(ctx)
		}
		return &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_FAILED, Error: "starting child run: " + err.Error()}
	}
	running := x.state(i, t.number, t.met)
	running.Status, running.StartedAtUnixNano, running.ChildRunId = daguhav1.StepStatus_STEP_STATUS_RUNNING, started, childID
	if x.report(running) != nil {
		st := stoppedState(x.ctx)
		st.ChildRunId = childID
		return st
	}
	child, err := x.host.WaitChild(ctx, childID)
	var st *daguhav1.StepState
	switch {
	case ctx.Err() != nil:
		st = stoppedState(ctx)
	case err != nil:
		st = &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_FAILED, Error: fmt.Sprintf("waiting for child run %s: %v", childID, err)}
	default:
		switch child.GetStatus() {
		case daguhav1.RunStatus_RUN_STATUS_SUCCEEDED:
			st = &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_SUCCEEDED}
		case daguhav1.RunStatus_RUN_STATUS_FAILED:
			st = &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_FAILED, Error: fmt.Sprintf("child run %s failed: %s", childID, child.GetError())}
		case daguhav1.RunStatus_RUN_STATUS_CANCELLED:
			// The parent is not being cancelled (ctx is live): the child
			// alone was, and the step fails.
			st = &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_FAILED, Error: fmt.Sprintf("child run %s was cancelled", childID)}
		default:
			st = &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_FAILED, Error: fmt.Sprintf("child run %s ended as %s", childID, child.GetStatus())}
		}
		if spec.GetOutput() != "" && (st.Status == daguhav1.StepStatus_STEP_STATUS_SUCCEEDED || st.Status == daguhav1.StepStatus_STEP_STATUS_FAILED) {
			outputs := child.GetOutputs()
			if outputs == nil {
				outputs = map[string]string{}
			}
			encoded, _ := json.Marshal(outputs) // a map's keys come out sorted
			x.setOutput(i, string(encoded))
		}
	}
	st.ChildRunId = childID
	return st
}
