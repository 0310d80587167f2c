package store

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/daguha/daguha/dispatch/valid"
)

// SelectorKey is the canonical form of a worker selector: package
// valid's form of labels, k=v sorted by key and joined with commas (""
// for no selector). Runs with equal selectors share one pending queue,
// and there are few distinct selectors, so a poll looks at each queue's
// head instead of every run.
func SelectorKey(selector map[string]string) string { return valid.FormatLabels(selector) }

// Selector is one distinct worker selector with runs waiting on it.
type Selector struct {
	// id is Key with a prefix: memdb treats an empty string as a missing
	// index value, and the empty selector is a real queue.
	id      string
	Key     string
	Labels  map[string]string
	Pending uint64
}

func selectorsTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableSelectors,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: selectorIDIndexer{}},
		},
	}
}

func selectorID(key string) string { return "selector:" + key }

// selectorIDIndexer indexes selectors by their prefixed key.
type selectorIDIndexer struct{}

func (selectorIDIndexer) FromObject(obj interface{}) (bool, []byte, error) {
	return true, append([]byte(obj.(*Selector).id), 0), nil
}

func (selectorIDIndexer) FromArgs(args ...interface{}) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("selector id takes one key")
	}
	key, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("selector id: %T is not a string", args[0])
	}
	return append([]byte(selectorID(key)), 0), nil
}

// adjustPending changes the number of queued runs waiting on a selector,
// dropping the selector when none are left.
func adjustPending(txn *memdb.Txn, key string, labels map[string]string, delta int) error {
	raw, err := txn.First(tableSelectors, "id", key)
	if err != nil {
		return fmt.Errorf("read selector %q: %w", key, err)
	}
	current := &Selector{id: selectorID(key), Key: key, Labels: labels}
	if raw != nil {
		existing := raw.(*Selector)
		current = &Selector{id: existing.id, Key: key, Labels: existing.Labels, Pending: existing.Pending}
	}
	if delta < 0 && current.Pending < uint64(-delta) {
		return fmt.Errorf("selector %q: pending count %d cannot drop by %d", key, current.Pending, -delta)
	}
	current.Pending = uint64(int64(current.Pending) + int64(delta))
	if current.Pending == 0 {
		if raw != nil {
			return txn.Delete(tableSelectors, raw)
		}
		return nil
	}
	return txn.Insert(tableSelectors, current)
}

// pendingCounts gathers the changes a transaction makes to the pending
// counts of selectors, so that each selector is written once when the
// transaction ends instead of once per run: an entry that enqueues or
// grants 64 runs of one selector wrote its record 64 times.
type pendingCounts struct {
	keys   []string // in the order first met: every replica writes alike
	deltas map[string]int
	labels map[string]map[string]string
}

// add records a change of the queue of key; labels (nil when unknown) are
// the selector's, for a selector that has no record yet.
func (p *pendingCounts) add(key string, labels map[string]string, delta int) {
	if p.deltas == nil {
		p.deltas, p.labels = map[string]int{}, map[string]map[string]string{}
	}
	if _, ok := p.deltas[key]; !ok {
		p.keys = append(p.keys, key)
	}
	p.deltas[key] += delta
	if p.labels[key] == nil && labels != nil {
		p.labels[key] = labels
	}
}

// write applies the gathered changes inside txn.
func (p *pendingCounts) write(txn *memdb.Txn) error {
	for _, key := range p.keys {
		if delta := p.deltas[key]; delta != 0 {
			if err := adjustPending(txn, key, p.labels[key], delta); err != nil {
				return err
			}
		}
	}
	return nil
}

// PendingSelectors returns every selector with queued runs, in key order,
// and a channel closed when that set or its counts change.
func (s *StateStore) PendingSelectors() ([]*Selector, <-chan struct{}, error) {
	txn := s.db.Txn(false)
	iter, err := txn.Get(tableSelectors, "id")
	if err != nil {
		return nil, nil, fmt.Errorf("list selectors: %w", err)
	}
	var out []*Selector
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		out = append(out, raw.(*Selector))
	}
	return out, iter.WatchCh(), nil
}
