package worker

import (
	"fmt"
	"strings"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// executorResult ends a try of an executor that runs in the worker (http,
// jq): what it printed goes to the step's log, the report's tail,
// ${id.stdout}, continueOn.output, the output variable and the output map,
// as a command's stdout would; failure (when not empty) is the step's
// error.
func executorResult(t *stepTry, out []byte, failure string) *daguhav1.StepState {
	x, i, spec := t.x, t.i, t.spec()
	st := &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_SUCCEEDED}
	if failure != "" {
		st.Status, st.ExitCode, st.Error = daguhav1.StepStatus_STEP_STATUS_FAILED, 1, failure
	}
	if f, err := x.openLog(spec.GetName(), t.retry); err != nil {
		x.logger.Warn("step log not kept", "step", spec.GetName(), "error", err)
	} else if f != nil {
		_, _ = f.Write(out)
		_ = f.Close()
	}
	tail := &tailBuffer{max: outputTailBytes}
	_, _ = tail.Write(out)
	st.OutputTail = tail.String()
	// ${id.stdout} and ${id.stderr} (streams.go): what it printed, and
	// nothing.
	if idOut, idErr, err := x.openStreams(i); err != nil {
		x.logger.Warn("step streams not kept", "step", spec.GetName(), "error", err)
	} else if idOut != nil {
		_, _ = idOut.Write(out)
		_ = idOut.Close()
		_ = idErr.Close()
	}
	keep := x.outputLimit()
	stdout := &capBuffer{max: keep}
	_, _ = stdout.Write(out)
	return publishExecutorOutput(t, st, stdout, &capBuffer{max: keep})
}

// publishExecutorOutput passes on what an executor's try printed, kept
// in buffers of the run's output limit: ${id.stdout}, the output map and
// the output variable, as a command's stdout and stderr would be. A
// stdout past the limit fails a step with an output variable.
func publishExecutorOutput(t *stepTry, st *daguhav1.StepState, stdout, stderr *capBuffer) *daguhav1.StepState {
	x, i, spec := t.x, t.i, t.spec()
	x.setStdout(i, string(stdout.buf))
	if st.Status == daguhav1.StepStatus_STEP_STATUS_SUCCEEDED && len(spec.GetOutputEntries()) > 0 {
		sources := map[string]*capBuffer{"stdout": stdout, "stderr": stderr}
		if err := x.publishOutputs(i, resolver{x: x, vars: t.vars, osEnv: true, positional: true}, "", sources); err != nil {
			st.Status, st.Error = daguhav1.StepStatus_STEP_STATUS_FAILED, err.Error()
		}
	}
	if spec.GetOutput() != "" {
		if stdout.overflow {
			if st.Status == daguhav1.StepStatus_STEP_STATUS_SUCCEEDED {
				st.Status, st.Error = daguhav1.StepStatus_STEP_STATUS_FAILED, fmt.Sprintf("output %s: the step printed more than %d bytes", spec.GetOutput(), stdout.max)
			}
			return st
		}
		x.setOutput(i, strings.TrimRight(string(stdout.buf), "\r\n"))
	}
	return st
}
