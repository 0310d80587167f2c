package chaos

import (
	"slices"
	"testing"
)

// A run seen ended and gone from the settled state was pruned: its last
// record stands in for it. A run seen still going and gone vanished: the
// cluster never prunes such a run, and the report names it.
func TestObserverMergeTellsPrunedFromVanished(t *testing.T) {
	o := &Observer{seen: map[string]finalRun{}}
	o.record(map[string]finalRun{
		"pruned":  {DagRunID: "pruned", Status: "running", ModifyIndex: 5},
		"lost":    {DagRunID: "lost", Status: "queued", ModifyIndex: 6},
		"settled": {DagRunID: "settled", Status: "running", ModifyIndex: 7},
	})
	// A later read sees pruned end; an older record never replaces a
	// newer one.
	o.record(map[string]finalRun{"pruned": {DagRunID: "pruned", Status: "succeeded", Attempt: 2, ModifyIndex: 9}})
	o.record(map[string]finalRun{"pruned": {DagRunID: "pruned", Status: "running", ModifyIndex: 5}})
	settled := map[string]finalRun{"settled": {DagRunID: "settled", Status: "failed", ModifyIndex: 12}}
	merged, pruned, vanished := o.Merge(settled)
	if pruned != 1 || !slices.Equal(vanished, []string{"lost"}) {
		t.Fatalf("pruned %d, vanished %v; want 1 and [lost]", pruned, vanished)
	}
	if got := merged["pruned"]; got.Status != "succeeded" || got.Attempt != 2 {
		t.Fatalf("the pruned run's record: %+v; want its last one", got)
	}
	if got := merged["settled"]; got.Status != "failed" {
		t.Fatalf("the settled state must win over the observer's older record: %+v", got)
	}
	if _, ok := merged["lost"]; ok {
		t.Fatal("a vanished run must not be filled in from an old record")
	}
	if o.Reads() != 3 {
		t.Fatalf("reads %d, want 3", o.Reads())
	}
}
