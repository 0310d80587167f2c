package store

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

func runsTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableRuns,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {
				Name:    "id",
				Unique:  true,
				Indexer: &memdb.StringFieldIndex{Field: "Id"},
			},
		},
	}
}

// EnqueueRuns adds runs that do not exist yet, at Raft index index. A run
// whose id exists already is left as it is: the outcome says whether the
// existing run is the same request (a retry) or a conflicting one. The
// whole batch is one transaction.
func (s *StateStore) EnqueueRuns(index uint64, runs []*daguhav1.Run) ([]*daguhav1.EnqueueOutcome, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()

	outcomes := make([]*daguhav1.EnqueueOutcome, 0, len(runs))
	for _, run := range runs {
		if run.GetId() == "" {
			return nil, fmt.Errorf("enqueue at index %d: run without id", index)
		}
		raw, err := txn.First(tableRuns, "id", run.GetId())
		if err != nil {
			return nil, fmt.Errorf("enqueue %q: %w", run.GetId(), err)
		}
		if raw != nil {
			outcomes = append(outcomes, &daguhav1.EnqueueOutcome{
				RunId:    run.GetId(),
				Conflict: enqueueConflict(raw.(*daguhav1.Run), run),
			})
			continue
		}
		stored := proto.Clone(run).(*daguhav1.Run)
		stored.Status = daguhav1.RunStatus_RUN_STATUS_QUEUED
		stored.CreateIndex = index
		stored.ModifyIndex = index
		if err := txn.Insert(tableRuns, stored); err != nil {
			return nil, fmt.Errorf("enqueue %q: %w", run.GetId(), err)
		}
		outcomes = append(outcomes, &daguhav1.EnqueueOutcome{RunId: run.GetId(), Created: true})
	}
	if err := bumpIndex(txn, tableRuns, index); err != nil {
		return nil, err
	}
	txn.Commit()
	return outcomes, nil
}

// enqueueConflict explains why a second enqueue with an existing run id is
// not a retry of the first, or returns "" when it is.
func enqueueConflict(existing, again *daguhav1.Run) string {
	switch {
	case existing.GetDagName() != again.GetDagName():
		return fmt.Sprintf("run %q exists for DAG %q, not %q", existing.GetId(), existing.GetDagName(), again.GetDagName())
	case existing.GetParams() != again.GetParams():
		return fmt.Sprintf("run %q exists with params %q, not %q", existing.GetId(), existing.GetParams(), again.GetParams())
	}
	return ""
}

// Run returns the run with id, or nil when there is none. The record is
// shared with the store: do not modify it.
func (s *StateStore) Run(id string) (*daguhav1.Run, error) {
	txn := s.db.Txn(false)
	raw, err := txn.First(tableRuns, "id", id)
	if err != nil {
		return nil, fmt.Errorf("read run %q: %w", id, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*daguhav1.Run), nil
}

// EachRun calls fn for every run in id order until fn returns false.
func (s *StateStore) EachRun(fn func(*daguhav1.Run) bool) error {
	txn := s.db.Txn(false)
	iter, err := txn.Get(tableRuns, "id")
	if err != nil {
		return fmt.Errorf("list runs: %w", err)
	}
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		if !fn(raw.(*daguhav1.Run)) {
			break
		}
	}
	return nil
}

// Run inserts a run read from a snapshot into a store being rebuilt.
func (r *Restore) Run(run *daguhav1.Run) error {
	if err := r.txn.Insert(tableRuns, run); err != nil {
		return fmt.Errorf("restore run %q: %w", run.GetId(), err)
	}
	return nil
}
