package worker

import (
	"strings"

	"github.com/daguha/daguha/dispatch/valid"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// What a worker reports is kept within package valid's bounds before it
// is sent: the cluster checks it again, but a worker that sends what fits
// is never refused for its own output.

// clipStepTexts cuts a step state's texts to what the cluster takes, as
// the worker reports it (invalid UTF-8 replaced first, which may lengthen
// them).
func clipStepTexts(st *daguhav1.StepState) {
	st.OutputTail = valid.ClipTail(strings.ToValidUTF8(st.GetOutputTail(), "\uFFFD"))
	st.Error = valid.ClipError(strings.ToValidUTF8(st.GetError(), "\uFFFD"))
}

// boundRunEnd keeps a run's end within what the cluster takes: its error
// cut to valid.MaxErrorBytes, and outputs beyond valid.Outputs' limits
// left out, which fails a run that succeeded (its parent would miss them).
func boundRunEnd(final daguhav1.RunStatus, message string, outputs map[string]string) (daguhav1.RunStatus, string, map[string]string) {
	if err := valid.Outputs(outputs); err != nil {
		outputs = nil
		if final == daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
			final, message = daguhav1.RunStatus_RUN_STATUS_FAILED, "the run's outputs cannot be recorded: "+err.Error()
		}
	}
	return final, valid.ClipError(message), outputs
}
