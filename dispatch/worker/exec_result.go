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

// publishExecutorOutput is publishStepOutput for an executor that runs in
// the worker: its output map reads files from the worker's directory.
func publishExecutorOutput(t *stepTry, st *daguhav1.StepState, stdout, stderr *capBuffer) *daguhav1.StepState {
	return publishStepOutput(t, st, stdout, stderr, t.scope(), "")
}

// publishStepOutput passes on what a try printed, kept in buffers of the
// run's output limit, as every kind of step does: ${id.stdout}, the
// output variable (a stdout past the limit fails a step that succeeded,
// and nothing more is published) and the output map (its variables
// resolved by outside, its files read from dir). stdout is nil where the
// try kept none.
func publishStepOutput(t *stepTry, st *daguhav1.StepState, stdout, stderr *capBuffer, outside resolver, dir string) *daguhav1.StepState {
	x, i, spec := t.x, t.i, t.spec()
	if stdout != nil {
		x.setStdout(i, string(stdout.buf))
		switch {
		case spec.GetOutput() == "":
		case !stdout.overflow:
			x.setOutput(i, strings.TrimRight(string(stdout.buf), "\r\n"))
		case st.Status == daguhav1.StepStatus_STEP_STATUS_SUCCEEDED:
			st.Status = daguhav1.StepStatus_STEP_STATUS_FAILED
			st.Error = fmt.Sprintf("output %s: the step printed more than %d bytes", spec.GetOutput(), stdout.max)
			return st
		}
	}
	if st.Status == daguhav1.StepStatus_STEP_STATUS_SUCCEEDED && len(spec.GetOutputEntries()) > 0 {
		sources := map[string]*capBuffer{"stdout": stdout, "stderr": stderr}
		if err := x.publishOutputs(i, outside, dir, sources); err != nil {
			st.Status, st.Error = daguhav1.StepStatus_STEP_STATUS_FAILED, err.Error()
		}
	}
	return st
}
