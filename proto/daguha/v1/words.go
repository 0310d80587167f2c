package daguhav1

import "strings"

// Word is a run status as the API, the CLI and metric labels write it:
// "queued", "running", "succeeded", ... (the enum name without its
// prefix, in lower case). It is here, beside the enum, so every layer
// that names a status names it the same way.
func (s RunStatus) Word() string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "RUN_STATUS_"))
}

// Word is a step status as the API, the CLI and metric labels write it.
func (s StepStatus) Word() string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STEP_STATUS_"))
}
