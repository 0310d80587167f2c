package dispatch

import (
	"strings"
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Helpers for the metrics the dispatcher records.

// queueWait is how long a run just granted waited in its queue: since its
// enqueue for a first attempt, since the end of its previous attempt (its
// reclaim) for a later one; negative when unknown.
func queueWait(run *daguhav1.Run) time.Duration {
	queuedAt := run.GetEnqueuedAtUnixNano()
	if attempts := run.GetAttempts(); len(attempts) >= 2 {
		queuedAt = attempts[len(attempts)-2].GetEndedAtUnixNano()
	}
	if queuedAt == 0 || run.GetStartedAtUnixNano() == 0 {
		return -1
	}
	return time.Duration(run.GetStartedAtUnixNano() - queuedAt)
}

// runStatusLabel is a run status as a metric label: succeeded, failed,
// cancelled.
func runStatusLabel(status daguhav1.RunStatus) string {
	return strings.ToLower(strings.TrimPrefix(status.String(), "RUN_STATUS_"))
}

// countApplied is how many outcomes say their change was applied.
func countApplied(outcomes []*daguhav1.RunOutcome) int {
	n := 0
	for _, outcome := range outcomes {
		if outcome.GetApplied() {
			n++
		}
	}
	return n
}
