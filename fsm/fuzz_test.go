package fsm_test

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// seedCommands is one well-formed command of every type, aimed at the
// records of smallState, plus the awkward ones.
func seedCommands(t testing.TB) [][]byte {
	return [][]byte{
		encode(t, fsm.NoopType, &daguhav1.NoopCommand{}),
		enqueueCommand(t, &daguhav1.Run{Id: "a", DagName: "d", Params: "X=1", Dag: &daguhav1.DagSpec{WorkerSelector: map[string]string{"gpu": "true"}}},
			&daguhav1.Run{Id: "q1", DagName: "d", Params: "X=1"}, &daguhav1.Run{Id: "a", DagName: "other"}),
		encode(t, fsm.GrantLeasesType, &daguhav1.GrantLeasesCommand{Grants: []*daguhav1.Grant{
			{RunId: "q1", WorkerId: "w1", Attempt: 1, MaxActiveRuns: 2}, {RunId: "q2", WorkerId: "w1", Attempt: 1, MaxActiveRuns: 2}}}),
		encode(t, fsm.ReclaimRunsType, &daguhav1.ReclaimRunsCommand{Reclaims: []*daguhav1.Reclaim{{RunId: "r1", FencingToken: 3, Reason: "lost"}}}),
		encode(t, fsm.ReportStepsType, &daguhav1.ReportStepsCommand{Reports: []*daguhav1.StepReport{{RunId: "r1", FencingToken: 3, Step: &daguhav1.StepState{Name: "s"}}}}),
		encode(t, fsm.ReportStepsType, &daguhav1.ReportStepsCommand{Reports: []*daguhav1.StepReport{{RunId: "r1", FencingToken: 3}}}),
		encode(t, fsm.FinishRunsType, &daguhav1.FinishRunsCommand{Finishes: []*daguhav1.Finish{{RunId: "r1", FencingToken: 3, Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED}}}),
		encode(t, fsm.CancelRunsType, &daguhav1.CancelRunsCommand{RunIds: []string{"q1", "r1", "nope"}, NowUnixNano: 1}),
		encode(t, fsm.RegisterWorkersType, &daguhav1.RegisterWorkersCommand{Workers: []*daguhav1.Worker{{Id: "w2", Labels: map[string]string{"gpu": "false"}}}}),
		encode(t, fsm.SetClusterMetaType, &daguhav1.SetClusterMetaCommand{Meta: &daguhav1.ClusterMeta{SigningKey: []byte("key")}}),
		encode(t, fsm.SetClusterMetaType, &daguhav1.SetClusterMetaCommand{}),
		encode(t, fsm.MarkWorkersOfflineType, &daguhav1.MarkWorkersOfflineCommand{WorkerIds: []string{"w1", "w1"}, Reason: "gone"}),
		encode(t, fsm.RemoveWorkersType, &daguhav1.RemoveWorkersCommand{WorkerIds: []string{"w1"}}),
		encode(t, fsm.PruneRunsType, &daguhav1.PruneRunsCommand{RootRunIds: []string{"r1", "q1", "nope", "r1"}, EndedBeforeUnixNano: 1 << 62}),
		encode(t, fsm.PruneRunsType, &daguhav1.PruneRunsCommand{RootRunIds: []string{"r1"}}),
		encode(t, fsm.RetryRunsType, &daguhav1.RetryRunsCommand{Retries: []*daguhav1.RetryRun{{RunId: "r1", Step: "s"}, {RunId: "q1"}, {RunId: "nope"}}}),
		encode(t, fsm.RetryRunsType, &daguhav1.RetryRunsCommand{Retries: []*daguhav1.RetryRun{{}}}),
		encode(t, fsm.DequeueRunsType, &daguhav1.DequeueRunsCommand{RunIds: []string{"q1", "r1", "nope", "q1"}, NowUnixNano: 1}),
		{},
		{byte(fsm.EnqueueRunsType), 0xff, 0xff},
		{ignorableType, 1, 2},
		{0x7e},
	}
}

// FuzzDecode: a command from a peer is outside input to the leader;
// decoding and validating it must never panic, and what decodes must
// encode and decode again to the same message.
func FuzzDecode(f *testing.F) {
	for _, command := range seedCommands(f) {
		f.Add(command)
	}
	f.Fuzz(func(t *testing.T, command []byte) {
		typ, body, decodeErr := fsm.Decode(command)
		validateErr := fsm.Validate(command)
		if decodeErr != nil {
			if validateErr == nil {
				t.Fatalf("Validate accepted a command Decode rejects: %v", decodeErr)
			}
			return
		}
		if body == nil || typ&fsm.IgnoreUnknown != 0 {
			t.Fatalf("Decode returned type %d with body %v and no error", typ, body)
		}
		again, err := fsm.Encode(typ, body)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		typ2, body2, err := fsm.Decode(again)
		if err != nil || typ2 != typ || !proto.Equal(body, body2) {
			t.Fatalf("decode of the re-encoded command: type %d, %v, %v", typ2, body2, err)
		}
	})
}

// FuzzApplyValidated: a command Validate accepts goes into the log, so
// every replica must apply it without panicking, and a replica restored
// from a snapshot taken between two such entries must end where one that
// replayed both does.
func FuzzApplyValidated(f *testing.F) {
	base := snapshotBytes(f, smallState(f, false))
	for _, command := range seedCommands(f) {
		f.Add(command)
	}
	f.Fuzz(func(t *testing.T, command []byte) {
		if fsm.Validate(command) != nil {
			return
		}
		fromBase := func() *fsm.FSM {
			replica := newFSM(t)
			if err := replica.Restore(readCloser(base)); err != nil {
				t.Fatal(err)
			}
			return replica
		}
		replayed, snapshotted := fromBase(), fromBase()
		// smallState without meta ends at entry 3.
		for _, index := range []uint64{5, 6} {
			resp, panicked := applyRecovering(replayed, index, command)
			if panicked != "" {
				t.Fatalf("a validated command panicked at entry %d: %s", index, panicked)
			}
			if r := resp.(*fsm.Response); r.Type != fsm.MessageType(command[0]) || r.Result == nil && r.Err == nil {
				t.Fatalf("entry %d: response %#v", index, r)
			}
		}
		snapshotted.Apply(entry(5, command))
		restored := newFSM(t)
		if err := restored.Restore(readCloser(snapshotBytes(t, snapshotted))); err != nil {
			t.Fatalf("restore the snapshot after the command: %v", err)
		}
		restored.Apply(entry(6, command))
		requireSameState(t, "restored after entry 5, then applied entry 6, vs replayed", replayed, restored)
		requireQueues(t, "after the command", replayed.State())
	})
}

// FuzzReadSnapshot: a snapshot comes from disk or from the leader; a
// damaged one must be refused, never crash the server, and one that is
// accepted must be consistent and write back and read again unchanged.
func FuzzReadSnapshot(f *testing.F) {
	f.Add(snapshotBytes(f, smallState(f, true)))
	f.Add(snapshotBytes(f, newFSM(f)))
	f.Add(snapshotStream(&daguhav1.SnapshotHeader{Version: fsm.SnapshotVersion, Runs: 1},
		frame(recordRun, &daguhav1.Run{Id: "a", DagName: "d", Status: daguhav1.RunStatus_RUN_STATUS_QUEUED})))
	f.Add([]byte("DAGUHASNAP"))
	f.Fuzz(func(t *testing.T, data []byte) {
		restored, last, err := fsm.ReadSnapshot(bytes.NewReader(data))
		if err != nil {
			if restored != nil {
				t.Fatal("a store was returned with an error")
			}
			return
		}
		if err := queueProblem(restored); err != nil {
			t.Fatalf("an accepted snapshot gives an inconsistent store: %v", err)
		}
		var first bytes.Buffer
		if err := fsm.WriteSnapshot(&first, restored, last); err != nil {
			t.Fatalf("write back an accepted snapshot: %v", err)
		}
		again, last2, err := fsm.ReadSnapshot(bytes.NewReader(first.Bytes()))
		if err != nil {
			t.Fatalf("read back an accepted snapshot: %v", err)
		}
		var second bytes.Buffer
		if err := fsm.WriteSnapshot(&second, again, last2); err != nil {
			t.Fatal(err)
		}
		if last2 != last || !bytes.Equal(first.Bytes(), second.Bytes()) {
			t.Fatalf("write(read(x)) is not stable: last index %d vs %d, %d vs %d bytes", last, last2, first.Len(), second.Len())
		}
	})
}
