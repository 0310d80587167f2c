package store

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

func workersTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableWorkers,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Id"}},
		},
	}
}

// RegisterWorkers records workers (or their new labels and capacity).
func (s *StateStore) RegisterWorkers(index uint64, workers []*daguhav1.Worker) error {
	txn := s.db.Txn(true)
	defer txn.Abort()
	for _, w := range workers {
		if w.GetId() == "" {
			return fmt.Errorf("register worker at index %d: empty id", index)
		}
		stored := proto.Clone(w).(*daguhav1.Worker)
		stored.ModifyIndex = index
		if err := txn.Insert(tableWorkers, stored); err != nil {
			return fmt.Errorf("register worker %q: %w", w.GetId(), err)
		}
	}
	if err := bumpIndex(txn, tableWorkers, index); err != nil {
		return err
	}
	txn.Commit()
	return nil
}

// Worker returns a registered worker, or nil.
func (s *StateStore) Worker(id string) (*daguhav1.Worker, error) {
	raw, err := s.db.Txn(false).First(tableWorkers, "id", id)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*daguhav1.Worker), nil
}

// EachWorker calls fn for every registered worker in id order.
func (s *StateStore) EachWorker(fn func(*daguhav1.Worker) bool) error {
	iter, err := s.db.Txn(false).Get(tableWorkers, "id")
	if err != nil {
		return fmt.Errorf("list workers: %w", err)
	}
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		if !fn(raw.(*daguhav1.Worker)) {
			break
		}
	}
	return nil
}

// Worker restores one worker from a snapshot.
func (r *Restore) Worker(w *daguhav1.Worker) error {
	if err := r.txn.Insert(tableWorkers, w); err != nil {
		return fmt.Errorf("restore worker %q: %w", w.GetId(), err)
	}
	return nil
}
