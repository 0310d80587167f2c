package store

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// Restore rebuilds a fresh state store from a snapshot in one transaction,
// so a half-read snapshot never becomes visible.
type Restore struct {
	store *StateStore
	txn   *memdb.Txn
	// pending counts the queued runs of each selector as they are read;
	// the selector rows are written once, at Commit, rather than rewritten
	// for every queued run (a sixth of a large restore's time).
	pending map[string]*Selector
	// lastRunID is the greatest run id restored so far (anyRun: whether
	// there was one): Run looks up only an id not above it.
	lastRunID string
	anyRun    bool
}

// NewRestore starts filling an empty store.
func NewRestore() (*Restore, error) {
	s, err := NewStateStore()
	if err != nil {
		return nil, err
	}
	return &Restore{store: s, txn: s.db.Txn(true), pending: map[string]*Selector{}}, nil
}

// Commit makes the restored records visible and returns the store.
func (r *Restore) Commit() (*StateStore, error) {
	for key, selector := range r.pending {
		if err := r.txn.Insert(tableSelectors, selector); err != nil {
			r.txn.Abort()
			return nil, fmt.Errorf("restore the queue of selector %q: %w", key, err)
		}
	}
	r.txn.Commit()
	return r.store, nil
}

// Abort drops whatever was restored.
func (r *Restore) Abort() { r.txn.Abort() }

// countPending counts a queued run in its selector's queue.
func (r *Restore) countPending(key string, labels map[string]string) {
	selector, ok := r.pending[key]
	if !ok {
		selector = &Selector{id: selectorID(key), Key: key, Labels: labels}
		r.pending[key] = selector
	}
	selector.Pending++
}
