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

// daguStatuses are Dagu's number and word for each run status daguha
// has; Dagu's 0 (not started), 6 (partly succeeded), 7 (waiting) and 8
// (rejected) have no daguha status.
var daguStatuses = map[RunStatus]struct {
	number int
	word   string
}{
	RunStatus_RUN_STATUS_RUNNING:   {1, "running"},
	RunStatus_RUN_STATUS_FAILED:    {2, "failed"},
	RunStatus_RUN_STATUS_CANCELLED: {3, "aborted"},
	RunStatus_RUN_STATUS_SUCCEEDED: {4, "succeeded"},
	RunStatus_RUN_STATUS_QUEUED:    {5, "queued"},
}

// Dagu is a run status as Dagu names and numbers it (its API's status and
// statusLabel, DAG_RUN_STATUS, a child's status in its parent's output):
// a cancelled run is Dagu's "aborted" (3); a status Dagu has no word for
// is its "not_started" (0).
func (s RunStatus) Dagu() (number int, word string) {
	if d, ok := daguStatuses[s]; ok {
		return d.number, d.word
	}
	return 0, "not_started"
}
