package store_test

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newStore(t *testing.T) *store.StateStore {
	t.Helper()
	s, err := store.NewStateStore()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func runIDs(t *testing.T, s *store.StateStore, limit int) []string {
	t.Helper()
	var ids []string
	err := s.EachRun(func(r *daguhav1.Run) bool {
		ids = append(ids, r.GetId())
		return limit == 0 || len(ids) < limit
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func enqueue(t *testing.T, s *store.StateStore, index uint64, runs ...*daguhav1.Run) []*daguhav1.EnqueueOutcome {
	t.Helper()
	outcomes, err := s.EnqueueRuns(index, runs)
	if err != nil {
		t.Fatal(err)
	}
	return outcomes
}

var gpu = &daguhav1.DagSpec{WorkerSelector: map[string]string{"gpu": "true"}}

// pending lists a selector's queue in order, with the count the selector
// records for it (-1 when the selector is not listed).
func pending(t *testing.T, s *store.StateStore, key string) (ids []string, count int) {
	t.Helper()
	if err := s.EachPending(key, func(r *daguhav1.Run) bool { ids = append(ids, r.GetId()); return true }); err != nil {
		t.Fatal(err)
	}
	selectors, _, err := s.PendingSelectors()
	if err != nil {
		t.Fatal(err)
	}
	count = -1
	for _, sel := range selectors {
		if sel.Key == key {
			count = int(sel.Pending)
		}
	}
	return ids, count
}

func TestEnqueueBatchIsAllOrNothing(t *testing.T) {
	cases := []struct {
		name string
		runs []*daguhav1.Run
	}{
		{"a run without id last", []*daguhav1.Run{{Id: "good", DagName: "d", Dag: gpu}, {DagName: "d"}}},
		{"a run without id first", []*daguhav1.Run{{DagName: "d"}, {Id: "good", DagName: "d"}}},
		{"a run without id after a retry", []*daguhav1.Run{{Id: "x", DagName: "d"}, {Id: "x", DagName: "d"}, {DagName: "d"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			outcomes, err := s.EnqueueRuns(5, tc.runs)
			if err == nil || !strings.Contains(err.Error(), "run without id") || outcomes != nil {
				t.Fatalf("batch with a run without id: %v, %v", outcomes, err)
			}
			if ids := runIDs(t, s, 0); len(ids) != 0 {
				t.Fatalf("a failed batch left runs behind: %v", ids)
			}
			if selectors, _, _ := s.PendingSelectors(); len(selectors) != 0 {
				t.Fatalf("a failed batch left pending selectors: %v", selectors)
			}
			if s.LatestIndex() != 0 {
				t.Fatalf("a failed batch moved the table indexes to %d", s.LatestIndex())
			}
		})
	}
}

func TestRunsAreListedInIDOrderAndIterationStops(t *testing.T) {
	s := newStore(t)
	enqueue(t, s, 1, &daguhav1.Run{Id: "c", DagName: "d"}, &daguhav1.Run{Id: "a", DagName: "d"})
	enqueue(t, s, 2, &daguhav1.Run{Id: "b", DagName: "d"}, &daguhav1.Run{Id: "aa", DagName: "d"})
	cases := []struct {
		limit int
		want  string
	}{
		{0, "a,aa,b,c"},
		{1, "a"},
		{3, "a,aa,b"},
	}
	for _, tc := range cases {
		if got := strings.Join(runIDs(t, s, tc.limit), ","); got != tc.want {
			t.Fatalf("stopping after %d: runs listed as %s, want %s", tc.limit, got, tc.want)
		}
	}
}

func TestRunReturnsNilForAMissingID(t *testing.T) {
	s := newStore(t)
	enqueue(t, s, 1, &daguhav1.Run{Id: "a", DagName: "d"})
	for _, id := range []string{"missing", "", "a\x00", "A"} {
		if run, err := s.Run(id); run != nil || err != nil {
			t.Fatalf("Run(%q): %v, %v", id, run, err)
		}
	}
	if run, err := s.Run("a"); err != nil || run.GetId() != "a" {
		t.Fatalf("Run(a): %v, %v", run, err)
	}
}

func TestIndexesNeverGoBackwards(t *testing.T) {
	cases := []struct {
		table string
		write func(s *store.StateStore, index uint64) error
	}{
		{"runs", func(s *store.StateStore, index uint64) error {
			_, err := s.EnqueueRuns(index, []*daguhav1.Run{{Id: "run-" + string(rune('a'+index)), DagName: "d"}})
			return err
		}},
		{"workers", func(s *store.StateStore, index uint64) error {
			return s.RegisterWorkers(index, []*daguhav1.Worker{{Id: "w"}})
		}},
		{"selectors", func(s *store.StateStore, index uint64) error {
			_, err := s.EnqueueRuns(index, []*daguhav1.Run{{Id: "sel-" + string(rune('a'+index)), DagName: "d", Dag: gpu}})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.table, func(t *testing.T) {
			s := newStore(t)
			for _, step := range []struct{ write, wantTable, wantLatest uint64 }{
				{10, 10, 10}, {7, 10, 10}, {10, 10, 10}, {12, 12, 12}, {1, 12, 12},
			} {
				if err := tc.write(s, step.write); err != nil {
					t.Fatal(err)
				}
				if got := s.TableIndex(tc.table); got != step.wantTable {
					t.Fatalf("%s index %d after a write at %d, want %d", tc.table, got, step.write, step.wantTable)
				}
				if got := s.LatestIndex(); got != step.wantLatest {
					t.Fatalf("latest index %d after a write at %d, want %d", got, step.write, step.wantLatest)
				}
			}
			if s.TableIndex("no-such-table") != 0 {
				t.Fatal("an unknown table has an index")
			}
		})
	}
}

func TestSnapshotIsPointInTime(t *testing.T) {
	s := newStore(t)
	enqueue(t, s, 1, &daguhav1.Run{Id: "a", DagName: "d", Dag: gpu}, &daguhav1.Run{Id: "b", DagName: "d", Dag: gpu})
	snap := s.Snapshot()
	enqueue(t, s, 2, &daguhav1.Run{Id: "c", DagName: "d", Dag: gpu})
	if _, err := s.GrantLeases(3, []*daguhav1.Grant{{RunId: "a", WorkerId: "w", Attempt: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterWorkers(4, []*daguhav1.Worker{{Id: "w"}}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(runIDs(t, snap, 0), ","); got != "a,b" {
		t.Fatalf("snapshot sees runs %s after later writes, want a,b", got)
	}
	if a, _ := snap.Run("a"); a.GetStatus() != daguhav1.RunStatus_RUN_STATUS_QUEUED || a.GetModifyIndex() != 1 {
		t.Fatalf("snapshot sees run a as %v", a)
	}
	if ids, count := pending(t, snap, "gpu=true"); strings.Join(ids, ",") != "a,b" || count != 2 {
		t.Fatalf("snapshot sees pending %v (count %d), want a,b (2)", ids, count)
	}
	if w, _ := snap.Worker("w"); w != nil {
		t.Fatalf("snapshot sees worker %v registered later", w)
	}
	if snap.LatestIndex() != 1 || snap.TableIndex("runs") != 1 {
		t.Fatalf("snapshot index %d, runs index %d; want 1 and 1", snap.LatestIndex(), snap.TableIndex("runs"))
	}
	// And the live store did move on.
	if ids, count := pending(t, s, "gpu=true"); strings.Join(ids, ",") != "b,c" || count != 2 || s.LatestIndex() != 4 {
		t.Fatalf("live store: pending %v (count %d), latest index %d", ids, count, s.LatestIndex())
	}
}

// Runs enqueued by one entry share their create index; each must still be
// in its pending queue (once, the key was selector+create index, so all
// but one of a batch's runs vanished from the queue while still counted).
func TestPendingQueueHoldsEveryQueuedRun(t *testing.T) {
	cpu := &daguhav1.DagSpec{WorkerSelector: map[string]string{"gpu": "false"}}
	type batch struct {
		index uint64
		runs  []*daguhav1.Run
	}
	cases := []struct {
		name string
		log  []batch
		want map[string][]string // selector key -> queue in order
	}{
		{"one batch, one selector", []batch{{1, []*daguhav1.Run{
			{Id: "c", DagName: "d", Dag: gpu}, {Id: "a", DagName: "d", Dag: gpu}, {Id: "b", DagName: "d", Dag: gpu}}}},
			map[string][]string{"gpu=true": {"a", "b", "c"}}},
		{"one batch, the empty selector", []batch{{1, []*daguhav1.Run{
			{Id: "b", DagName: "d"}, {Id: "a", DagName: "d"}}}},
			map[string][]string{"": {"a", "b"}}},
		{"one batch, mixed selectors", []batch{{4, []*daguhav1.Run{
			{Id: "g1", DagName: "d", Dag: gpu}, {Id: "c1", DagName: "d", Dag: cpu}, {Id: "g2", DagName: "d", Dag: gpu}, {Id: "n1", DagName: "d"}}}},
			map[string][]string{"gpu=true": {"g1", "g2"}, "gpu=false": {"c1"}, "": {"n1"}}},
		{"older entries first, whatever the ids", []batch{
			{1, []*daguhav1.Run{{Id: "z", DagName: "d", Dag: gpu}, {Id: "y", DagName: "d", Dag: gpu}}},
			{2, []*daguhav1.Run{{Id: "a", DagName: "d", Dag: gpu}}},
			{3, []*daguhav1.Run{{Id: "y", DagName: "d", Dag: gpu}, {Id: "b", DagName: "d", Dag: gpu}}}},
			map[string][]string{"gpu=true": {"y", "z", "a", "b"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			for _, b := range tc.log {
				enqueue(t, s, b.index, b.runs...)
			}
			selectors, _, err := s.PendingSelectors()
			if err != nil || len(selectors) != len(tc.want) {
				t.Fatalf("%d pending selectors (%v), want %d", len(selectors), err, len(tc.want))
			}
			for key, want := range tc.want {
				ids, count := pending(t, s, key)
				if !slices.Equal(ids, want) || count != len(want) {
					t.Fatalf("queue %q is %v with count %d, want %v", key, ids, count, want)
				}
				if first, err := s.FirstPending(key); err != nil || first.GetId() != want[0] {
					t.Fatalf("first pending of %q: %v, %v; want %s", key, first, err, want[0])
				}
			}
		})
	}
}

func TestPendingQueueFollowsTheRun(t *testing.T) {
	s := newStore(t)
	enqueue(t, s, 1, &daguhav1.Run{Id: "a", DagName: "d", Dag: gpu}, &daguhav1.Run{Id: "b", DagName: "d", Dag: gpu}, &daguhav1.Run{Id: "c", DagName: "d", Dag: gpu})
	steps := []struct {
		name  string
		apply func() error
		want  []string
	}{
		{"grant b", func() error {
			o, err := s.GrantLeases(2, []*daguhav1.Grant{{RunId: "b", WorkerId: "w", Attempt: 1}})
			if err == nil && !o[0].GetGranted() {
				t.Fatalf("grant refused: %s", o[0].GetRefused())
			}
			return err
		}, []string{"a", "c"}},
		{"reclaim b", func() error {
			_, err := s.ReclaimRuns(3, []*daguhav1.Reclaim{{RunId: "b", FencingToken: 2, Reason: "lost"}})
			return err
		}, []string{"a", "b", "c"}},
		{"cancel a", func() error { _, err := s.CancelRuns(4, []string{"a"}, 0); return err }, []string{"b", "c"}},
		{"grant c and b", func() error {
			_, err := s.GrantLeases(5, []*daguhav1.Grant{{RunId: "c", WorkerId: "w", Attempt: 1}, {RunId: "b", WorkerId: "w", Attempt: 2}})
			return err
		}, nil},
		{"ask c to stop while it runs", func() error {
			o, err := s.CancelRuns(6, []string{"c"}, 0)
			if err == nil && o[0].GetEndedCancelled() != 0 {
				t.Fatalf("a running run counted ended by its cancel: %v", o[0])
			}
			return err
		}, nil},
		{"mark the worker offline", func() error {
			if err := s.RegisterWorkers(7, []*daguhav1.Worker{{Id: "w"}}); err != nil {
				return err
			}
			reclaimed, ended, err := s.MarkWorkersOffline(8, []string{"w"}, "gone", 0)
			if err == nil && (strings.Join(reclaimed, ",") != "b,c" || ended != 1) {
				t.Fatalf("reclaimed %v with %d ended; want b,c with 1 (c, whose cancel was asked)", reclaimed, ended)
			}
			return err
		}, []string{"b"}},
		{"grant b, ask it to stop, reclaim it", func() error {
			if _, err := s.GrantLeases(9, []*daguhav1.Grant{{RunId: "b", WorkerId: "w2", Attempt: 3}}); err != nil {
				return err
			}
			if _, err := s.CancelRuns(10, []string{"b"}, 0); err != nil {
				return err
			}
			o, err := s.ReclaimRuns(11, []*daguhav1.Reclaim{{RunId: "b", FencingToken: 9, Reason: "lost"}})
			if err == nil && (!o[0].GetApplied() || o[0].GetEndedCancelled() != 1) {
				t.Fatalf("reclaim of a run asked to stop: %v; want applied with 1 ended", o[0])
			}
			return err
		}, nil},
	}
	for _, step := range steps {
		if err := step.apply(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		ids, count := pending(t, s, "gpu=true")
		wantCount := len(step.want)
		if wantCount == 0 {
			wantCount = -1 // an empty queue is dropped
		}
		if !slices.Equal(ids, step.want) || count != wantCount {
			t.Fatalf("after %s: queue %v with count %d, want %v", step.name, ids, count, step.want)
		}
	}
}

func TestClusterMetaFirstWriterWins(t *testing.T) {
	s := newStore(t)
	if s.ClusterMeta() != nil {
		t.Fatal("a new store has cluster meta")
	}
	if _, err := s.SetClusterMeta(1, nil); err == nil {
		t.Fatal("settings without a value were accepted")
	}
	if s.ClusterMeta() != nil || s.TableIndex("meta") != 0 {
		t.Fatal("a refused write changed the store")
	}
	first := &daguhav1.ClusterMeta{SigningKey: []byte("first")}
	if got, err := s.SetClusterMeta(2, first); err != nil || !proto.Equal(got, first) {
		t.Fatalf("first write: %v, %v", got, err)
	}
	if got, err := s.SetClusterMeta(3, &daguhav1.ClusterMeta{SigningKey: []byte("second")}); err != nil || !proto.Equal(got, first) {
		t.Fatalf("second write returned %v, %v; want the first settings", got, err)
	}
	if !proto.Equal(s.ClusterMeta(), first) || s.TableIndex("meta") != 2 {
		t.Fatalf("stored %v at index %d; want the first settings at 2", s.ClusterMeta(), s.TableIndex("meta"))
	}
}

func TestRestoreRejectsARunTwice(t *testing.T) {
	restore, err := store.NewRestore()
	if err != nil {
		t.Fatal(err)
	}
	queued := &daguhav1.Run{Id: "a", DagName: "d", Status: daguhav1.RunStatus_RUN_STATUS_QUEUED, SelectorKey: "gpu=true", Dag: gpu}
	if err := restore.Run(queued); err != nil {
		t.Fatal(err)
	}
	if err := restore.Run(queued); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second copy of a run: %v", err)
	}
	restore.Abort()
}

func TestRestoreRebuildsQueues(t *testing.T) {
	restore, err := store.NewRestore()
	if err != nil {
		t.Fatal(err)
	}
	runs := []*daguhav1.Run{
		{Id: "a", DagName: "d", Status: daguhav1.RunStatus_RUN_STATUS_QUEUED, SelectorKey: "gpu=true", Dag: gpu, CreateIndex: 4},
		{Id: "b", DagName: "d", Status: daguhav1.RunStatus_RUN_STATUS_QUEUED, SelectorKey: "gpu=true", Dag: gpu, CreateIndex: 4},
		{Id: "c", DagName: "d", Status: daguhav1.RunStatus_RUN_STATUS_QUEUED, SelectorKey: "gpu=true", Dag: gpu, CreateIndex: 2},
		{Id: "r", DagName: "d", Status: daguhav1.RunStatus_RUN_STATUS_RUNNING, SelectorKey: "gpu=true", Dag: gpu, WorkerId: "w", CreateIndex: 1},
		{Id: "s", DagName: "d", Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, SelectorKey: "gpu=true", Dag: gpu, CreateIndex: 1},
	}
	for _, run := range runs {
		if err := restore.Run(run); err != nil {
			t.Fatal(err)
		}
	}
	if err := restore.TableIndex(&daguhav1.TableIndex{Table: "runs", Index: 9}); err != nil {
		t.Fatal(err)
	}
	s, err := restore.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if ids, count := pending(t, s, "gpu=true"); strings.Join(ids, ",") != "c,a,b" || count != 3 {
		t.Fatalf("restored queue %v (count %d), want c,a,b (3)", ids, count)
	}
	var running []string
	_ = s.EachRunning("w", func(r *daguhav1.Run) bool { running = append(running, r.GetId()); return true })
	if strings.Join(running, ",") != "r" {
		t.Fatalf("restored running runs of w: %v", running)
	}
	if s.TableIndex("runs") != 9 || s.LatestIndex() != 9 {
		t.Fatalf("restored indexes: runs %d, latest %d", s.TableIndex("runs"), s.LatestIndex())
	}
}

func TestRaftStoresSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	stores, err := store.OpenRaftStores(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logs := []*raft.Log{
		{Index: 1, Term: 3, Type: raft.LogCommand, Data: []byte("hello")},
		{Index: 2, Term: 3, Type: raft.LogNoop},
		{Index: 3, Term: 4, Type: raft.LogCommand, Data: []byte{0, 0xff}, Extensions: []byte("ext")},
	}
	if err := stores.Log.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := stores.Log.SetUint64([]byte("CurrentTerm"), 4); err != nil {
		t.Fatal(err)
	}
	if err := stores.Log.Set([]byte("LastVoteCand"), []byte("server-2")); err != nil {
		t.Fatal(err)
	}
	sink, err := stores.Snapshots.Create(raft.SnapshotVersionMax, 3, 4, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write([]byte("snapshot body")); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if err := stores.Close(); err != nil {
		t.Fatal(err)
	}

	reopened, err := store.OpenRaftStores(dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	if first, err := reopened.Log.FirstIndex(); err != nil || first != 1 {
		t.Fatalf("first index after reopen: %d, %v", first, err)
	}
	if last, err := reopened.Log.LastIndex(); err != nil || last != 3 {
		t.Fatalf("last index after reopen: %d, %v", last, err)
	}
	for _, want := range logs {
		var got raft.Log
		if err := reopened.Log.GetLog(want.Index, &got); err != nil {
			t.Fatalf("log %d after reopen: %v", want.Index, err)
		}
		if got.Term != want.Term || got.Type != want.Type || !bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) {
			t.Fatalf("log %d after reopen: %+v, want %+v", want.Index, got, want)
		}
	}
	if term, err := reopened.Log.GetUint64([]byte("CurrentTerm")); err != nil || term != 4 {
		t.Fatalf("term after reopen: %d, %v", term, err)
	}
	if vote, err := reopened.Log.Get([]byte("LastVoteCand")); err != nil || string(vote) != "server-2" {
		t.Fatalf("vote after reopen: %q, %v", vote, err)
	}
	snaps, err := reopened.Snapshots.List()
	if err != nil || len(snaps) != 1 || snaps[0].Index != 3 || snaps[0].Term != 4 {
		t.Fatalf("snapshots after reopen: %v, %v", snaps, err)
	}
	_, body, err := reopened.Snapshots.Open(snaps[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if data, err := io.ReadAll(body); err != nil || string(data) != "snapshot body" {
		t.Fatalf("snapshot body after reopen: %q, %v", data, err)
	}
}

// Regression: a client whose enqueue's commit outlived its leader (the
// leader committed, then lost leadership before answering) sends the same
// run id again to the new leader, stamped with a later enqueue time. It
// is the same run, not a conflict, and the first record stands.
func TestEnqueueRetriedWithALaterEnqueueTimeIsTheSameRun(t *testing.T) {
	s := newStore(t)
	spec := &daguhav1.DagSpec{Name: "d", Steps: []*daguhav1.StepSpec{{Name: "s", Command: "true"}}}
	first := enqueue(t, s, 5, &daguhav1.Run{Id: "a", DagName: "d", Params: "X=1", Dag: spec, EnqueuedAtUnixNano: 100})
	if !first[0].GetCreated() {
		t.Fatalf("first enqueue: %v", first[0])
	}
	again := enqueue(t, s, 9, &daguhav1.Run{Id: "a", DagName: "d", Params: "X=1", Dag: spec, EnqueuedAtUnixNano: 200})
	if again[0].GetConflict() != "" || again[0].GetCreated() {
		t.Fatalf("retried enqueue: %v, want no conflict and not created again", again[0])
	}
	run, err := s.Run("a")
	if err != nil || run.GetEnqueuedAtUnixNano() != 100 || run.GetCreateIndex() != 5 {
		t.Fatalf("the record after the retry: %v %v, want the first enqueue's", run, err)
	}
}
