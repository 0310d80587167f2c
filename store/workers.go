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

// MarkWorkersOffline records workers as offline and takes back every run
// they hold, in one transaction. It returns the ids of the runs taken
// back, and how many of them it ended because a cancel had been asked.
func (s *StateStore) MarkWorkersOffline(index uint64, ids []string, reason string, now int64) ([]string, uint32, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	var reclaimed []string
	var ended uint32
	for _, id := range ids {
		raw, err := txn.First(tableWorkers, "id", id)
		if err != nil {
			return nil, 0, fmt.Errorf("read worker %q: %w", id, err)
		}
		if raw == nil || raw.(*daguhav1.Worker).GetOffline() {
			continue
		}
		updated := proto.Clone(raw.(*daguhav1.Worker)).(*daguhav1.Worker)
		updated.Offline = true
		updated.OfflineAtUnixNano = now
		updated.OfflineReason = reason
		updated.ModifyIndex = index
		if err := txn.Insert(tableWorkers, updated); err != nil {
			return nil, 0, fmt.Errorf("mark worker %q offline: %w", id, err)
		}
		var held []*daguhav1.Run
		iter, err := txn.Get(tableRuns, "running_prefix", id)
		if err != nil {
			return nil, 0, err
		}
		for r := iter.Next(); r != nil; r = iter.Next() {
			held = append(held, r.(*daguhav1.Run))
		}
		for _, run := range held {
			cancelled, err := reclaimRun(txn, index, run, fmt.Sprintf("worker %s is offline", id), now)
			if err != nil {
				return nil, 0, err
			}
			if cancelled {
				ended++
			}
			reclaimed = append(reclaimed, run.GetId())
		}
	}
	if err := commitWithIndex(txn, index, tableWorkers, tableRuns, tableSelectors); err != nil {
		return nil, 0, err
	}
	return reclaimed, ended, nil
}

// RemoveWorkers forgets workers (offline past their retention).
func (s *StateStore) RemoveWorkers(index uint64, ids []string) error {
	txn := s.db.Txn(true)
	defer txn.Abort()
	for _, id := range ids {
		if _, err := txn.DeleteAll(tableWorkers, "id", id); err != nil {
			return fmt.Errorf("remove worker %q: %w", id, err)
		}
	}
	if err := commitWithIndex(txn, index, tableWorkers); err != nil {
		return err
	}
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
