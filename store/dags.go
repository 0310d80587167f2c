package store

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

func dagsTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableDags,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: dagNameIndexer{}},
		},
	}
}

// dagNameIndexer indexes stored DAGs by the name of their main DAG.
type dagNameIndexer struct{}

func (dagNameIndexer) FromObject(obj interface{}) (bool, []byte, error) {
	name := obj.(*daguhav1.StoredDag).GetSpec().GetName()
	if name == "" {
		return false, nil, fmt.Errorf("stored DAG without a name")
	}
	return true, append([]byte(name), 0), nil
}

func (dagNameIndexer) FromArgs(args ...interface{}) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("DAG index takes one name")
	}
	name, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("DAG index: %T is not a string", args[0])
	}
	return append([]byte(name), 0), nil
}

// Outcomes of PutDags.
const (
	DagCreated   = "created"
	DagUpdated   = "updated"
	DagUnchanged = "unchanged"
)

// PutDags stores DAG definitions. A DAG whose content hash equals the
// stored one is left untouched, so pushing the same files again (a server
// restarting with --dags) writes nothing that a reader could see.
func (s *StateStore) PutDags(index uint64, dags []*daguhav1.StoredDag, now int64) ([]*daguhav1.DagOutcome, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	outcomes := make([]*daguhav1.DagOutcome, 0, len(dags))
	for _, dag := range dags {
		name := dag.GetSpec().GetName()
		if name == "" {
			return nil, fmt.Errorf("put DAGs at index %d: a DAG has no name", index)
		}
		existing, err := getDag(txn, name)
		if err != nil {
			return nil, err
		}
		stored := proto.Clone(dag).(*daguhav1.StoredDag)
		stored.ModifyIndex = index
		stored.UpdatedAtUnixNano = now
		result := DagCreated
		switch {
		case existing == nil:
			stored.CreateIndex = index
		case existing.GetContentHash() == dag.GetContentHash():
			outcomes = append(outcomes, &daguhav1.DagOutcome{Name: name, Result: DagUnchanged})
			continue
		default:
			stored.CreateIndex = existing.GetCreateIndex()
			result = DagUpdated
		}
		if err := txn.Insert(tableDags, stored); err != nil {
			return nil, fmt.Errorf("put DAG %q: %w", name, err)
		}
		outcomes = append(outcomes, &daguhav1.DagOutcome{Name: name, Result: result})
	}
	if err := commitWithIndex(txn, index, tableDags); err != nil {
		return nil, err
	}
	return outcomes, nil
}

// DeleteDags forgets stored DAGs; names that are not stored are skipped,
// as are names ifHash gives a content hash for that the stored DAG no
// longer has. Runs of a deleted DAG keep the definition they were
// enqueued with.
func (s *StateStore) DeleteDags(index uint64, names []string, ifHash map[string]string) ([]string, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	var deleted []string
	for _, name := range names {
		existing, err := getDag(txn, name)
		if err != nil {
			return nil, err
		}
		if existing == nil {
			continue
		}
		if want, ok := ifHash[name]; ok && existing.GetContentHash() != want {
			continue
		}
		if err := txn.Delete(tableDags, existing); err != nil {
			return nil, fmt.Errorf("delete DAG %q: %w", name, err)
		}
		if _, err := txn.DeleteAll(tableSchedules, "id", name); err != nil {
			return nil, fmt.Errorf("delete schedule of DAG %q: %w", name, err)
		}
		deleted = append(deleted, name)
	}
	if err := commitWithIndex(txn, index, tableDags, tableSchedules); err != nil {
		return nil, err
	}
	return deleted, nil
}

func getDag(txn *memdb.Txn, name string) (*daguhav1.StoredDag, error) {
	raw, err := txn.First(tableDags, "id", name)
	if err != nil {
		return nil, fmt.Errorf("read DAG %q: %w", name, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*daguhav1.StoredDag), nil
}

// Dag returns the stored DAG with the name, or nil. Do not modify it.
func (s *StateStore) Dag(name string) (*daguhav1.StoredDag, error) {
	return getDag(s.db.Txn(false), name)
}

// EachDag calls fn for every stored DAG in name order until it returns false.
func (s *StateStore) EachDag(fn func(*daguhav1.StoredDag) bool) error {
	iter, err := s.db.Txn(false).Get(tableDags, "id")
	if err != nil {
		return fmt.Errorf("list DAGs: %w", err)
	}
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		if !fn(raw.(*daguhav1.StoredDag)) {
			break
		}
	}
	return nil
}

// DagsWatch returns a channel closed at the next change of the DAG table.
func (s *StateStore) DagsWatch() (<-chan struct{}, error) {
	iter, err := s.db.Txn(false).Get(tableDags, "id")
	if err != nil {
		return nil, fmt.Errorf("watch DAGs: %w", err)
	}
	return iter.WatchCh(), nil
}

// Dag inserts a stored DAG read from a snapshot.
func (r *Restore) Dag(dag *daguhav1.StoredDag) error {
	if existing, err := getDag(r.txn, dag.GetSpec().GetName()); err != nil {
		return err
	} else if existing != nil {
		return fmt.Errorf("restore DAG %q: it appears twice in the snapshot", dag.GetSpec().GetName())
	}
	if err := r.txn.Insert(tableDags, dag); err != nil {
		return fmt.Errorf("restore DAG %q: %w", dag.GetSpec().GetName(), err)
	}
	return nil
}
