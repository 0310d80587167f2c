package store_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// builtByInserts is a store with a record in every table and in every
// index of the runs: queued runs on three selectors, running runs on two
// workers and two queues, children of a running parent, ended runs,
// workers, DAGs, a schedule and the cluster meta.
func builtByInserts(t *testing.T) *store.StateStore {
	t.Helper()
	s := newStore(t)
	if err := s.RegisterWorkers(1, []*daguhav1.Worker{{Id: "w1", Labels: map[string]string{"gpu": "true"}}, {Id: "w2"}}); err != nil {
		t.Fatal(err)
	}
	selectors := []map[string]string{nil, {"gpu": "true"}, {"gpu": "true", "zone": "a"}}
	index := uint64(2)
	for batch := 0; batch < 6; batch++ {
		var runs []*daguhav1.Run
		for i := 0; i < 40; i++ {
			n := batch*40 + i
			dag := &daguhav1.DagSpec{Name: fmt.Sprintf("d%d", n%4), WorkerSelector: selectors[n%3]}
			if n%5 == 0 {
				dag.Queue = "shared"
			}
			// Ids out of the order they are enqueued in, so the pending
			// index's order is not the id order.
			runs = append(runs, &daguhav1.Run{Id: fmt.Sprintf("run-%03d", (n*37)%240), DagName: dag.GetName(), Dag: dag, EnqueuedAtUnixNano: int64(n)})
		}
		enqueue(t, s, index, runs...)
		index++
	}
	var grants []*daguhav1.Grant
	for i := 0; i < 30; i++ {
		grants = append(grants, &daguhav1.Grant{RunId: fmt.Sprintf("run-%03d", i*3), WorkerId: []string{"w1", "w2"}[i%2], Attempt: 1, MaxActiveRuns: 100, NowUnixNano: int64(index)})
	}
	outcomes, err := s.GrantLeases(index, grants)
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]uint64{}
	for _, o := range outcomes {
		if o.GetGranted() {
			tokens[o.GetRunId()] = o.GetFencingToken()
		}
	}
	index++
	var children []*daguhav1.Run
	for i := 0; i < 5; i++ {
		children = append(children, &daguhav1.Run{Id: fmt.Sprintf("child-%d", i), DagName: "sub", ParentDagRunId: "run-003", RootDagRunId: "run-003",
			Dag: &daguhav1.DagSpec{Name: "sub"}})
	}
	enqueue(t, s, index, children...)
	index++
	var finishes []*daguhav1.Finish
	for i := 0; i < 30; i += 4 {
		id := fmt.Sprintf("run-%03d", i*3)
		finishes = append(finishes, &daguhav1.Finish{RunId: id, FencingToken: tokens[id], Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, NowUnixNano: int64(index)})
	}
	if _, err := s.FinishRuns(index, finishes); err != nil {
		t.Fatal(err)
	}
	index++
	if _, err := s.PutDags(index, []*daguhav1.StoredDag{{Spec: &daguhav1.DagSpec{Name: "d0"}}, {Spec: &daguhav1.DagSpec{Name: "d1"}}}, 1); err != nil {
		t.Fatal(err)
	}
	index++
	if _, err := s.FireSchedules(index, []*daguhav1.Firing{{DagName: "d0", SlotUnix: 60, Run: &daguhav1.Run{Id: "scheduled", DagName: "d0", Dag: &daguhav1.DagSpec{Name: "d0"}}}}); err != nil {
		t.Fatal(err)
	}
	index++
	if _, err := s.SetClusterMeta(index, &daguhav1.ClusterMeta{SigningKey: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	return s
}

// restoreOf rebuilds s through a Restore, its runs in the order given.
func restoreOf(t *testing.T, s *store.StateStore, order func([]*daguhav1.Run)) (*store.StateStore, error) {
	t.Helper()
	r, err := store.NewRestore()
	if err != nil {
		t.Fatal(err)
	}
	var runs []*daguhav1.Run
	_ = s.EachRun(func(run *daguhav1.Run) bool { runs = append(runs, run); return true })
	order(runs)
	var failed error
	fail := func(err error) bool { failed = err; return err == nil }
	_ = s.EachTableIndex(func(e *daguhav1.TableIndex) bool { return fail(r.TableIndex(e)) })
	for _, run := range runs {
		if failed == nil {
			fail(r.Run(run))
		}
	}
	_ = s.EachWorker(func(w *daguhav1.Worker) bool { return failed == nil && fail(r.Worker(w)) })
	_ = s.EachDag(func(d *daguhav1.StoredDag) bool { return failed == nil && fail(r.Dag(d)) })
	_ = s.EachSchedule(func(rec *daguhav1.ScheduleRecord) bool { return failed == nil && fail(r.Schedule(rec)) })
	if failed == nil {
		fail(r.ClusterMeta(s.ClusterMeta()))
	}
	if failed != nil {
		r.Abort()
		return nil, failed
	}
	return r.Commit()
}

// A restored store answers every query by every index of every table as
// the store it was taken from does, whether the runs come in id order (as
// a snapshot lists them, where Run skips the duplicate look-up) or not.
func TestRestoreEqualsInsertsThroughEveryIndex(t *testing.T) {
	built := builtByInserts(t)
	for _, tc := range []struct {
		name  string
		order func([]*daguhav1.Run)
	}{
		{"in id order", func([]*daguhav1.Run) {}},
		{"in reverse", slices.Reverse[[]*daguhav1.Run]},
		{"interleaved", func(runs []*daguhav1.Run) {
			slices.SortStableFunc(runs, func(a, b *daguhav1.Run) int {
				return int(a.GetEnqueuedAtUnixNano()%7) - int(b.GetEnqueuedAtUnixNano()%7)
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restored, err := restoreOf(t, built, tc.order)
			if err != nil {
				t.Fatal(err)
			}
			if err := store.SameContents(built, restored); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// SameContents is what the test above trusts: it sees a missing run and
// a changed one.
func TestSameContentsSeesDifferences(t *testing.T) {
	built := builtByInserts(t)
	if err := store.SameContents(built, built); err != nil {
		t.Fatalf("a store differs from itself: %v", err)
	}
	for _, tc := range []struct {
		name, want string
		change     func(*daguhav1.Run) *daguhav1.Run
	}{
		{"a run left out", "runs by id", func(run *daguhav1.Run) *daguhav1.Run {
			if run.GetId() == "run-100" {
				return nil
			}
			return run
		}},
		{"a run changed", "runs by id", func(run *daguhav1.Run) *daguhav1.Run {
			if run.GetId() == "run-100" {
				run = &daguhav1.Run{Id: run.GetId(), DagName: "other", Status: run.GetStatus(), SelectorKey: run.GetSelectorKey(), Dag: run.GetDag(), CreateIndex: run.GetCreateIndex()}
			}
			return run
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := store.NewRestore()
			if err != nil {
				t.Fatal(err)
			}
			_ = built.EachTableIndex(func(e *daguhav1.TableIndex) bool { return r.TableIndex(e) == nil })
			_ = built.EachRun(func(run *daguhav1.Run) bool {
				if run = tc.change(run); run != nil {
					if err := r.Run(run); err != nil {
						t.Fatal(err)
					}
				}
				return true
			})
			_ = built.EachWorker(func(w *daguhav1.Worker) bool { return r.Worker(w) == nil })
			_ = built.EachDag(func(d *daguhav1.StoredDag) bool { return r.Dag(d) == nil })
			_ = built.EachSchedule(func(rec *daguhav1.ScheduleRecord) bool { return r.Schedule(rec) == nil })
			_ = r.ClusterMeta(built.ClusterMeta())
			other, err := r.Commit()
			if err != nil {
				t.Fatal(err)
			}
			if err := store.SameContents(built, other); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("difference: %v, want one in %q", err, tc.want)
			}
		})
	}
}

// A run that comes twice is refused also when the copies are apart and
// out of id order, where Run cannot tell by the order alone.
func TestRestoreRejectsARunTwiceOutOfOrder(t *testing.T) {
	r, err := store.NewRestore()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Abort()
	for _, id := range []string{"b", "c", "a"} {
		if err := r.Run(&daguhav1.Run{Id: id, DagName: "d"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Run(&daguhav1.Run{Id: "b", DagName: "d"}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("b again after a: %v", err)
	}
}
