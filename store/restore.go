package store

import memdb "github.com/hashicorp/go-memdb"

// Restore rebuilds a fresh state store from a snapshot in one transaction,
// so a half-read snapshot never becomes visible.
type Restore struct {
	store *StateStore
	txn   *memdb.Txn
}

// NewRestore starts filling an empty store.
func NewRestore() (*Restore, error) {
	s, err := NewStateStore()
	if err != nil {
		return nil, err
	}
	return &Restore{store: s, txn: s.db.Txn(true)}, nil
}

// Commit makes the restored records visible and returns the store.
func (r *Restore) Commit() *StateStore {
	r.txn.Commit()
	return r.store
}

// Abort drops whatever was restored.
func (r *Restore) Abort() { r.txn.Abort() }
