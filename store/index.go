package store

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// indexEntry records the Raft index of the last write to a table, so that
// readers can tell how fresh a table is and wait for it to change.
type indexEntry struct {
	Key   string
	Value uint64
}

func indexTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableIndex,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {
				Name:    "id",
				Unique:  true,
				Indexer: &memdb.StringFieldIndex{Field: "Key"},
			},
		},
	}
}

// bumpIndex sets the table's index inside a write transaction. An index
// never goes backwards: replaying an older entry is a bug upstream.
func bumpIndex(txn *memdb.Txn, table string, index uint64) error {
	raw, err := txn.First(tableIndex, "id", table)
	if err != nil {
		return fmt.Errorf("read index of %s: %w", table, err)
	}
	if raw != nil && raw.(*indexEntry).Value > index {
		return nil
	}
	if err := txn.Insert(tableIndex, &indexEntry{Key: table, Value: index}); err != nil {
		return fmt.Errorf("write index of %s: %w", table, err)
	}
	return nil
}

// TableDags is the name of the DAG table, for a read of it alone
// (cluster.Server.ConsistentReadOf).
const TableDags = tableDags

// TableIndex returns the Raft index of the last write to table (0 if none).
func (s *StateStore) TableIndex(table string) uint64 {
	txn := s.db.Txn(false)
	raw, err := txn.First(tableIndex, "id", table)
	if err != nil || raw == nil {
		return 0
	}
	return raw.(*indexEntry).Value
}

// LatestIndex returns the highest Raft index written to any table.
func (s *StateStore) LatestIndex() uint64 {
	txn := s.db.Txn(false)
	iter, err := txn.Get(tableIndex, "id")
	if err != nil {
		return 0
	}
	var latest uint64
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		if v := raw.(*indexEntry).Value; v > latest {
			latest = v
		}
	}
	return latest
}

// EachTableIndex calls fn for every table's index, in table name order.
func (s *StateStore) EachTableIndex(fn func(*daguhav1.TableIndex) bool) error {
	txn := s.db.Txn(false)
	iter, err := txn.Get(tableIndex, "id")
	if err != nil {
		return fmt.Errorf("list table indexes: %w", err)
	}
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		entry := raw.(*indexEntry)
		if !fn(&daguhav1.TableIndex{Table: entry.Key, Index: entry.Value}) {
			break
		}
	}
	return nil
}

// TableIndex restores one table's index from a snapshot.
func (r *Restore) TableIndex(entry *daguhav1.TableIndex) error {
	if err := r.txn.Insert(tableIndex, &indexEntry{Key: entry.GetTable(), Value: entry.GetIndex()}); err != nil {
		return fmt.Errorf("restore index of %s: %w", entry.GetTable(), err)
	}
	return nil
}
