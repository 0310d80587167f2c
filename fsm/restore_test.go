package fsm_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// A store read from a snapshot answers every query by every index of
// every table as the store built by applying the log does. The log leaves
// runs in every state, so the snapshot's records go through the reader,
// decoders and inserter in several batches.
func TestRestoredStoreEqualsAppliedThroughEveryIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 12))
	applied := newFSM(t)
	applyAll(applied, randomLog(t, rng, 4_000), 1)
	if runs := len(allRuns(t, applied.State())); runs < 3*512 {
		t.Fatalf("the log left %d runs, fewer than three batches", runs)
	}
	restored, last, err := fsm.ReadSnapshot(bytes.NewReader(snapshotBytes(t, applied)))
	if err != nil {
		t.Fatal(err)
	}
	if last != applied.LastApplied() {
		t.Fatalf("last index %d, want %d", last, applied.LastApplied())
	}
	if err := store.SameContents(applied.State(), restored); err != nil {
		t.Fatal(err)
	}
}

// Errors far into a large snapshot are the first in the stream's order,
// name the record, return no store, and leave no goroutine of the
// restore behind.
func TestReadSnapshotErrorsInLaterBatches(t *testing.T) {
	const n = 3000
	runs := func(bad int, record func(i int) []byte) []byte {
		header := &daguhav1.SnapshotHeader{Version: fsm.SnapshotVersion, LastIndex: 9, Runs: n}
		var records [][]byte
		for i := 1; i <= n; i++ {
			if i == bad {
				records = append(records, record(i))
				continue
			}
			records = append(records, frame(recordRun, &daguhav1.Run{Id: fmt.Sprintf("run-%05d", i), DagName: "d"}))
		}
		return snapshotStream(header, records...)
	}
	valid := runs(0, nil)
	if _, _, err := fsm.ReadSnapshot(bytes.NewReader(valid)); err != nil {
		t.Fatalf("the valid stream: %v", err)
	}
	cases := []struct {
		name    string
		stream  []byte
		wantErr string
	}{
		{"a corrupt run record", runs(2100, func(int) []byte { return []byte{recordRun, 2, 0xff, 0xff} }), "snapshot run record 2100:"},
		{"a run repeated out of order", runs(2100, func(int) []byte { return frame(recordRun, &daguhav1.Run{Id: "run-00007", DagName: "d"}) }), `run "run-00007" appears twice`},
		{"a run without id", runs(1500, func(int) []byte { return frame(recordRun, &daguhav1.Run{DagName: "d"}) }), "restore run"},
		{"an unknown record type", runs(2500, func(int) []byte { return []byte{0x42, 0} }), "record type 66 is unknown"},
		// A corrupt record before a framing error: the record is first.
		{"a corrupt record, then a cut", runs(1200, func(int) []byte { return []byte{recordRun, 2, 0xff, 0xff} })[:len(valid)-500], "snapshot run record 1200:"},
		{"a cut in the middle", valid[:len(valid)/2], "unexpected EOF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			state, _, err := fsm.ReadSnapshot(bytes.NewReader(tc.stream))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if state != nil {
				t.Fatal("a store was returned with the error")
			}
			goleak.VerifyNone(t, goleak.IgnoreCurrent())
		})
	}
}
