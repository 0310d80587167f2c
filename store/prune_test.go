package store_test

import (
	"fmt"
	"slices"
	"testing"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

func finish(t *testing.T, s *store.StateStore, index uint64, runID string, token uint64, at int64) {
	t.Helper()
	outcomes, err := s.FinishRuns(index, []*daguhav1.Finish{{RunId: runID, FencingToken: token, Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, NowUnixNano: at}})
	if err != nil || len(outcomes) != 1 || !outcomes[0].GetApplied() {
		t.Fatalf("finish %s: %v %v", runID, outcomes, err)
	}
}

func prune(t *testing.T, s *store.StateStore, index uint64, before int64, roots ...string) ([]string, uint64) {
	t.Helper()
	pruned, removed, err := s.PruneRuns(index, roots, before)
	if err != nil {
		t.Fatalf("prune %v: %v", roots, err)
	}
	return pruned, removed
}

func exists(t *testing.T, s *store.StateStore, id string) bool {
	t.Helper()
	run, err := s.Run(id)
	if err != nil {
		t.Fatal(err)
	}
	return run != nil
}

func TestPruneRemovesEndedRunsPastTheCutoffOnly(t *testing.T) {
	s := newStore(t)
	enqueue(t, s, 1, &daguhav1.Run{Id: "old", DagName: "d"}, &daguhav1.Run{Id: "young", DagName: "d"},
		&daguhav1.Run{Id: "queued", DagName: "d"}, &daguhav1.Run{Id: "running", DagName: "d"})
	finish(t, s, 3, "old", grant(t, s, 2, "old", "w1"), 100)
	finish(t, s, 5, "young", grant(t, s, 4, "young", "w1"), 300)
	grant(t, s, 6, "running", "w1")

	pruned, removed := prune(t, s, 7, 200, "old", "young", "queued", "running", "never-was")
	if !slices.Equal(pruned, []string{"old"}) || removed != 1 {
		t.Fatalf("pruned %v (%d runs); want only the run that ended before the cutoff", pruned, removed)
	}
	for id, want := range map[string]bool{"old": false, "young": true, "queued": true, "running": true} {
		if exists(t, s, id) != want {
			t.Fatalf("run %s exists=%t after the prune, want %t", id, !want, want)
		}
	}
	// A command that prunes nothing changes nothing, not even the index.
	before := s.TableIndex("runs")
	if pruned, _ := prune(t, s, 8, 200, "old", "young"); len(pruned) != 0 {
		t.Fatalf("a repeated prune removed %v", pruned)
	}
	if after := s.TableIndex("runs"); after != before {
		t.Fatalf("a prune that removed nothing moved the runs index %d -> %d", before, after)
	}
	// The id is free again: the same id enqueued now is a new run.
	outcomes := enqueue(t, s, 9, &daguhav1.Run{Id: "old", DagName: "d"})
	if !outcomes[0].GetCreated() {
		t.Fatalf("enqueue of a pruned id: %v; want a new run", outcomes[0])
	}
}

func TestPruneTakesWholeHierarchiesOnceAllEnded(t *testing.T) {
	s := newStore(t)
	enqueue(t, s, 1, &daguhav1.Run{Id: "root", DagName: "d-root"})
	rootToken := grant(t, s, 2, "root", "w1")
	enqueue(t, s, 3, child("child", "root", "root"))
	childToken := grant(t, s, 4, "child", "w2")
	enqueue(t, s, 5, child("grandchild", "child", "root"))
	// The root ends; its running child is asked to stop, its queued
	// grandchild is cancelled at once.
	finish(t, s, 6, "root", rootToken, 100)
	if status(t, s, "child").GetStatus() != daguhav1.RunStatus_RUN_STATUS_RUNNING {
		t.Fatal("the child should still be running until its worker stops it")
	}
	if pruned, _ := prune(t, s, 7, 1000, "root"); len(pruned) != 0 {
		t.Fatalf("pruned %v while a child was still running", pruned)
	}
	// A child is never pruned on its own.
	if pruned, _ := prune(t, s, 8, 1000, "grandchild"); len(pruned) != 0 {
		t.Fatalf("pruned %v: a child without its root", pruned)
	}
	if _, err := s.FinishRuns(9, []*daguhav1.Finish{{RunId: "child", FencingToken: childToken, Status: daguhav1.RunStatus_RUN_STATUS_CANCELLED, NowUnixNano: 900}}); err != nil {
		t.Fatal(err)
	}
	pruned, removed := prune(t, s, 10, 1000, "root")
	if !slices.Equal(pruned, []string{"root"}) || removed != 3 {
		t.Fatalf("pruned %v (%d runs); want the root with its child and grandchild", pruned, removed)
	}
	for _, id := range []string{"root", "child", "grandchild"} {
		if exists(t, s, id) {
			t.Fatalf("run %s outlived the prune of its hierarchy", id)
		}
	}
	if ids := runIDs(t, s, 0); len(ids) != 0 {
		t.Fatalf("runs left: %v", ids)
	}
}

func TestPruneCandidatesScanInSlicesAndWrap(t *testing.T) {
	s := newStore(t)
	var index uint64 = 1
	for i := 0; i < 10; i++ {
		id := fmt.Sprintf("run-%02d", i)
		enqueue(t, s, index, &daguhav1.Run{Id: id, DagName: "d"})
		token := grant(t, s, index+1, id, "w1")
		// Even runs ended long ago, odd ones just now.
		at := int64(100)
		if i%2 == 1 {
			at = 10_000
		}
		finish(t, s, index+2, id, token, at)
		index += 3
	}
	enqueue(t, s, index, child("kid", "run-00", "run-00"))
	// Four runs per scan: the cursor walks the table and says when it
	// reached the end.
	var found []string
	cursor, scans := "", 0
	for {
		roots, next, err := s.PruneCandidates(cursor, 4, 100, 5_000)
		if err != nil {
			t.Fatal(err)
		}
		found = append(found, roots...)
		scans++
		if next == "" {
			break
		}
		cursor = next
		if scans > 10 {
			t.Fatal("the scan does not reach the end of the table")
		}
	}
	want := []string{"run-00", "run-02", "run-04", "run-06", "run-08"}
	if !slices.Equal(found, want) || scans != 3 {
		t.Fatalf("candidates %v in %d scans; want %v in 3 (11 runs, 4 a scan)", found, scans, want)
	}
	// max bounds what one scan proposes.
	roots, next, err := s.PruneCandidates("", 100, 2, 5_000)
	if err != nil || !slices.Equal(roots, []string{"run-00", "run-02"}) || next != "run-02" {
		t.Fatalf("bounded scan: %v next %q %v", roots, next, err)
	}
}
