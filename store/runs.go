package store

import (
	"encoding/binary"
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

const (
	statusQueued    = daguhav1.RunStatus_RUN_STATUS_QUEUED
	statusRunning   = daguhav1.RunStatus_RUN_STATUS_RUNNING
	statusSucceeded = daguhav1.RunStatus_RUN_STATUS_SUCCEEDED
	statusFailed    = daguhav1.RunStatus_RUN_STATUS_FAILED
	statusCancelled = daguhav1.RunStatus_RUN_STATUS_CANCELLED
)

func runsTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableRuns,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {
				Name:    "id",
				Unique:  true,
				Indexer: runStringIndexer{field: (*daguhav1.Run).GetId},
			},
			// Queued runs by selector, oldest first (then by id within
			// one enqueue entry): each selector's pending queue, FIFO.
			"pending": {
				Name:         "pending",
				Unique:       true,
				AllowMissing: true,
				Indexer:      pendingIndexer{},
			},
			// Child runs by parent run id.
			"parent": {
				Name:         "parent",
				AllowMissing: true,
				Indexer:      runStringIndexer{field: (*daguhav1.Run).GetParentDagRunId},
			},
			// Running runs by queue (QueueOf), for the queue's limit.
			"queue_running": {
				Name:         "queue_running",
				AllowMissing: true,
				Indexer:      queueRunningIndexer{},
			},
			// Running runs by worker.
			"running": {
				Name:         "running",
				Unique:       true,
				AllowMissing: true,
				Indexer:      runningIndexer{},
			},
		},
	}
}

// runStringIndexer indexes runs by a string field, with the keys memdb's
// StringFieldIndex makes (the string and a NUL; an empty string is no
// key) and without its reflection, which looked the field up by name for
// every run inserted: a restore inserts a million of them.
type runStringIndexer struct {
	field func(*daguhav1.Run) string
}

func (i runStringIndexer) FromObject(obj interface{}) (bool, []byte, error) {
	val := i.field(obj.(*daguhav1.Run))
	if val == "" {
		return false, nil, nil
	}
	return true, append([]byte(val), 0), nil
}

func (runStringIndexer) FromArgs(args ...interface{}) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("must provide only a single argument")
	}
	arg, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("argument must be a string: %#v", args[0])
	}
	return append([]byte(arg), 0), nil
}

func (i runStringIndexer) PrefixFromArgs(args ...interface{}) ([]byte, error) {
	val, err := i.FromArgs(args...)
	if err != nil {
		return nil, err
	}
	return val[:len(val)-1], nil
}

// pendingIndexer indexes queued runs as selector key, NUL, create index
// (8 bytes, big endian), run id. The run id keeps the key unique: the runs
// of one enqueue batch share their create index, and a unique memdb index
// silently keeps only the last object inserted under a key.
type pendingIndexer struct{}

func (pendingIndexer) FromObject(obj interface{}) (bool, []byte, error) {
	run := obj.(*daguhav1.Run)
	if run.GetStatus() != statusQueued {
		return false, nil, nil
	}
	key := append([]byte(run.GetSelectorKey()), 0)
	key = binary.BigEndian.AppendUint64(key, run.GetCreateIndex())
	return true, append(key, run.GetId()...), nil
}

func (pendingIndexer) FromArgs(args ...interface{}) ([]byte, error) {
	return nil, fmt.Errorf("pending index is queried by prefix only")
}

func (pendingIndexer) PrefixFromArgs(args ...interface{}) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("pending prefix takes one selector key")
	}
	key, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("pending prefix: %T is not a string", args[0])
	}
	return append([]byte(key), 0), nil
}

// QueueOf is the queue a run waits and runs in, as Dagu names it: the
// queue its DAG names, else the DAG's own name.
func QueueOf(run *daguhav1.Run) string {
	if q := run.GetDag().GetQueue(); q != "" {
		return q
	}
	return run.GetDagName()
}

// queueRunningIndexer indexes running runs by queue.
type queueRunningIndexer struct{}

func (queueRunningIndexer) FromObject(obj interface{}) (bool, []byte, error) {
	run := obj.(*daguhav1.Run)
	if run.GetStatus() != statusRunning {
		return false, nil, nil
	}
	return true, append([]byte(QueueOf(run)), 0), nil
}

func (queueRunningIndexer) FromArgs(args ...interface{}) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("queue_running index takes one queue name")
	}
	name, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("queue_running index: %T is not a string", args[0])
	}
	return append([]byte(name), 0), nil
}

// runningIndexer indexes running runs as worker id, NUL, run id.
type runningIndexer struct{}

func (runningIndexer) FromObject(obj interface{}) (bool, []byte, error) {
	run := obj.(*daguhav1.Run)
	if run.GetStatus() != statusRunning {
		return false, nil, nil
	}
	key := append([]byte(run.GetWorkerId()), 0)
	return true, append(key, run.GetId()...), nil
}

func (runningIndexer) FromArgs(args ...interface{}) ([]byte, error) {
	return nil, fmt.Errorf("running index is queried by prefix only")
}

func (runningIndexer) PrefixFromArgs(args ...interface{}) ([]byte, error) {
	switch len(args) {
	case 0:
		return nil, nil
	case 1:
		worker, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("running prefix: %T is not a string", args[0])
		}
		return append([]byte(worker), 0), nil
	}
	return nil, fmt.Errorf("running prefix takes at most one worker id")
}

// EnqueueRuns adds runs that do not exist yet, at Raft index index. A run
// whose id exists already is left as it is: the outcome says whether the
// existing run is the same request (a retry) or a conflicting one. The
// whole batch is one transaction.
func (s *StateStore) EnqueueRuns(index uint64, runs []*daguhav1.Run) ([]*daguhav1.EnqueueOutcome, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()

	outcomes := make([]*daguhav1.EnqueueOutcome, 0, len(runs))
	var pending pendingCounts
	reads := newBatchReads(s.db, txn)
	for _, run := range runs {
		outcome, err := enqueueRun(reads, index, run, &pending)
		if err != nil {
			return nil, err
		}
		outcomes = append(outcomes, outcome)
	}
	if err := pending.write(txn); err != nil {
		return nil, err
	}
	if err := commitWithIndex(txn, index, tableRuns, tableSelectors); err != nil {
		return nil, err
	}
	return outcomes, nil
}

// enqueueRun adds one run inside txn. A child run is refused once its
// parent has ended or is being cancelled: a worker's late request for a
// child must not outlive the cancellation of its root.
func enqueueRun(reads *batchReads, index uint64, run *daguhav1.Run, pending *pendingCounts) (*daguhav1.EnqueueOutcome, error) {
	if run.GetId() == "" {
		return nil, fmt.Errorf("enqueue at index %d: run without id", index)
	}
	existing, err := reads.run(run.GetId())
	if err != nil {
		return nil, err
	}
	if existing != nil {
		return &daguhav1.EnqueueOutcome{RunId: run.GetId(), Conflict: enqueueConflict(existing, run)}, nil
	}
	if parentID := run.GetParentDagRunId(); parentID != "" {
		parent, err := reads.run(parentID)
		if err != nil {
			return nil, err
		}
		switch {
		case parent == nil:
			return &daguhav1.EnqueueOutcome{RunId: run.GetId(), Conflict: fmt.Sprintf("parent run %q does not exist", parentID)}, nil
		case parent.GetStatus() != statusRunning && parent.GetStatus() != statusQueued:
			return &daguhav1.EnqueueOutcome{RunId: run.GetId(), Conflict: fmt.Sprintf("parent run %q has ended: %s", parentID, parent.GetStatus().Word())}, nil
		case parent.GetCancelRequested():
			return &daguhav1.EnqueueOutcome{RunId: run.GetId(), Conflict: fmt.Sprintf("parent run %q is being cancelled", parentID)}, nil
		}
	}
	stored := copyRun(run)
	stored.Status = statusQueued
	stored.SelectorKey = SelectorKey(run.GetDag().GetWorkerSelector())
	stored.CreateIndex = index
	stored.ModifyIndex = index
	stored.Attempt, stored.WorkerId, stored.FencingToken = 0, "", 0
	if err := reads.insert(stored); err != nil {
		return nil, fmt.Errorf("enqueue %q: %w", run.GetId(), err)
	}
	pending.add(stored.GetSelectorKey(), stored.GetDag().GetWorkerSelector(), 1)
	return &daguhav1.EnqueueOutcome{RunId: run.GetId(), Created: true}, nil
}

func commitWithIndex(txn *memdb.Txn, index uint64, tables ...string) error {
	for _, table := range tables {
		if err := bumpIndex(txn, table, index); err != nil {
			return err
		}
	}
	txn.Commit()
	return nil
}

func getRun(txn *memdb.Txn, id string) (*daguhav1.Run, error) {
	raw, err := txn.First(tableRuns, "id", id)
	if err != nil {
		return nil, fmt.Errorf("read run %q: %w", id, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*daguhav1.Run), nil
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
	return getRun(s.db.Txn(false), id)
}

// EachRun calls fn for every run in id order until fn returns false.
func (s *StateStore) EachRun(fn func(*daguhav1.Run) bool) error {
	return s.eachRunIn("id", nil, fn)
}

// EachRunning calls fn for every running run, by worker, optionally only
// those of one worker.
func (s *StateStore) EachRunning(workerID string, fn func(*daguhav1.Run) bool) error {
	var args []interface{}
	if workerID != "" {
		args = []interface{}{workerID}
	}
	return s.eachRunIn("running_prefix", args, fn)
}

// RunningInQueue counts the running runs of a queue (QueueOf): of the
// DAGs that name it, or of the one DAG of that name that names none.
func (s *StateStore) RunningInQueue(queue string) (int, error) {
	iter, err := s.db.Txn(false).Get(tableRuns, "queue_running", queue)
	if err != nil {
		return 0, fmt.Errorf("running runs of queue %q: %w", queue, err)
	}
	n := 0
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		n++
	}
	return n, nil
}

// Children returns the child runs of a run, in id order.
func (s *StateStore) Children(runID string) ([]*daguhav1.Run, error) {
	var children []*daguhav1.Run
	err := s.eachRunIn("parent", []interface{}{runID}, func(run *daguhav1.Run) bool {
		children = append(children, run)
		return true
	})
	return children, err
}

// RunWatch returns the run (nil if none) and a channel closed when its
// record changes, for blocking queries.
func (s *StateStore) RunWatch(id string) (*daguhav1.Run, <-chan struct{}, error) {
	watch, raw, err := s.db.Txn(false).FirstWatch(tableRuns, "id", id)
	if err != nil {
		return nil, nil, fmt.Errorf("read run %q: %w", id, err)
	}
	if raw == nil {
		return nil, watch, nil
	}
	return raw.(*daguhav1.Run), watch, nil
}

// FirstPending returns the oldest queued run with the selector key, or nil.
func (s *StateStore) FirstPending(selectorKey string) (*daguhav1.Run, error) {
	raw, err := s.db.Txn(false).First(tableRuns, "pending_prefix", selectorKey)
	if err != nil {
		return nil, fmt.Errorf("first pending run for %q: %w", selectorKey, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*daguhav1.Run), nil
}

// EachPending calls fn for the queued runs of a selector, oldest first
// (runs created by the same entry in id order).
func (s *StateStore) EachPending(selectorKey string, fn func(*daguhav1.Run) bool) error {
	return s.eachRunIn("pending_prefix", []interface{}{selectorKey}, fn)
}

func (s *StateStore) eachRunIn(index string, args []interface{}, fn func(*daguhav1.Run) bool) error {
	iter, err := s.db.Txn(false).Get(tableRuns, index, args...)
	if err != nil {
		return fmt.Errorf("list runs by %s: %w", index, err)
	}
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		if !fn(raw.(*daguhav1.Run)) {
			break
		}
	}
	return nil
}

// Run inserts a run read from a snapshot into a store being rebuilt. A run
// id seen twice means a damaged snapshot: the second record would replace
// the first but count twice in its selector's pending queue.
//
// A snapshot lists its runs in id order, so an id greater than the one
// before it cannot have been seen; only an id out of that order is looked
// up. The look-up is not only a cost of its own: a read inside memdb's
// write transaction clones the index's radix transaction, which drops the
// set of nodes that transaction already copied, so the next insert copied
// its whole path again (the most of a 1,000,000-run restore's garbage).
func (r *Restore) Run(run *daguhav1.Run) error {
	id := run.GetId()
	if !r.anyRun || id <= r.lastRunID {
		if existing, err := getRun(r.txn, id); err != nil {
			return err
		} else if existing != nil {
			return fmt.Errorf("restore run %q: run %q appears twice in the snapshot", id, id)
		}
	}
	if !r.anyRun || id > r.lastRunID {
		r.lastRunID, r.anyRun = id, true
	}
	if err := r.txn.Insert(tableRuns, run); err != nil {
		return fmt.Errorf("restore run %q: %w", run.GetId(), err)
	}
	if run.GetStatus() == statusQueued {
		r.countPending(run.GetSelectorKey(), run.GetDag().GetWorkerSelector())
	}
	return nil
}
