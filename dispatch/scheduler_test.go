package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

func mustSchedules(t *testing.T, exprs ...string) []cron.Schedule {
	t.Helper()
	var out []cron.Schedule
	for _, e := range exprs {
		s, err := dagfile.ParseSchedule(e)
		if err != nil {
			t.Fatalf("parse %q: %v", e, err)
		}
		out = append(out, s)
	}
	return out
}

func unixes(slots []time.Time) []int64 {
	var out []int64
	for _, s := range slots {
		out = append(out, s.Unix())
	}
	return out
}

func TestDueSlotsFollowTheCatchupRule(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	everySecond := mustSchedules(t, "* * * * * *")
	cases := []struct {
		name       string
		after, now time.Duration // from base
		catchup    string
		window     time.Duration
		want       []int64 // seconds after base
	}{
		{"nothing is due before the next slot", 0, 900 * time.Millisecond, "", 0, nil},
		{"the next slot is due", 0, 1100 * time.Millisecond, "", 0, []int64{1}},
		{"two slots on time both fire", 0, 2100 * time.Millisecond, "", 0, []int64{1, 2}},
		// Slot 9 is 1.1 s late, within the grace: it is not a missed slot.
		{"latest: of the missed slots only the last fires", 0, 10*time.Second + 100*time.Millisecond, dispatch.CatchupLatest, 0, []int64{9, 10}},
		{"default is latest", 0, 10*time.Second + 100*time.Millisecond, "", 0, []int64{9, 10}},
		{"all: every missed slot fires", 0, 5*time.Second + 100*time.Millisecond, dispatch.CatchupAll, 0, []int64{1, 2, 3, 4, 5}},
		{"all: only within the window", 0, 10*time.Second + 100*time.Millisecond, dispatch.CatchupAll, 3 * time.Second, []int64{8, 9, 10}},
		{"none: missed slots are skipped, on-time ones fire", 0, 10*time.Second + 100*time.Millisecond, dispatch.CatchupNone, 0, []int64{9, 10}},
		{"a slot at 'after' itself is not due again", 5 * time.Second, 5*time.Second + 500*time.Millisecond, "", 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := dispatch.DueSlots(everySecond, base.Add(tc.after), base.Add(tc.now), tc.catchup, tc.window)
			var want []int64
			for _, s := range tc.want {
				want = append(want, base.Unix()+s)
			}
			if gotU := unixes(got); len(gotU) != len(want) || (len(want) > 0 && !equal(gotU, want)) {
				t.Fatalf("due %v, want %v", gotU, want)
			}
		})
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDueSlotsOfSeveralSchedulesAndTimeZones(t *testing.T) {
	// 09:00 in Berlin is 08:00 UTC in winter.
	berlin := mustSchedules(t, "CRON_TZ=Europe/Berlin 0 9 * * *", "30 8 * * *")
	after := time.Date(2026, 1, 10, 7, 0, 0, 0, time.UTC)
	now := time.Date(2026, 1, 10, 8, 0, 1, 0, time.UTC)
	got := dispatch.DueSlots(berlin, after, now, dispatch.CatchupAll, 0)
	if len(got) != 1 || !got[0].Equal(time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)) {
		t.Fatalf("due %v; want 08:00 UTC (09:00 Berlin)", got)
	}
	now = time.Date(2026, 1, 10, 8, 30, 1, 0, time.UTC)
	got = dispatch.DueSlots(berlin, after, now, dispatch.CatchupAll, 0)
	if len(got) != 2 {
		t.Fatalf("due %v; want both schedules' slots", got)
	}
	if _, err := dagfile.ParseSchedule("61 * * * *"); err == nil {
		t.Fatal("a bad minute parsed")
	}
}

// The leader's scheduler fires each slot of a stored DAG once, with the
// run id derived from (DAG, slot), driven by a fake clock.
func TestLeaderFiresEachSlotOnceByItsClock(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	fake := &clock{now: start}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Stored before the dispatcher starts, at the fake start time.
	if _, _, err := leader.Server.Apply(ctx, fsm.PutDagsType, &daguhav1.PutDagsCommand{NowUnixNano: start.UnixNano(), Dags: []*daguhav1.StoredDag{{
		Spec:        &daguhav1.DagSpec{Name: "tick", Schedule: []string{"*/2 * * * * *"}},
		ContentHash: "h1",
	}}}); err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(backend{leader.Server}, dispatch.Config{Now: fake.Now, LeaseTTL: time.Hour})
	leader.Server.RegisterLeaderDuty("dispatch", d.RunLeader)

	fired := func() map[int64]string {
		slots := map[int64]string{}
		_ = leader.Server.FSM().State().EachRun(func(r *daguhav1.Run) bool {
			if r.GetScheduleSlotUnix() != 0 {
				if _, dup := slots[r.GetScheduleSlotUnix()]; dup {
					t.Errorf("slot %d has two runs", r.GetScheduleSlotUnix())
				}
				slots[r.GetScheduleSlotUnix()] = r.GetId()
			}
			return true
		})
		return slots
	}
	// Advance the fake clock slot by slot; each even second fires once.
	for i := 1; i <= 5; i++ {
		fake.Advance(time.Second)
		want := i / 2
		clustertest.WaitFor(t, 10*time.Second, "the slot to fire", func() (bool, string) {
			got := fired()
			return len(got) == want, "fired " + itoa(len(got))
		})
	}
	for slot, id := range fired() {
		if id != dispatch.ScheduledRunID("tick", time.Unix(slot, 0)) {
			t.Fatalf("slot %d has run id %s, not the derived one", slot, id)
		}
		if (slot-start.Unix())%2 != 0 {
			t.Fatalf("slot %d is not on the schedule", slot)
		}
		// A scheduled run is the root of its hierarchy, as an enqueued
		// one is: root filters and the Workers page find it by its id.
		run, err := leader.Server.FSM().State().Run(id)
		if err != nil || run == nil {
			t.Fatalf("run %s: %v", id, err)
		}
		if run.GetRootDagRunId() != id || run.GetRootDagRunName() != "tick" {
			t.Fatalf("scheduled run %s has root %q/%q, want itself (tick/%s)", id, run.GetRootDagRunName(), run.GetRootDagRunId(), id)
		}
	}
	record, _ := leader.Server.FSM().State().Schedule("tick")
	if record.GetLastSlotUnix() != start.Unix()+4 {
		t.Fatalf("last fired slot %d, want %d", record.GetLastSlotUnix(), start.Unix()+4)
	}
}

func itoa(n int) string { return time.Duration(n).String() }

// With a schedule zone (Dagu's tz), a schedule without CRON_TZ= is read
// in that zone; one with CRON_TZ= keeps its own.
func TestScheduleZoneReadsSchedulesWithoutCronTZ(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo") // UTC+9, no summer time
	if err != nil {
		t.Fatal(err)
	}
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	// 08:59:58 in Tokyo, 23:59:58 UTC the day before.
	start := time.Date(2026, 3, 1, 23, 59, 58, 0, time.UTC)
	fake := &clock{now: start}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := leader.Server.Apply(ctx, fsm.PutDagsType, &daguhav1.PutDagsCommand{NowUnixNano: start.UnixNano(), Dags: []*daguhav1.StoredDag{
		{Spec: &daguhav1.DagSpec{Name: "tokyo-nine", Schedule: []string{"0 9 * * *"}}, ContentHash: "h1"},
		{Spec: &daguhav1.DagSpec{Name: "utc-nine", Schedule: []string{"CRON_TZ=UTC 0 9 * * *"}}, ContentHash: "h2"},
	}}); err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(backend{leader.Server}, dispatch.Config{Now: fake.Now, LeaseTTL: time.Hour, ScheduleZone: tokyo})
	leader.Server.RegisterLeaderDuty("dispatch", d.RunLeader)
	fake.Advance(3 * time.Second)
	var fired []*daguhav1.Run
	clustertest.WaitFor(t, 10*time.Second, "09:00 in Tokyo to fire", func() (bool, string) {
		fired = nil
		_ = leader.Server.FSM().State().EachRun(func(r *daguhav1.Run) bool {
			fired = append(fired, r)
			return true
		})
		return len(fired) > 0, "nothing fired"
	})
	want := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	if len(fired) != 1 || fired[0].GetDagName() != "tokyo-nine" || fired[0].GetScheduleSlotUnix() != want.Unix() {
		for _, r := range fired {
			t.Logf("fired %s at %s", r.GetDagName(), time.Unix(r.GetScheduleSlotUnix(), 0).UTC())
		}
		t.Fatalf("want only tokyo-nine, at %s (09:00 in Tokyo)", want)
	}
}

// The leader's side of dispatch is a list of named duties, each its own
// leader duty: the cron scheduler fires with the lease duty not running
// (polls are refused as not the leader's), so no duty hides inside
// another.
func TestLeaderDutiesAreAListOfIndependentDuties(t *testing.T) {
	names := func(duties []dispatch.Duty) string {
		var out []string
		for _, d := range duties {
			out = append(out, d.Name)
		}
		return strings.Join(out, ",")
	}
	if got := names(dispatch.New(nil, dispatch.Config{}).LeaderDuties()); got != "leases,schedule" {
		t.Fatalf("duties without a run retention: %s", got)
	}
	if got := names(dispatch.New(nil, dispatch.Config{RunRetention: time.Hour}).LeaderDuties()); got != "leases,schedule,prune" {
		t.Fatalf("duties with a run retention: %s", got)
	}

	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	fake := &clock{now: start}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := leader.Server.Apply(ctx, fsm.PutDagsType, &daguhav1.PutDagsCommand{NowUnixNano: start.UnixNano(), Dags: []*daguhav1.StoredDag{{
		Spec:        &daguhav1.DagSpec{Name: "tick", Schedule: []string{"* * * * * *"}},
		ContentHash: "h1",
	}}}); err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(backend{leader.Server}, dispatch.Config{Now: fake.Now, LeaseTTL: time.Hour})
	for _, duty := range d.LeaderDuties() {
		if duty.Name == "schedule" {
			leader.Server.RegisterLeaderDuty(duty.Name, duty.Run)
		}
	}
	fake.Advance(time.Second)
	clustertest.WaitFor(t, 10*time.Second, "the schedule duty to fire a slot", func() (bool, string) {
		n := 0
		_ = leader.Server.FSM().State().EachRun(func(*daguhav1.Run) bool { n++; return true })
		return n > 0, "runs " + itoa(n)
	})
	if _, err := d.Poll(ctx, &daguhav1.WorkerInfo{Id: "w1", MaxActiveRuns: 1}, 0); !errors.Is(err, dispatch.ErrNotLeader) {
		t.Fatalf("poll with only the schedule duty running: %v, want ErrNotLeader", err)
	}
}

// Dagu's schedule map: a stop slot asks the DAG's running runs to stop; a
// restart slot does the same and starts a new run for its slot; each kind
// of slot fires once, recorded in the replicated state.
func TestStopAndRestartSlotsStopTheDagsRunningRuns(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	fake := &clock{now: start}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := dispatch.New(backend{leader.Server}, dispatch.Config{Now: fake.Now, LeaseTTL: time.Hour})
	leader.Server.RegisterLeaderDuty("dispatch", d.RunLeader)
	state := func() *store.StateStore { return leader.Server.FSM().State() }

	spec := &daguhav1.DagSpec{Name: "svc", Steps: []*daguhav1.StepSpec{{Name: "s", Command: "true"}}}
	running := func(id string) {
		t.Helper()
		if _, _, err := leader.Server.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{{Id: id, DagName: "svc", Dag: spec}}}); err != nil {
			t.Fatal(err)
		}
		clustertest.WaitFor(t, 10*time.Second, id+" to be granted", func() (bool, string) {
			task, err := d.Poll(ctx, &daguhav1.WorkerInfo{Id: "w", MaxActiveRuns: 10}, 100*time.Millisecond)
			return err == nil && task.GetRun().GetId() == id, fmt.Sprintf("%v %v", task.GetRun().GetId(), err)
		})
	}
	running("r1")
	stored := proto.Clone(spec).(*daguhav1.DagSpec)
	stored.StopSchedule = []string{"*/2 * * * * *"}
	stored.RestartSchedule = []string{"1-59/2 * * * * *"}
	if _, _, err := leader.Server.Apply(ctx, fsm.PutDagsType, &daguhav1.PutDagsCommand{NowUnixNano: start.UnixNano(), Dags: []*daguhav1.StoredDag{{Spec: stored, ContentHash: "h1"}}}); err != nil {
		t.Fatal(err)
	}

	fake.Advance(time.Second) // :01, a restart slot
	restarted := dispatch.ScheduledRunID("svc", start.Add(time.Second))
	clustertest.WaitFor(t, 10*time.Second, "the restart slot to stop r1 and start a run", func() (bool, string) {
		r1, _ := state().Run("r1")
		next, _ := state().Run(restarted)
		return r1.GetCancelRequested() && next != nil, fmt.Sprintf("r1 cancel requested %v, new run %v", r1.GetCancelRequested(), next != nil)
	})
	if next, _ := state().Run(restarted); next.GetScheduleSlotUnix() != start.Unix()+1 || next.GetRootDagRunId() != restarted {
		t.Fatalf("the restart's run: %v", next)
	}

	running("r2")
	fake.Advance(time.Second) // :02, a stop slot
	clustertest.WaitFor(t, 10*time.Second, "the stop slot to stop r2", func() (bool, string) {
		r2, _ := state().Run("r2")
		return r2.GetCancelRequested(), fmt.Sprint(r2.GetStatus())
	})
	record, err := state().Schedule("svc")
	if err != nil || record.GetLastStopSlotUnix() != start.Unix()+2 || record.GetLastRestartSlotUnix() != start.Unix()+1 || record.GetLastSlotUnix() != 0 {
		t.Fatalf("schedule record %v %v", record, err)
	}
	n := 0
	_ = state().EachRun(func(*daguhav1.Run) bool { n++; return true })
	if n != 3 {
		t.Fatalf("%d runs, want r1, r2 and the restart's: a stop slot starts nothing", n)
	}
}
