package store_test

import (
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

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

func TestEnqueueBatchIsAllOrNothing(t *testing.T) {
	s := newStore(t)
	_, err := s.EnqueueRuns(5, []*daguhav1.Run{{Id: "good", DagName: "d"}, {DagName: "d"}})
	if err == nil || !strings.Contains(err.Error(), "run without id") {
		t.Fatalf("batch with a run without id: %v", err)
	}
	if ids := runIDs(t, s, 0); len(ids) != 0 {
		t.Fatalf("a failed batch left runs behind: %v", ids)
	}
	if s.TableIndex("runs") != 0 {
		t.Fatalf("a failed batch moved the table index to %d", s.TableIndex("runs"))
	}
}

func TestRunsAreListedInIDOrderAndIterationStops(t *testing.T) {
	s := newStore(t)
	if _, err := s.EnqueueRuns(1, []*daguhav1.Run{{Id: "c", DagName: "d"}, {Id: "a", DagName: "d"}, {Id: "b", DagName: "d"}}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(runIDs(t, s, 0), ","); got != "a,b,c" {
		t.Fatalf("runs listed as %s, want a,b,c", got)
	}
	if got := runIDs(t, s, 2); len(got) != 2 {
		t.Fatalf("iteration did not stop when asked: %v", got)
	}
	if run, err := s.Run("missing"); run != nil || err != nil {
		t.Fatalf("missing run: %v, %v", run, err)
	}
}

func TestIndexesNeverGoBackwards(t *testing.T) {
	s := newStore(t)
	if _, err := s.EnqueueRuns(10, []*daguhav1.Run{{Id: "a", DagName: "d"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnqueueRuns(7, []*daguhav1.Run{{Id: "b", DagName: "d"}}); err != nil {
		t.Fatal(err)
	}
	if got := s.TableIndex("runs"); got != 10 {
		t.Fatalf("runs index %d after writes at 10 then 7, want 10", got)
	}
	if got := s.LatestIndex(); got != 10 {
		t.Fatalf("latest index %d, want 10", got)
	}
}

func TestSnapshotIsPointInTime(t *testing.T) {
	s := newStore(t)
	if _, err := s.EnqueueRuns(1, []*daguhav1.Run{{Id: "a", DagName: "d"}}); err != nil {
		t.Fatal(err)
	}
	snap := s.Snapshot()
	if _, err := s.EnqueueRuns(2, []*daguhav1.Run{{Id: "b", DagName: "d"}}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(runIDs(t, snap, 0), ","); got != "a" {
		t.Fatalf("snapshot sees %s after a later write, want a", got)
	}
	if snap.LatestIndex() != 1 {
		t.Fatalf("snapshot index %d, want 1", snap.LatestIndex())
	}
}

func TestRaftStoresSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	stores, err := store.OpenRaftStores(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := stores.Log.StoreLog(&raft.Log{Index: 1, Term: 3, Type: raft.LogCommand, Data: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	if err := stores.Log.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	if err := stores.Close(); err != nil {
		t.Fatal(err)
	}
	reopened, err := store.OpenRaftStores(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	var entry raft.Log
	if err := reopened.Log.GetLog(1, &entry); err != nil || string(entry.Data) != "hello" || entry.Term != 3 {
		t.Fatalf("log entry after reopen: %+v, %v", entry, err)
	}
	if term, err := reopened.Log.GetUint64([]byte("CurrentTerm")); err != nil || term != 3 {
		t.Fatalf("term after reopen: %d, %v", term, err)
	}
}
