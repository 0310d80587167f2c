package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/robfig/cron/v3"

	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// Catch-up rules: which of the slots a DAG missed while no leader was
// firing (an election, the whole cluster down) fire when one is back.
const (
	// CatchupLatest fires the latest missed slot only (the default).
	CatchupLatest = "latest"
	// CatchupAll fires every missed slot within the DAG's catchupWindow,
	// oldest first.
	CatchupAll = "all"
	// CatchupNone fires no missed slot; the schedule resumes at the next.
	CatchupNone = "none"
)

// DefaultCatchupWindow bounds CatchupAll when the DAG sets no window.
const DefaultCatchupWindow = time.Hour

// lateGrace is how late a slot may be found due and still count as on
// time: the scheduler looks every ScheduleTick, and a slot found due
// within this grace is fired under every catch-up rule.
const lateGrace = 2 * time.Second

// scheduleNamespace makes the ids of scheduled runs: a name-based UUID of
// (DAG, slot), so whichever leader fires a slot, its run has one id.
var scheduleNamespace = uuid.MustParse("0d8b5a2e-3f47-4f0c-9a61-5c3e2b7d9f18")

// ScheduledRunID returns the id of the run a slot of a DAG's schedule starts.
func ScheduledRunID(dag string, slot time.Time) string {
	return uuid.NewSHA1(scheduleNamespace, []byte(fmt.Sprintf("%s\x00%d", dag, slot.Unix()))).String()
}

// DueSlots returns the slots of the schedules that fall in (after, now],
// oldest first, after the catch-up rule has dropped the missed ones it
// drops. A slot is missed when it is older than now by more than the grace.
func DueSlots(schedules []cron.Schedule, after, now time.Time, catchup string, window time.Duration) []time.Time {
	if !now.After(after) {
		return nil
	}
	if window <= 0 {
		window = DefaultCatchupWindow
	}
	// Never walk further back than the window: a DAG last fired a year
	// ago must not make the scheduler iterate a year of seconds.
	from := after
	if limit := now.Add(-window); from.Before(limit) {
		from = limit
	}
	seen := map[int64]bool{}
	var slots []time.Time
	for _, schedule := range schedules {
		for t := schedule.Next(from); !t.IsZero() && !t.After(now); t = schedule.Next(t) {
			if !seen[t.Unix()] {
				seen[t.Unix()] = true
				slots = append(slots, t)
			}
			if len(slots) > 100_000 {
				break
			}
		}
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i].Before(slots[j]) })
	onTime := func(t time.Time) bool { return now.Sub(t) <= lateGrace }
	switch catchup {
	case CatchupAll:
		return slots
	case CatchupNone:
		var kept []time.Time
		for _, t := range slots {
			if onTime(t) {
				kept = append(kept, t)
			}
		}
		return kept
	default:
		if len(slots) == 0 {
			return nil
		}
		// The latest slot, and any other that is on time (two schedules
		// of one DAG may both be due in the same tick).
		latest := slots[len(slots)-1]
		var kept []time.Time
		for _, t := range slots[:len(slots)-1] {
			if onTime(t) {
				kept = append(kept, t)
			}
		}
		return append(kept, latest)
	}
}

// ScheduleTick is how often the leader's scheduler looks for due slots.
const ScheduleTick = 250 * time.Millisecond

// scheduler fires the cron slots of the stored DAGs while this server
// leads. It keeps nothing that matters in memory: the last fired slot of
// each DAG is in the replicated state, so a new leader goes on from it.
type scheduler struct {
	backend Backend
	now     func() time.Time
	logger  *slog.Logger
	// parsed caches each DAG's parsed schedules by content hash.
	parsed map[string]parsedSchedules
	// bad remembers DAGs whose schedule does not parse, to log them once.
	bad map[string]string
	// metrics counts the runs the schedules enqueue (nil: not counted).
	metrics Observer
	// zone is the zone of schedules without CRON_TZ= (nil: local).
	zone *time.Location
}

type parsedSchedules struct {
	hash   string
	byKind map[daguhav1.FiringKind][]cron.Schedule
}

func newScheduler(backend Backend, now func() time.Time, logger *slog.Logger) *scheduler {
	return &scheduler{backend: backend, now: now, logger: logger.With("component", "scheduler"),
		parsed: map[string]parsedSchedules{}, bad: map[string]string{}}
}

func (s *scheduler) run(ctx context.Context) {
	ticker := time.NewTicker(ScheduleTick)
	defer ticker.Stop()
	for {
		if err := s.tick(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("firing schedules failed; retrying", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// tick fires every slot due now, in one Raft command.
func (s *scheduler) tick(ctx context.Context) error {
	now := s.now()
	state := s.backend.State()
	var firings []*daguhav1.Firing
	err := state.EachDag(func(stored *daguhav1.StoredDag) bool {
		firings = append(firings, s.due(state, stored, now)...)
		return true
	})
	if err != nil || len(firings) == 0 {
		return err
	}
	result, _, err := s.backend.Apply(ctx, fsm.FireSchedulesType, &daguhav1.FireSchedulesCommand{Firings: firings})
	if err != nil {
		return err
	}
	for i, outcome := range result.(*daguhav1.FireSchedulesResult).GetOutcomes() {
		f := firings[i]
		if s.metrics != nil {
			s.metrics.RunsCancelledAtOnce(outcome.GetEndedCancelled())
		}
		if outcome.GetApplied() {
			if s.metrics != nil && f.GetRun() != nil {
				s.metrics.RunEnqueued()
			}
			s.logger.Info("schedule fired", "dag", f.GetDagName(), "kind", strings.ToLower(strings.TrimPrefix(f.GetKind().String(), "FIRING_KIND_")),
				"slot", time.Unix(f.GetSlotUnix(), 0).UTC().Format(time.RFC3339), "run", f.GetRun().GetId(), "stopped", len(f.GetStopRunIds()))
		} else {
			s.logger.Debug("schedule slot not fired", "dag", f.GetDagName(), "slot", f.GetSlotUnix(), "reason", outcome.GetRefused())
		}
	}
	return nil
}

// due returns the firings of one DAG that are due at now: its start
// slots, and the stop and restart slots of Dagu's schedule map.
func (s *scheduler) due(state *store.StateStore, stored *daguhav1.StoredDag, now time.Time) []*daguhav1.Firing {
	spec := stored.GetSpec()
	if len(spec.GetSchedule())+len(spec.GetStopSchedule())+len(spec.GetRestartSchedule()) == 0 {
		delete(s.parsed, spec.GetName())
		return nil
	}
	parsed, ok := s.schedules(stored)
	if !ok {
		return nil
	}
	record, err := state.Schedule(spec.GetName())
	if err != nil {
		s.logger.Warn("read schedule record", "dag", spec.GetName(), "error", err)
		return nil
	}
	var firings []*daguhav1.Firing
	for _, kind := range []daguhav1.FiringKind{daguhav1.FiringKind_FIRING_KIND_START, daguhav1.FiringKind_FIRING_KIND_STOP, daguhav1.FiringKind_FIRING_KIND_RESTART} {
		schedules := parsed.byKind[kind]
		if len(schedules) == 0 {
			continue
		}
		// Slots fire after the last one of their kind fired; a DAG that
		// never fired starts from when it was stored, the same moment
		// for every leader.
		after := time.Unix(0, stored.GetUpdatedAtUnixNano())
		if last := lastSlot(record, kind); last != 0 {
			after = time.Unix(last, 0)
		}
		at := now
		if s.zone != nil {
			// A schedule without CRON_TZ= is read in the zone of the
			// times it is given.
			after, at = after.In(s.zone), now.In(s.zone)
		}
		slots := DueSlots(schedules, after, at, spec.GetCatchup(), time.Duration(spec.GetCatchupWindowSec())*time.Second)
		if len(slots) == 0 {
			continue
		}
		// Stopping needs only the latest slot: the runs are stopped
		// once, whatever the slots missed.
		if kind != daguhav1.FiringKind_FIRING_KIND_START {
			slots = slots[len(slots)-1:]
		}
		for _, slot := range slots {
			firing := &daguhav1.Firing{DagName: spec.GetName(), SlotUnix: slot.Unix(), Kind: kind, NowUnixNano: now.UnixNano()}
			if kind != daguhav1.FiringKind_FIRING_KIND_START {
				firing.StopRunIds = s.activeRuns(state, spec.GetName())
			}
			if kind != daguhav1.FiringKind_FIRING_KIND_STOP {
				id := ScheduledRunID(spec.GetName(), slot)
				firing.Run = &daguhav1.Run{
					Id:                 id,
					DagName:            spec.GetName(),
					RootDagRunName:     spec.GetName(), // a scheduled run is its own root, as an enqueued one is
					RootDagRunId:       id,
					EnqueuedAtUnixNano: now.UnixNano(),
					Dag:                spec,
					LocalDags:          stored.GetLocalDags(),
					ScheduleSlotUnix:   slot.Unix(),
				}
			}
			firings = append(firings, firing)
		}
	}
	return firings
}

// lastSlot is the last fired slot of a kind, 0 for none.
func lastSlot(record *daguhav1.ScheduleRecord, kind daguhav1.FiringKind) int64 {
	switch kind {
	case daguhav1.FiringKind_FIRING_KIND_STOP:
		return record.GetLastStopSlotUnix()
	case daguhav1.FiringKind_FIRING_KIND_RESTART:
		return record.GetLastRestartSlotUnix()
	}
	return record.GetLastSlotUnix()
}

// activeRuns are the DAG's running runs, which a stop or restart slot
// stops (Dagu stops the DAG's running run; queued ones wait their turn).
func (s *scheduler) activeRuns(state *store.StateStore, dag string) []string {
	var ids []string
	_ = state.EachRunning("", func(run *daguhav1.Run) bool {
		if run.GetDagName() == dag {
			ids = append(ids, run.GetId())
		}
		return true
	})
	return ids
}

func (s *scheduler) schedules(stored *daguhav1.StoredDag) (parsedSchedules, bool) {
	name := stored.GetSpec().GetName()
	if cached, ok := s.parsed[name]; ok && cached.hash == stored.GetContentHash() {
		return cached, true
	}
	parsed := parsedSchedules{hash: stored.GetContentHash(), byKind: map[daguhav1.FiringKind][]cron.Schedule{}}
	spec := stored.GetSpec()
	for kind, exprs := range map[daguhav1.FiringKind][]string{
		daguhav1.FiringKind_FIRING_KIND_START:   spec.GetSchedule(),
		daguhav1.FiringKind_FIRING_KIND_STOP:    spec.GetStopSchedule(),
		daguhav1.FiringKind_FIRING_KIND_RESTART: spec.GetRestartSchedule(),
	} {
		for _, expr := range exprs {
			schedule, err := dagfile.ParseSchedule(expr)
			if err != nil {
				// Pushed DAGs are validated; this is a DAG stored by an
				// older or a broken client. Say so once per content.
				if s.bad[name] != stored.GetContentHash() {
					s.logger.Error("DAG schedule does not parse; the DAG is not scheduled", "dag", name, "schedule", expr, "error", err)
					s.bad[name] = stored.GetContentHash()
				}
				return parsedSchedules{}, false
			}
			parsed.byKind[kind] = append(parsed.byKind[kind], schedule)
		}
	}
	s.parsed[name] = parsed
	return parsed, true
}
