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
	x.setStdout(i, string(out))
	if st.Status == daguhav1.StepStatus_STEP_STATUS_SUCCEEDED && len(spec.GetOutputEntries()) > 0 {
		stdout := &capBuffer{max: keep}
		_, _ = stdout.Write(out)
		sources := map[string]*capBuffer{"stdout": stdout, "stderr": {max: keep}}
		if err := x.publishOutputs(i, resolver{x: x, vars: t.vars, osEnv: true, positional: true}, "", sources); err != nil {
			st.Status, st.Error = daguhav1.StepStatus_STEP_STATUS_FAILED, err.Error()
		}
	}
	if spec.GetOutput() != "" {
		if len(out) > keep {
			if st.Status == daguhav1.StepStatus_STEP_STATUS_SUCCEEDED {
				st.Status, st.Error = daguhav1.StepStatus_STEP_STATUS_FAILED, fmt.Sprintf("output %s: the step printed more than %d bytes", spec.GetOutput(), keep)
			}
			return st
		}
		x.setOutput(i, strings.TrimRight(string(out), "\r\n"))
	}
	return st
}
