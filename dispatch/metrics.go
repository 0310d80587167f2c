package dispatch

import (
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Observer receives what the leader's side of dispatch counts: runs
// enqueued, granted, finished, pruned and reclaimed, refused reports and
// heartbeat latency. ops/metrics implements it; dispatch never imports
// the metrics package, so the arrow runs downward only.
type Observer interface {
	RunEnqueued()
	LeaseGranted(waited time.Duration, first bool)
	RunFinished(status string)
	RunsCancelledAtOnce(n uint32)
	RunsPruned(n uint64)
	LeasesReclaimed(reason string, n int)
	ReportRefused(kind string, n int)
	ObserveHeartbeat(d time.Duration)
}

// Reasons a lease is reclaimed (label values of
// daguha_dispatch_leases_reclaimed_total).
const (
	ReclaimLeaseExpired  = "lease_expired"
	ReclaimWorkerOffline = "worker_offline"
)

// Kinds of refused report (label values of
// daguha_dispatch_reports_refused_total).
const (
	RefusedStep      = "step"
	RefusedFinish    = "finish"
	RefusedHeartbeat = "heartbeat"
)

// noObserver records nothing: the Observer of a dispatcher given none.
type noObserver struct{}

func (noObserver) RunEnqueued()                     {}
func (noObserver) LeaseGranted(time.Duration, bool) {}
func (noObserver) RunFinished(string)               {}
func (noObserver) RunsCancelledAtOnce(uint32)       {}
func (noObserver) RunsPruned(uint64)                {}
func (noObserver) LeasesReclaimed(string, int)      {}
func (noObserver) ReportRefused(string, int)        {}
func (noObserver) ObserveHeartbeat(time.Duration)   {}

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
