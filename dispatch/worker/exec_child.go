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
	x, i, retry, started := t.x, t.i, t.retry, t.started
	spec := x.steps[i]
	// The child's params are the step's, with this run's variables
	// (params, env, outputs) substituted and backquoted commands run, as
	// in the DAG's env: no shell sees them.
	params, err := x.evalValue(ctx, spec.GetChildParams(), t.scope())
	if err != nil {
		if ctx.Err() != nil {
			return stoppedState(ctx)
		}
		return &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_FAILED, Error: "params: " + err.Error()}
	}
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
		if st.Status == daguhav1.StepStatus_STEP_STATUS_SUCCEEDED || st.Status == daguhav1.StepStatus_STEP_STATUS_FAILED {
			if err := x.childOutput(i, child); err != nil {
				st.Status, st.Error = daguhav1.StepStatus_STEP_STATUS_FAILED, err.Error()
			}
		}
	}
	st.ChildRunId = childID
	return st
}

// childResult is what Dagu's run step prints when its child ends, and so
// what its output variable holds: ${VAR.outputs.NAME} is the child's
// output NAME.
type childResult struct {
	Name     string            `json:"name,omitempty"`
	DAGRunID string            `json:"dagRunId,omitempty"`
	Params   string            `json:"params,omitempty"`
	Outputs  map[string]string `json:"outputs"`
	Status   string            `json:"status"`
}

// childOutput writes the child's result as Dagu does (indented JSON,
// keys of outputs sorted) to the step's output variable and, for a step
// with an id, to its stdout file.
func (x *execution) childOutput(i int, child *daguhav1.Run) error {
	spec := x.steps[i]
	if spec.GetOutput() == "" && spec.GetId() == "" {
		return nil
	}
	result := childResult{Name: dagName(child), DAGRunID: child.GetId(), Params: child.GetParams(),
		Outputs: child.GetOutputs(), Status: daguWord(child.GetStatus())}
	if result.Outputs == nil {
		result.Outputs = map[string]string{}
	}
	encoded, err := json.MarshalIndent(result, "", "  ")
	if err != nil {
		return fmt.Errorf("writing the child's result: %w", err)
	}
	if len(encoded) > maxOutputValueBytes {
		return fmt.Errorf("output %s: the child's result is more than %d bytes", spec.GetOutput(), maxOutputValueBytes)
	}
	x.setOutput(i, string(encoded))
	stdout, stderr, err := x.openStreams(i)
	if err != nil {
		return fmt.Errorf("opening the files of ${%s.stdout} and .stderr: %w", spec.GetId(), err)
	}
	if stdout != nil {
		defer stdout.Close()
		defer stderr.Close()
		if _, err := stdout.Write(append(encoded, '\n')); err != nil {
			return fmt.Errorf("writing ${%s.stdout}: %w", spec.GetId(), err)
		}
	}
	return nil
}

// daguWord is a run's status as Dagu names it.
func daguWord(status daguhav1.RunStatus) string {
	_, word := status.Dagu()
	return word
}
