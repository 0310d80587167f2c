package store

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Run retention: ended runs are removed once they are older than the
// cluster's retention, a whole hierarchy at a time (a child is never
// removed without its root, so a parent's record never names a child that
// is gone, and a child's record never outlives its root).

// ended says whether a run has reached a final status.
func ended(run *daguhav1.Run) bool {
	switch run.GetStatus() {
	case statusSucceeded, statusFailed, statusCancelled:
		return true
	}
	return false
}

// PruneCandidates scans at most scan runs in id order after the run id
// after ("" for the start) and returns the root runs that ended before
// endedBefore (unix nanoseconds), at most max of them, and the id to
// resume the scan after next time ("" once the scan reached the end of
// the table). It reads a snapshot of the state and changes nothing: the
// leader proposes what it finds, and PruneRuns checks again.
func (s *StateStore) PruneCandidates(after string, scan, max int, endedBefore int64) (roots []string, next string, err error) {
	txn := s.db.Txn(false)
	iter, err := txn.LowerBound(tableRuns, "id", after)
	if err != nil {
		return nil, "", fmt.Errorf("scan runs after %q: %w", after, err)
	}
	seen := 0
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		run := raw.(*daguhav1.Run)
		if run.GetId() == after {
			continue
		}
		seen++
		next = run.GetId()
		if run.GetParentDagRunId() == "" && ended(run) && run.GetFinishedAtUnixNano() > 0 && run.GetFinishedAtUnixNano() < endedBefore {
			roots = append(roots, run.GetId())
		}
		if seen >= scan || len(roots) >= max {
			return roots, next, nil
		}
	}
	return roots, "", nil
}

// PruneRuns removes, for each root run named, the root and its whole
// hierarchy, when the root ended before endedBefore and every run below it
// has ended too. Roots that do not qualify are skipped: a repeated or late
// command changes nothing. It returns the roots pruned and how many runs
// were removed in all.
func (s *StateStore) PruneRuns(index uint64, rootIDs []string, endedBefore int64) ([]string, uint64, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	var (
		pruned  []string
		removed uint64
	)
	for _, id := range rootIDs {
		root, err := getRun(txn, id)
		if err != nil {
			return nil, 0, err
		}
		if root == nil || root.GetParentDagRunId() != "" || !ended(root) ||
			root.GetFinishedAtUnixNano() <= 0 || root.GetFinishedAtUnixNano() >= endedBefore {
			continue
		}
		hierarchy, err := hierarchyOf(txn, root)
		if err != nil {
			return nil, 0, err
		}
		if hierarchy == nil {
			continue // a run below the root is still going
		}
		for _, run := range hierarchy {
			if err := txn.Delete(tableRuns, run); err != nil {
				return nil, 0, fmt.Errorf("prune run %q: %w", run.GetId(), err)
			}
		}
		pruned = append(pruned, id)
		removed += uint64(len(hierarchy))
	}
	if len(pruned) == 0 {
		// Nothing changed: leave the table's index where it was, so no
		// blocking query wakes for nothing.
		return nil, 0, nil
	}
	if err := commitWithIndex(txn, index, tableRuns); err != nil {
		return nil, 0, err
	}
	return pruned, removed, nil
}

// hierarchyOf returns root and every run below it, or nil when any of
// them has not ended.
func hierarchyOf(txn *memdb.Txn, root *daguhav1.Run) ([]*daguhav1.Run, error) {
	all := []*daguhav1.Run{root}
	for next := 0; next < len(all); next++ {
		iter, err := txn.Get(tableRuns, "parent", all[next].GetId())
		if err != nil {
			return nil, fmt.Errorf("children of %q: %w", all[next].GetId(), err)
		}
		for raw := iter.Next(); raw != nil; raw = iter.Next() {
			child := raw.(*daguhav1.Run)
			if !ended(child) {
				return nil, nil
			}
			all = append(all, child)
		}
	}
	return all, nil
}
