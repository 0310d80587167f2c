package store

import (
	"fmt"
	"slices"

	memdb "github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// The dispatch state changes of a run. Each checks the run's state and,
// for anything a lease holder reports, the fencing token, so a stale or
// repeated command changes nothing and says why.

// GrantLeases starts an attempt of each queued run on its worker. The
// fencing token is index, the Raft index of the entry: it only grows.
func (s *StateStore) GrantLeases(index uint64, grants []*daguhav1.Grant) ([]*daguhav1.GrantOutcome, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	outcomes := make([]*daguhav1.GrantOutcome, 0, len(grants))
	var pending pendingCounts
	// The runs each worker holds, counted once per entry and kept up to
	// date by its grants (an entry grants many runs to one worker).
	held := map[string]int{}
	reads := newBatchReads(s.db, txn)
	for _, grant := range grants {
		outcome, err := grantOne(reads, index, grant, &pending, held)
		if err != nil {
			return nil, err
		}
		outcomes = append(outcomes, outcome)
	}
	if err := pending.write(txn); err != nil {
		return nil, err
	}
	if err := commitWithIndex(txn, index, tableRuns, tableSelectors); err != nil {
		return nil, err
	}
	return outcomes, nil
}

func grantOne(reads *batchReads, index uint64, grant *daguhav1.Grant, pending *pendingCounts, held map[string]int) (*daguhav1.GrantOutcome, error) {
	refuse := func(format string, args ...interface{}) (*daguhav1.GrantOutcome, error) {
		return &daguhav1.GrantOutcome{RunId: grant.GetRunId(), Refused: fmt.Sprintf(format, args...)}, nil
	}
	run, err := reads.run(grant.GetRunId())
	if err != nil {
		return nil, err
	}
	switch {
	case run == nil:
		return refuse("run %q does not exist", grant.GetRunId())
	case run.GetStatus() != statusQueued:
		return refuse("run %q is %s, not queued", run.GetId(), run.GetStatus())
	case grant.GetAttempt() != run.GetAttempt()+1:
		return refuse("run %q is at attempt %d; grant is for attempt %d", run.GetId(), run.GetAttempt(), grant.GetAttempt())
	}
	count, counted := held[grant.GetWorkerId()]
	if !counted {
		// Counted as the batch found them; held counts this batch's
		// grants on top.
		iter, err := reads.reader().Get(tableRuns, "running_prefix", grant.GetWorkerId())
		if err != nil {
			return nil, err
		}
		for raw := iter.Next(); raw != nil; raw = iter.Next() {
			count++
		}
		held[grant.GetWorkerId()] = count
	}
	if max := grant.GetMaxActiveRuns(); max > 0 && count >= int(max) {
		return refuse("worker %q holds %d runs, its maxActiveRuns", grant.GetWorkerId(), count)
	}
	updated := copyRun(run)
	updated.Status = statusRunning
	updated.Attempt = grant.GetAttempt()
	updated.WorkerId = grant.GetWorkerId()
	updated.FencingToken = index
	updated.StartedAtUnixNano = grant.GetNowUnixNano()
	updated.FinishedAtUnixNano = 0
	updated.Error = ""
	// A retry's new attempt starts from the steps it keeps.
	updated.Steps = slices.Clone(run.KeptSteps)
	updated.ModifyIndex = index
	updated.Attempts = append(updated.Attempts, &daguhav1.Attempt{
		Attempt:           grant.GetAttempt(),
		WorkerId:          grant.GetWorkerId(),
		FencingToken:      index,
		StartedAtUnixNano: grant.GetNowUnixNano(),
	})
	if err := reads.insert(updated); err != nil {
		return nil, fmt.Errorf("grant %q: %w", run.GetId(), err)
	}
	held[grant.GetWorkerId()]++
	pending.add(run.GetSelectorKey(), nil, -1)
	return &daguhav1.GrantOutcome{RunId: run.GetId(), Granted: true, FencingToken: index, Run: updated}, nil
}

// holderCheck says why a report for (runID, token) is refused, or "".
func holderCheck(run *daguhav1.Run, runID string, token uint64) string {
	switch {
	case run == nil:
		return fmt.Sprintf("run %q does not exist", runID)
	case !FencingChecked:
		return ""
	case run.GetFencingToken() != token:
		return fmt.Sprintf("stale lease: run %q is at attempt %d (fencing token %d), the report carries token %d", runID, run.GetAttempt(), run.GetFencingToken(), token)
	case run.GetStatus() != statusRunning:
		return fmt.Sprintf("run %q is %s", runID, run.GetStatus())
	}
	return ""
}

// endAttempt records how the current attempt ended.
func endAttempt(run *daguhav1.Run, now int64, outcome string) {
	if n := len(run.Attempts); n > 0 && run.Attempts[n-1].GetFencingToken() == run.GetFencingToken() {
		ended := proto.Clone(run.Attempts[n-1]).(*daguhav1.Attempt)
		ended.EndedAtUnixNano = now
		ended.Outcome = outcome
		run.Attempts[n-1] = ended
	}
}

// ReclaimRuns puts runs whose lease was lost back in their queue; the next
// grant starts a new attempt with a higher fencing token.
func (s *StateStore) ReclaimRuns(index uint64, reclaims []*daguhav1.Reclaim) ([]*daguhav1.RunOutcome, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	outcomes := make([]*daguhav1.RunOutcome, 0, len(reclaims))
	for _, reclaim := range reclaims {
		run, err := getRun(txn, reclaim.GetRunId())
		if err != nil {
			return nil, err
		}
		if why := holderCheck(run, reclaim.GetRunId(), reclaim.GetFencingToken()); why != "" {
			outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: reclaim.GetRunId(), Refused: why})
			continue
		}
		cancelled, err := reclaimRun(txn, index, run, reclaim.GetReason(), reclaim.GetNowUnixNano())
		if err != nil {
			return nil, err
		}
		outcome := &daguhav1.RunOutcome{RunId: run.GetId(), Applied: true}
		if cancelled {
			outcome.EndedCancelled = 1
		}
		outcomes = append(outcomes, outcome)
	}
	if err := commitWithIndex(txn, index, tableRuns, tableSelectors); err != nil {
		return nil, err
	}
	return outcomes, nil
}

// reclaimRun puts a running run back in its queue (or ends it cancelled,
// when cancellation was asked, and says so), closing its current attempt.
func reclaimRun(txn *memdb.Txn, index uint64, run *daguhav1.Run, reason string, now int64) (bool, error) {
	updated := copyRun(run)
	endAttempt(updated, now, "reclaimed: "+reason)
	updated.Status = statusQueued
	updated.WorkerId = ""
	updated.ModifyIndex = index
	if updated.GetCancelRequested() {
		updated.Status = statusCancelled
		updated.FinishedAtUnixNano = now
	}
	if err := txn.Insert(tableRuns, updated); err != nil {
		return false, fmt.Errorf("reclaim %q: %w", run.GetId(), err)
	}
	if updated.GetStatus() == statusQueued {
		return false, adjustPending(txn, run.GetSelectorKey(), run.GetDag().GetWorkerSelector(), 1)
	}
	return true, nil
}

// ReportSteps records step states reported by the holders of the runs.
// The reports of one run in one command (a worker sends several states at
// once) change one copy of the run, inserted once, in order.
func (s *StateStore) ReportSteps(index uint64, reports []*daguhav1.StepReport) ([]*daguhav1.RunOutcome, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	outcomes := make([]*daguhav1.RunOutcome, 0, len(reports))
	changed := map[string]*daguhav1.Run{}
	var order []*daguhav1.Run
	// Every run is read before any is written: through a read transaction
	// of the same state, which leaves the write's node cache alone.
	reads := newBatchReads(s.db, txn)
	for _, report := range reports {
		run := changed[report.GetRunId()]
		if run == nil {
			var err error
			if run, err = reads.run(report.GetRunId()); err != nil {
				return nil, err
			}
		}
		if why := holderCheck(run, report.GetRunId(), report.GetFencingToken()); why != "" {
			outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: report.GetRunId(), Refused: why})
			continue
		}
		if _, ok := changed[run.GetId()]; !ok {
			run = copyRun(run)
			changed[run.GetId()] = run
			order = append(order, run)
		}
		setStep(run, report.GetStep())
		run.ModifyIndex = index
		outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: run.GetId(), Applied: true})
	}
	for _, run := range order {
		if err := txn.Insert(tableRuns, run); err != nil {
			return nil, fmt.Errorf("report step of %q: %w", run.GetId(), err)
		}
	}
	if err := commitWithIndex(txn, index, tableRuns); err != nil {
		return nil, err
	}
	return outcomes, nil
}

// setStep records a step's state in a run being changed: it replaces the
// step's earlier state, or is added after the others.
func setStep(run *daguhav1.Run, step *daguhav1.StepState) {
	for i, s := range run.Steps {
		if s.GetName() == step.GetName() {
			run.Steps[i] = step
			return
		}
	}
	run.Steps = append(run.Steps, step)
}

// FinishRuns records the end of runs. A finish repeated by the same
// holder is accepted and changes nothing; any other late finish is refused.
func (s *StateStore) FinishRuns(index uint64, finishes []*daguhav1.Finish) ([]*daguhav1.RunOutcome, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	outcomes := make([]*daguhav1.RunOutcome, 0, len(finishes))
	reads := newBatchReads(s.db, txn)
	for _, finish := range finishes {
		run, err := reads.run(finish.GetRunId())
		if err != nil {
			return nil, err
		}
		switch finish.GetStatus() {
		case statusSucceeded, statusFailed, statusCancelled:
		default:
			outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: finish.GetRunId(), Refused: fmt.Sprintf("%s is not a final status", finish.GetStatus())})
			continue
		}
		if run != nil && run.GetFencingToken() == finish.GetFencingToken() && (run.GetStatus() == finish.GetStatus() ||
			// Queued again by its retry policy when this finish was taken.
			run.GetStatus() == statusQueued && finish.GetStatus() == statusFailed && run.GetDagRetries() > 0) {
			outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: run.GetId(), Applied: true})
			continue
		}
		if why := holderCheck(run, finish.GetRunId(), finish.GetFencingToken()); why != "" {
			outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: finish.GetRunId(), Refused: why})
			continue
		}
		updated := copyRun(run)
		// The steps the holder had not reported yet go with its finish,
		// checked with it.
		for _, step := range finish.GetSteps() {
			setStep(updated, step)
		}
		updated.Status = finish.GetStatus()
		updated.Error = finish.GetError()
		updated.FinishedAtUnixNano = finish.GetNowUnixNano()
		updated.Outputs = finish.GetOutputs()
		updated.ModifyIndex = index
		endAttempt(updated, finish.GetNowUnixNano(), finish.GetStatus().Word())
		retried := retriesAfter(updated)
		if retried {
			// Its DAG's retry policy queues it again, for a new attempt
			// once the wait has passed; its last error stays to be seen.
			policy := updated.GetDag().GetRetryPolicy()
			updated.Status = statusQueued
			updated.WorkerId = ""
			updated.RetryAfterUnixNano = finish.GetNowUnixNano() +
				int64(daguhav1.BackoffWait(policy.GetIntervalSec(), policy.GetBackoff(), policy.GetMaxIntervalSec(), int(updated.GetDagRetries())))
			updated.DagRetries++
		}
		if err := reads.insert(updated); err != nil {
			return nil, fmt.Errorf("finish %q: %w", run.GetId(), err)
		}
		if retried {
			if err := adjustPending(txn, run.GetSelectorKey(), run.GetDag().GetWorkerSelector(), 1); err != nil {
				return nil, err
			}
		}
		// A run that ended leaves no child behind it. Cancelling children
		// changes runs behind the batch's reads: later reads go through
		// the write transaction. (Children are enqueued by entries of
		// their own, so a run without one before the batch has none.)
		hasChildren, err := reads.reader().First(tableRuns, "parent", run.GetId())
		if err != nil {
			return nil, err
		}
		var ended uint32
		if hasChildren != nil {
			reads.throughTxn()
			if ended, err = cancelDescendants(txn, index, run.GetId(), finish.GetNowUnixNano()); err != nil {
				return nil, err
			}
		}
		outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: run.GetId(), Applied: true, EndedCancelled: ended})
	}
	if err := commitWithIndex(txn, index, tableRuns, tableSelectors); err != nil {
		return nil, err
	}
	return outcomes, nil
}

// retriesAfter tells whether a run that has just failed is queued again
// by its DAG's retry policy: a root run (a child's retries are its
// parent step's), not being cancelled, with retries left.
func retriesAfter(run *daguhav1.Run) bool {
	return run.GetStatus() == statusFailed && run.GetParentDagRunId() == "" && !run.GetCancelRequested() &&
		run.GetDagRetries() < run.GetDag().GetRetryPolicy().GetLimit()
}

// CancelRuns cancels queued runs at once and marks running ones for
// cancellation; finished runs are left as they are. Cancelling a run
// cancels all its descendants too.
func (s *StateStore) CancelRuns(index uint64, ids []string, now int64) ([]*daguhav1.RunOutcome, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	outcomes := make([]*daguhav1.RunOutcome, 0, len(ids))
	for _, id := range ids {
		run, err := getRun(txn, id)
		if err != nil {
			return nil, err
		}
		if run == nil {
			outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: id, Refused: fmt.Sprintf("run %q does not exist", id), RefusalKind: daguhav1.RefusalKind_REFUSAL_KIND_NOT_FOUND})
			continue
		}
		if run.GetStatus() != statusQueued && run.GetStatus() != statusRunning {
			outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: id, Refused: fmt.Sprintf("run %q has already finished: %s", id, run.GetStatus().Word()), RefusalKind: daguhav1.RefusalKind_REFUSAL_KIND_CONFLICT})
			continue
		}
		self, err := cancelRun(txn, index, run, now)
		if err != nil {
			return nil, err
		}
		ended, err := cancelDescendants(txn, index, id, now)
		if err != nil {
			return nil, err
		}
		if self {
			ended++
		}
		outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: id, Applied: true, EndedCancelled: ended})
	}
	if err := commitWithIndex(txn, index, tableRuns, tableSelectors); err != nil {
		return nil, err
	}
	return outcomes, nil
}

// DequeueRuns ends queued runs cancelled, as Dagu's dequeue does (Dagu
// marks a dequeued run cancelled), with their queued descendants. A run
// that is not queued, not even by its retry policy, is refused and left
// as it is: a dequeue never stops a running run.
func (s *StateStore) DequeueRuns(index uint64, ids []string, now int64) ([]*daguhav1.RunOutcome, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	outcomes := make([]*daguhav1.RunOutcome, 0, len(ids))
	for _, id := range ids {
		run, err := getRun(txn, id)
		if err != nil {
			return nil, err
		}
		switch {
		case run == nil:
			outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: id, Refused: fmt.Sprintf("run %q does not exist", id), RefusalKind: daguhav1.RefusalKind_REFUSAL_KIND_NOT_FOUND})
			continue
		case run.GetStatus() != statusQueued:
			outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: id, Refused: fmt.Sprintf("run %q is not queued but %s", id, run.GetStatus().Word()), RefusalKind: daguhav1.RefusalKind_REFUSAL_KIND_CONFLICT})
			continue
		}
		if _, err := cancelRun(txn, index, run, now); err != nil {
			return nil, err
		}
		ended, err := cancelDescendants(txn, index, id, now)
		if err != nil {
			return nil, err
		}
		outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: id, Applied: true, EndedCancelled: ended + 1})
	}
	if err := commitWithIndex(txn, index, tableRuns, tableSelectors); err != nil {
		return nil, err
	}
	return outcomes, nil
}

// cancelRun cancels a queued run at once (and says it ended it) and asks
// a running one to stop.
func cancelRun(txn *memdb.Txn, index uint64, run *daguhav1.Run, now int64) (bool, error) {
	updated := copyRun(run)
	ended := false
	switch run.GetStatus() {
	case statusQueued:
		updated.Status = statusCancelled
		updated.FinishedAtUnixNano = now
		if err := adjustPending(txn, run.GetSelectorKey(), nil, -1); err != nil {
			return false, err
		}
		ended = true
	case statusRunning:
		if run.GetCancelRequested() {
			return false, nil
		}
		updated.CancelRequested = true
	default:
		return false, nil
	}
	updated.ModifyIndex = index
	if err := txn.Insert(tableRuns, updated); err != nil {
		return false, fmt.Errorf("cancel %q: %w", run.GetId(), err)
	}
	return ended, nil
}

// cancelDescendants cancels every run below runID in its hierarchy and
// returns how many queued ones it ended.
func cancelDescendants(txn *memdb.Txn, index uint64, runID string, now int64) (uint32, error) {
	var ended uint32
	pending := []string{runID}
	for len(pending) > 0 {
		parent := pending[0]
		pending = pending[1:]
		iter, err := txn.Get(tableRuns, "parent", parent)
		if err != nil {
			return 0, fmt.Errorf("children of %q: %w", parent, err)
		}
		var children []*daguhav1.Run
		for raw := iter.Next(); raw != nil; raw = iter.Next() {
			children = append(children, raw.(*daguhav1.Run))
		}
		for _, child := range children {
			done, err := cancelRun(txn, index, child, now)
			if err != nil {
				return 0, err
			}
			if done {
				ended++
			}
			pending = append(pending, child.GetId())
		}
	}
	return ended, nil
}
