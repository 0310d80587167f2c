package store

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

func schedulesTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableSchedules,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "DagName"}},
		},
	}
}

// FireSchedules records cron firings and applies them, in one
// transaction. A start slot enqueues its run; a stop slot cancels the runs
// the leader named (those still queued or running); a restart slot does
// both. Each kind of slot keeps the DAG's last fired slot of that kind: a
// firing whose slot is not after it is refused, as that slot (or a later
// one) has fired already, by this leader or an earlier one, and firing it
// again would run or stop it twice.
func (s *StateStore) FireSchedules(index uint64, firings []*daguhav1.Firing) ([]*daguhav1.RunOutcome, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	outcomes := make([]*daguhav1.RunOutcome, 0, len(firings))
	var pending pendingCounts
	for _, firing := range firings {
		name, slot, kind := firing.GetDagName(), firing.GetSlotUnix(), firing.GetKind()
		run := firing.GetRun()
		starts := kind != daguhav1.FiringKind_FIRING_KIND_STOP
		if starts && (run.GetId() == "" || run.GetDagName() != name) {
			return nil, fmt.Errorf("fire schedule of %q at index %d: the run must have an id and be of that DAG", name, index)
		}
		last, err := getSchedule(txn, name)
		if err != nil {
			return nil, err
		}
		record := &daguhav1.ScheduleRecord{DagName: name}
		if last != nil {
			record = proto.Clone(last).(*daguhav1.ScheduleRecord)
		}
		lastSlot := &record.LastSlotUnix
		switch kind {
		case daguhav1.FiringKind_FIRING_KIND_STOP:
			lastSlot = &record.LastStopSlotUnix
		case daguhav1.FiringKind_FIRING_KIND_RESTART:
			lastSlot = &record.LastRestartSlotUnix
		}
		if *lastSlot >= slot {
			outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: run.GetId(),
				Refused: fmt.Sprintf("DAG %q has fired %sslot %d already (last fired %d)", name, kindWord(kind), slot, *lastSlot)})
			continue
		}
		previous := *lastSlot
		*lastSlot = slot
		if kind == daguhav1.FiringKind_FIRING_KIND_START {
			record.LastRunId = run.GetId()
		}
		record.ModifyIndex = index
		if kind == daguhav1.FiringKind_FIRING_KIND_START && run.GetDag().GetSkipIfSuccessful() {
			succeeded, err := succeededSince(txn, name, previous)
			if err != nil {
				return nil, err
			}
			if succeeded != "" {
				// The slot counts as fired, so that it is not tried again.
				record.LastRunId = ""
				if err := txn.Insert(tableSchedules, record); err != nil {
					return nil, fmt.Errorf("fire schedule of %q: %w", name, err)
				}
				outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: run.GetId(),
					Refused: fmt.Sprintf("skipped (skipIfSuccessful): run %s of DAG %q succeeded since the slot before", succeeded, name)})
				continue
			}
		}
		if err := txn.Insert(tableSchedules, record); err != nil {
			return nil, fmt.Errorf("fire schedule of %q: %w", name, err)
		}
		var stopped uint32
		for _, id := range firing.GetStopRunIds() {
			victim, err := getRun(txn, id)
			if err != nil {
				return nil, err
			}
			if victim == nil || victim.GetDagName() != name || (victim.GetStatus() != statusQueued && victim.GetStatus() != statusRunning) {
				continue
			}
			self, err := cancelRun(txn, index, victim, firing.GetNowUnixNano())
			if err != nil {
				return nil, err
			}
			ended, err := cancelDescendants(txn, index, id, firing.GetNowUnixNano())
			if err != nil {
				return nil, err
			}
			if self {
				ended++
			}
			stopped += ended
		}
		if !starts {
			outcomes = append(outcomes, &daguhav1.RunOutcome{Applied: true, EndedCancelled: stopped})
			continue
		}
		enqueued, err := enqueueRun(readsThrough(txn), index, run, &pending)
		if err != nil {
			return nil, err
		}
		if enqueued.GetConflict() != "" || !enqueued.GetCreated() {
			outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: run.GetId(), Refused: "run exists already: " + enqueued.GetConflict(), EndedCancelled: stopped})
			continue
		}
		outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: run.GetId(), Applied: true, EndedCancelled: stopped})
	}
	if err := pending.write(txn); err != nil {
		return nil, err
	}
	if err := commitWithIndex(txn, index, tableSchedules, tableRuns, tableSelectors); err != nil {
		return nil, err
	}
	return outcomes, nil
}

// kindWord names a kind of slot in messages: "" for a start slot.
func kindWord(kind daguhav1.FiringKind) string {
	switch kind {
	case daguhav1.FiringKind_FIRING_KIND_STOP:
		return "stop "
	case daguhav1.FiringKind_FIRING_KIND_RESTART:
		return "restart "
	}
	return ""
}

func getSchedule(txn *memdb.Txn, name string) (*daguhav1.ScheduleRecord, error) {
	raw, err := txn.First(tableSchedules, "id", name)
	if err != nil {
		return nil, fmt.Errorf("read schedule of %q: %w", name, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*daguhav1.ScheduleRecord), nil
}

// Schedule returns the last firing recorded for a DAG, or nil.
func (s *StateStore) Schedule(name string) (*daguhav1.ScheduleRecord, error) {
	return getSchedule(s.db.Txn(false), name)
}

// EachSchedule calls fn for every schedule record in DAG name order.
func (s *StateStore) EachSchedule(fn func(*daguhav1.ScheduleRecord) bool) error {
	iter, err := s.db.Txn(false).Get(tableSchedules, "id")
	if err != nil {
		return fmt.Errorf("list schedules: %w", err)
	}
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		if !fn(raw.(*daguhav1.ScheduleRecord)) {
			break
		}
	}
	return nil
}

// Schedule inserts a schedule record read from a snapshot.
func (r *Restore) Schedule(record *daguhav1.ScheduleRecord) error {
	if existing, err := getSchedule(r.txn, record.GetDagName()); err != nil {
		return err
	} else if existing != nil {
		return fmt.Errorf("restore schedule of %q: it appears twice in the snapshot", record.GetDagName())
	}
	if err := r.txn.Insert(tableSchedules, record); err != nil {
		return fmt.Errorf("restore schedule of %q: %w", record.GetDagName(), err)
	}
	return nil
}

// succeededSince is the id of the DAG's latest run (by start) when it
// succeeded and started after the unix second since, else "": Dagu's
// skipIfSuccessful, which skips a scheduled run when the DAG already
// succeeded since its previous slot (run by hand, say). It reads every
// run, and runs only for the slots of DAGs that ask for it.
func succeededSince(txn *memdb.Txn, dag string, since int64) (string, error) {
	iter, err := txn.Get(tableRuns, "id")
	if err != nil {
		return "", fmt.Errorf("runs of %q: %w", dag, err)
	}
	var latest *daguhav1.Run
	for raw := iter.Next(); raw != nil; raw = iter.Next() {
		run := raw.(*daguhav1.Run)
		if run.GetDagName() != dag || run.GetStartedAtUnixNano() == 0 {
			continue
		}
		if latest == nil || run.GetStartedAtUnixNano() > latest.GetStartedAtUnixNano() {
			latest = run
		}
	}
	if latest == nil || latest.GetStatus() != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED ||
		latest.GetStartedAtUnixNano() <= since*int64(1e9) {
		return "", nil
	}
	return latest.GetId(), nil
}
