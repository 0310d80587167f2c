package fsm_test

import (
	"bytes"
	"testing"

	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// FuzzDecode: a command from a peer is outside input to the leader;
// decoding and validating it must never panic.
func FuzzDecode(f *testing.F) {
	f.Add(enqueueCommand(f, &daguhav1.Run{Id: "a", DagName: "d"}))
	f.Add([]byte{0x00})
	f.Add([]byte{0xfe, 1, 2})
	f.Fuzz(func(t *testing.T, command []byte) {
		_, _, _ = fsm.Decode(command)
		_ = fsm.Validate(command)
	})
}

// FuzzReadSnapshot: a snapshot comes from disk or from the leader; a
// damaged one must be refused, never crash the server, and one that is
// accepted must write back and read again.
func FuzzReadSnapshot(f *testing.F) {
	state := newFSM(f)
	state.Apply(entry(1, enqueueCommand(f, &daguhav1.Run{Id: "a", DagName: "d", Params: "X=1"})))
	f.Add(snapshotBytes(f, state))
	f.Add([]byte("DAGUHASNAP"))
	f.Fuzz(func(t *testing.T, data []byte) {
		restored, last, err := fsm.ReadSnapshot(bytes.NewReader(data))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := fsm.WriteSnapshot(&buf, restored, last); err != nil {
			t.Fatalf("write back an accepted snapshot: %v", err)
		}
		if _, _, err := fsm.ReadSnapshot(&buf); err != nil {
			t.Fatalf("read back an accepted snapshot: %v", err)
		}
	})
}
