package store

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// Table names. Each table has its own file with its schema and methods.
const (
	tableIndex     = "index"
	tableRuns      = "runs"
	tableSelectors = "selectors"
	tableWorkers   = "workers"
	tableMeta      = "meta"
	tableDags      = "dags"
	tableSchedules = "schedules"
)

// schema gathers every table's schema. New tables add themselves here.
func schema() *memdb.DBSchema {
	return &memdb.DBSchema{
		Tables: map[string]*memdb.TableSchema{
			tableIndex:     indexTableSchema(),
			tableRuns:      runsTableSchema(),
			tableSelectors: selectorsTableSchema(),
			tableWorkers:   workersTableSchema(),
			tableMeta:      metaTableSchema(),
			tableDags:      dagsTableSchema(),
			tableSchedules: schedulesTableSchema(),
		},
	}
}

// StateStore is the in-memory copy of the replicated state.
type StateStore struct {
	db *memdb.MemDB
}

// NewStateStore returns an empty state store.
func NewStateStore() (*StateStore, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("state store schema: %w", err)
	}
	return &StateStore{db: db}, nil
}

// Snapshot returns a point-in-time view that later writes do not change.
// It is cheap (memdb is an immutable radix tree) and is what Raft snapshots
// stream from while the store keeps taking writes.
func (s *StateStore) Snapshot() *StateStore {
	return &StateStore{db: s.db.Snapshot()}
}
