package store

import (
	memdb "github.com/hashicorp/go-memdb"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// batchReads reads the runs a batch transition needs without reading
// through its write transaction. memdb answers a read inside a write
// transaction from a clone of the index it reads, and the clone throws
// away that index's record of the radix nodes the transaction already
// copied (go-immutable-radix's Txn.Clone): a batch that read each run
// before writing it copied every node from the root down once per run
// instead of once per batch. So the reads go to a read transaction opened
// on the state the write transaction started from (the writer lock is
// held: no commit comes between), and the runs the batch wrote through
// insert are kept here by id, to be read back as they now are.
//
// A change to runs made other than through insert (cancelling a run's
// children) must be followed by throughTxn: from then on every read goes
// through the write transaction, slower but never stale.
type batchReads struct {
	txn *memdb.Txn
	// before is nil once reads go through txn.
	before  *memdb.Txn
	written map[string]*daguhav1.Run
}

// newBatchReads starts the reads of a batch in txn, a write transaction
// of db just opened.
func newBatchReads(db *memdb.MemDB, txn *memdb.Txn) *batchReads {
	return &batchReads{txn: txn, before: db.Txn(false)}
}

// readsThrough reads through txn itself (a transition that changes runs
// in other ways too).
func readsThrough(txn *memdb.Txn) *batchReads {
	return &batchReads{txn: txn}
}

// throughTxn sends every later read through the write transaction.
func (b *batchReads) throughTxn() {
	b.before, b.written = nil, nil
}

// reader is the transaction the reads of runs not written by this batch
// go to.
func (b *batchReads) reader() *memdb.Txn {
	if b.before == nil {
		return b.txn
	}
	return b.before
}

// run returns the run with id as the batch left it, or nil.
func (b *batchReads) run(id string) (*daguhav1.Run, error) {
	if run, ok := b.written[id]; ok {
		return run, nil
	}
	return getRun(b.reader(), id)
}

// insert writes run (a new record, never one already stored) and keeps
// it for later reads of the batch.
func (b *batchReads) insert(run *daguhav1.Run) error {
	if err := b.txn.Insert(tableRuns, run); err != nil {
		return err
	}
	if b.before != nil {
		if b.written == nil {
			b.written = map[string]*daguhav1.Run{}
		}
		b.written[run.GetId()] = run
	}
	return nil
}
