package worker

import (
	"strings"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Helpers for the metrics the worker records.

// runStatusLabel is a run status as a metric label: succeeded, failed,
// cancelled.
func runStatusLabel(status daguhav1.RunStatus) string {
	return strings.ToLower(strings.TrimPrefix(status.String(), "RUN_STATUS_"))
}

// stepStatusLabel is a step status as a metric label.
func stepStatusLabel(status daguhav1.StepStatus) string {
	return strings.ToLower(strings.TrimPrefix(status.String(), "STEP_STATUS_"))
}
