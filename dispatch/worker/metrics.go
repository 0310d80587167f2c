package worker

import "time"

// Metrics is what a worker records of its work: the hooks it calls, and
// ops/metrics.WorkerMetrics implements (so this package imports nothing of
// ops). A worker without Metrics records nothing.
type Metrics interface {
	// SetCapacity records the worker's maxActiveRuns.
	SetCapacity(n int)
	// RunStarted counts a run the worker began executing; RunEnded is
	// called when it is over, with its result (RunSucceeded, ...).
	RunStarted()
	RunEnded(result string)
	// StepFinished records a step's run time by its status (succeeded,
	// failed, cancelled, skipped).
	StepFinished(status string, d time.Duration)
	// Heartbeat records one heartbeat: its round trip, or a failure.
	Heartbeat(d time.Duration, err error)
}

// The results RunEnded is given: the three ends a run reports, and
// abandoned for a run this worker stopped without reporting an end (its
// lease was lost, or the worker is stopping).
const (
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
	RunCancelled = "cancelled"
	RunAbandoned = "abandoned"
)

// noMetrics records nothing.
type noMetrics struct{}

func (noMetrics) SetCapacity(int)                    {}
func (noMetrics) RunStarted()                        {}
func (noMetrics) RunEnded(string)                    {}
func (noMetrics) StepFinished(string, time.Duration) {}
func (noMetrics) Heartbeat(time.Duration, error)     {}
