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
	// ObserveStage records how long one stage of a run's life took on
	// the leader (StageGrantCommit, StagePollReturn, StageStartReport,
	// StageFinishCommit; the queue wait comes with LeaseGranted).
	ObserveStage(stage string, d time.Duration)
}

// Stages of a run's life, as the leader sees them (label values of
// daguha_run_stage_seconds). Every stage is measured on the leader's own
// clock, from times it took itself, never inside the state machine:
//   - StageQueueWait: the run's enqueue (or the end of its previous
//     attempt) until the leader matched it to a polling worker and wrote
//     the grant (the run's started_at);
//   - StageGrantCommit: that grant written until its Raft entry was
//     committed and applied on the leader (waiting for a place in the
//     grant batcher, the commit, the state machine);
//   - StagePollReturn: the grant committed until the poll that asked for
//     it returned its tasks to the RPC layer (lease tokens signed);
//   - StageStartReport: the poll returned until the leader received the
//     worker's first report of that attempt (the network both ways, the
//     worker starting the run and its first step; a report forwarded by a
//     follower counts when it reaches the leader). A worker under a fresh
//     lease holds its first start (docs/dispatch.md): then it is the call
//     that carried it, often the run's finish;
//   - StageFinishCommit: a worker's finish received by the leader until
//     its Raft entry was committed and applied on the leader.
const (
	StageQueueWait    = "queue_wait"
	StageGrantCommit  = "grant_commit"
	StagePollReturn   = "poll_return"
	StageStartReport  = "start_report"
	StageFinishCommit = "finish_commit"
)

// Stages lists the stages in the order a run goes through them.
var Stages = []string{StageQueueWait, StageGrantCommit, StagePollReturn, StageStartReport, StageFinishCommit}

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

func (noObserver) RunEnqueued()                       {}
func (noObserver) LeaseGranted(time.Duration, bool)   {}
func (noObserver) RunFinished(string)                 {}
func (noObserver) RunsCancelledAtOnce(uint32)         {}
func (noObserver) RunsPruned(uint64)                  {}
func (noObserver) LeasesReclaimed(string, int)        {}
func (noObserver) ReportRefused(string, int)          {}
func (noObserver) ObserveHeartbeat(time.Duration)     {}
func (noObserver) ObserveStage(string, time.Duration) {}

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
