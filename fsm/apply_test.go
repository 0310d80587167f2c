package fsm_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newFSM(t testing.TB) *fsm.FSM {
	t.Helper()
	f, err := fsm.New()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func encode(t testing.TB, typ fsm.MessageType, body proto.Message) []byte {
	t.Helper()
	command, err := fsm.Encode(typ, body)
	if err != nil {
		t.Fatal(err)
	}
	return command
}

func enqueueCommand(t testing.TB, runs ...*daguhav1.Run) []byte {
	return encode(t, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: runs})
}

func entry(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

func seed(t *testing.T) uint64 {
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("DAGUHA_FSM_SEED"); v != "" {
		parsed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("DAGUHA_FSM_SEED=%q: %v", v, err)
		}
		s = parsed
	}
	t.Logf("seed %d (set DAGUHA_FSM_SEED to replay)", s)
	return s
}

// randomLog builds n commands: mostly enqueue batches drawing run ids from
// a small pool (so retries and conflicts happen), the dispatch commands
// (grants, reports, finishes, reclaims, cancels, worker registrations) with
// arguments that are valid about half the time, some no-ops, and some
// ignorable commands of a type this server does not know. It applies the
// log to a generator FSM as it goes, to pick plausible arguments.
func randomLog(t *testing.T, rng *rand.Rand, n int) [][]byte {
	t.Helper()
	gen := newFSM(t)
	dags := []string{"etl", "train-model", "report"}
	workers := []string{"gpu-1", "cpu-1", "cpu-2"}
	pickRun := func() *daguhav1.Run {
		run, _ := gen.State().Run(fmt.Sprintf("run-%d", rng.IntN(3000)))
		return run
	}
	// pickHeld prefers a running run, as reports and finishes come from holders.
	pickHeld := func() *daguhav1.Run {
		var running []*daguhav1.Run
		_ = gen.State().EachRunning("", func(r *daguhav1.Run) bool { running = append(running, r); return len(running) < 50 })
		if len(running) == 0 || rng.IntN(4) == 0 {
			return pickRun()
		}
		return running[rng.IntN(len(running))]
	}
	token := func(run *daguhav1.Run) uint64 {
		if run != nil && rng.IntN(2) == 0 {
			return run.GetFencingToken()
		}
		return uint64(rng.IntN(len(dags) * 1000))
	}
	var log [][]byte
	for len(log) < n {
		var command []byte
		switch p := rng.IntN(100); {
		case p < 4:
			command = encode(t, fsm.NoopType, &daguhav1.NoopCommand{})
		case p < 8:
			junk := make([]byte, rng.IntN(16))
			for i := range junk {
				junk[i] = byte(rng.IntN(256))
			}
			command = append([]byte{byte(fsm.IgnoreUnknown | 0x7e)}, junk...)
		case p < 24:
			var grants []*daguhav1.Grant
			for range 1 + rng.IntN(5) {
				if run := pickRun(); run != nil {
					grants = append(grants, &daguhav1.Grant{RunId: run.GetId(), WorkerId: workers[rng.IntN(len(workers))],
						Attempt: run.GetAttempt() + uint32(rng.IntN(2)), MaxActiveRuns: uint32(1 + rng.IntN(50)), NowUnixNano: rng.Int64()})
				}
			}
			command = encode(t, fsm.GrantLeasesType, &daguhav1.GrantLeasesCommand{Grants: grants})
		case p < 28:
			run := pickHeld()
			if run == nil {
				continue
			}
			command = encode(t, fsm.ReportStepsType, &daguhav1.ReportStepsCommand{Reports: []*daguhav1.StepReport{{
				RunId: run.GetId(), FencingToken: token(run),
				Step: &daguhav1.StepState{Name: fmt.Sprintf("s%d", rng.IntN(3)), Status: daguhav1.StepStatus(rng.IntN(5)), ExitCode: int32(rng.IntN(3))},
			}}})
		case p < 36:
			run := pickHeld()
			if run == nil {
				continue
			}
			command = encode(t, fsm.FinishRunsType, &daguhav1.FinishRunsCommand{Finishes: []*daguhav1.Finish{{
				RunId: run.GetId(), FencingToken: token(run), Status: daguhav1.RunStatus(3 + rng.IntN(3)), NowUnixNano: rng.Int64(),
			}}})
		case p < 41:
			run := pickHeld()
			if run == nil {
				continue
			}
			command = encode(t, fsm.ReclaimRunsType, &daguhav1.ReclaimRunsCommand{Reclaims: []*daguhav1.Reclaim{{
				RunId: run.GetId(), FencingToken: token(run), Reason: "test", NowUnixNano: rng.Int64(),
			}}})
		case p < 44:
			command = encode(t, fsm.CancelRunsType, &daguhav1.CancelRunsCommand{RunIds: []string{fmt.Sprintf("run-%d", rng.IntN(3000))}, NowUnixNano: rng.Int64()})
		case p < 46:
			command = encode(t, fsm.RegisterWorkersType, &daguhav1.RegisterWorkersCommand{Workers: []*daguhav1.Worker{{
				Id: workers[rng.IntN(len(workers))], Labels: map[string]string{"gpu": fmt.Sprint(rng.IntN(2) == 0)}, MaxActiveRuns: uint32(1 + rng.IntN(9)),
			}}})
		default:
			var runs []*daguhav1.Run
			for range 1 + rng.IntN(20) {
				run := &daguhav1.Run{
					Id:                 fmt.Sprintf("run-%d", rng.IntN(3000)),
					DagName:            dags[rng.IntN(len(dags))],
					Params:             fmt.Sprintf("N=%d", rng.IntN(2)),
					EnqueuedAtUnixNano: rng.Int64(),
					Dag:                &daguhav1.DagSpec{WorkerSelector: map[string]string{"gpu": fmt.Sprint(rng.IntN(2) == 0)}},
				}
				if rng.IntN(4) == 0 {
					run.RootDagRunName, run.RootDagRunId = "root", fmt.Sprintf("root-%d", rng.IntN(50))
					run.ParentDagRunName, run.ParentDagRunId = "parent", fmt.Sprintf("parent-%d", rng.IntN(50))
				}
				runs = append(runs, run)
			}
			command = enqueueCommand(t, runs...)
		}
		log = append(log, command)
		gen.Apply(entry(uint64(len(log)), command))
	}
	return log
}

func snapshotBytes(t testing.TB, f *fsm.FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := fsm.WriteSnapshot(&buf, f.State(), f.LastApplied()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func allRuns(t testing.TB, f *fsm.FSM) []*daguhav1.Run {
	t.Helper()
	var runs []*daguhav1.Run
	if err := f.State().EachRun(func(r *daguhav1.Run) bool { runs = append(runs, r); return true }); err != nil {
		t.Fatal(err)
	}
	return runs
}

// requireEqual compares two FSMs by their records and by their snapshots.
func requireEqual(t *testing.T, what string, a, b *fsm.FSM) {
	t.Helper()
	runsA, runsB := allRuns(t, a), allRuns(t, b)
	if len(runsA) != len(runsB) {
		t.Fatalf("%s: %d runs vs %d", what, len(runsA), len(runsB))
	}
	for i := range runsA {
		if !proto.Equal(runsA[i], runsB[i]) {
			t.Fatalf("%s: run %d differs:\n%v\n%v", what, i, runsA[i], runsB[i])
		}
	}
	if a.State().LatestIndex() != b.State().LatestIndex() {
		t.Fatalf("%s: latest index %d vs %d", what, a.State().LatestIndex(), b.State().LatestIndex())
	}
	if a.LastApplied() != b.LastApplied() {
		t.Fatalf("%s: last applied %d vs %d", what, a.LastApplied(), b.LastApplied())
	}
	if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, b)) {
		t.Fatalf("%s: snapshots differ", what)
	}
}

func responseString(resp interface{}) string {
	r := resp.(*fsm.Response)
	result := "<nil>"
	if r.Result != nil {
		encoded, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r.Result)
		result = fmt.Sprintf("%x", encoded)
	}
	return fmt.Sprintf("type=%d result=%s err=%v", r.Type, result, r.Err)
}

func TestReplicasFedTheSameLogEndEqual(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed(t), 7))
	log := randomLog(t, rng, 10_000)
	a, b := newFSM(t), newFSM(t)
	distinct := map[string]bool{}
	var created, retries, conflicts int
	for i, command := range log {
		index := uint64(i + 1)
		respA, respB := a.Apply(entry(index, command)), b.Apply(entry(index, command))
		if responseString(respA) != responseString(respB) {
			t.Fatalf("entry %d: responses differ: %s vs %s", index, responseString(respA), responseString(respB))
		}
		if result, ok := respA.(*fsm.Response).Result.(*daguhav1.EnqueueRunsResult); ok {
			for _, o := range result.GetOutcomes() {
				distinct[o.GetRunId()] = true
				switch {
				case o.GetCreated():
					created++
				case o.GetConflict() != "":
					conflicts++
				default:
					retries++
				}
			}
		}
	}
	requireEqual(t, "after 10,000 commands", a, b)
	if got := len(allRuns(t, a)); got != len(distinct) || got != created {
		t.Fatalf("store has %d runs; %d distinct ids were enqueued, %d created", got, len(distinct), created)
	}
	if retries == 0 || conflicts == 0 {
		t.Fatalf("the log exercised %d retries and %d conflicts; want both", retries, conflicts)
	}
	statuses := map[daguhav1.RunStatus]int{}
	attempts := 0
	for _, run := range allRuns(t, a) {
		statuses[run.GetStatus()]++
		attempts += len(run.GetAttempts())
	}
	for _, status := range []daguhav1.RunStatus{daguhav1.RunStatus_RUN_STATUS_QUEUED, daguhav1.RunStatus_RUN_STATUS_RUNNING,
		daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, daguhav1.RunStatus_RUN_STATUS_CANCELLED} {
		if statuses[status] == 0 {
			t.Fatalf("no run ended %s: the log does not exercise dispatch (%v)", status, statuses)
		}
	}
	t.Logf("%d runs, %d retries, %d conflicts, %d attempts, statuses %v", created, retries, conflicts, attempts, statuses)
}

// memorySink is a raft.SnapshotSink over a buffer.
type memorySink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memorySink) ID() string    { return "memory" }
func (s *memorySink) Close() error  { return nil }
func (s *memorySink) Cancel() error { s.cancelled = true; return nil }

func TestSnapshotRestoreEqualsReplay(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed(t), 11))
	log := randomLog(t, rng, 4_000)
	half := len(log) / 2
	a, c := newFSM(t), newFSM(t)
	for i, command := range log[:half] {
		a.Apply(entry(uint64(i+1), command))
	}
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	atSnapshot := snapshotBytes(t, a)
	// Writes after Snapshot() must not leak into it: it is point in time.
	for i, command := range log[half:] {
		a.Apply(entry(uint64(half+i+1), command))
	}
	sink := &memorySink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if !bytes.Equal(sink.Bytes(), atSnapshot) {
		t.Fatalf("the snapshot taken at entry %d changed with later writes", half)
	}

	b := newFSM(t)
	if err := b.Restore(ioNopCloser(sink.Bytes())); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if b.LastApplied() != uint64(half) {
		t.Fatalf("restored FSM reports last applied %d, want %d", b.LastApplied(), half)
	}
	for i, command := range log[half:] {
		b.Apply(entry(uint64(half+i+1), command))
	}
	for i, command := range log {
		c.Apply(entry(uint64(i+1), command))
	}
	requireEqual(t, "restored+replayed vs snapshotted", a, b)
	requireEqual(t, "restored+replayed vs replayed from scratch", b, c)
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func ioNopCloser(data []byte) nopCloser { return nopCloser{bytes.NewReader(data)} }

func applyPanics(f *fsm.FSM, index uint64, command []byte) (message string) {
	defer func() {
		if r := recover(); r != nil {
			message = fmt.Sprint(r)
		}
	}()
	f.Apply(entry(index, command))
	return ""
}

func TestUnknownCommandTypes(t *testing.T) {
	f := newFSM(t)
	f.Apply(entry(1, enqueueCommand(t, &daguhav1.Run{Id: "a", DagName: "d"})))
	runsBefore, indexBefore := allRuns(t, f), f.State().LatestIndex()

	t.Run("unknown type without the ignorable bit panics", func(t *testing.T) {
		msg := applyPanics(f, 2, []byte{0x7e, 1, 2})
		if !strings.Contains(msg, "unknown command type 126") || !strings.Contains(msg, "entry 2") {
			t.Fatalf("panic %q does not name the type and the entry", msg)
		}
	})
	t.Run("empty command panics", func(t *testing.T) {
		if msg := applyPanics(f, 3, nil); !strings.Contains(msg, "empty command") {
			t.Fatalf("panic %q", msg)
		}
	})
	t.Run("known type with a corrupt body panics", func(t *testing.T) {
		if msg := applyPanics(f, 4, []byte{byte(fsm.EnqueueRunsType), 0xff, 0xff, 0xff}); !strings.Contains(msg, "decode command type 1") {
			t.Fatalf("panic %q", msg)
		}
	})
	t.Run("ignorable unknown type is skipped", func(t *testing.T) {
		if msg := applyPanics(f, 5, []byte{byte(fsm.IgnoreUnknown | 0x7e), 9, 9}); msg != "" {
			t.Fatalf("ignorable command panicked: %s", msg)
		}
		runsAfter := allRuns(t, f)
		if len(runsAfter) != len(runsBefore) || !proto.Equal(runsAfter[0], runsBefore[0]) || f.State().LatestIndex() != indexBefore {
			t.Fatalf("an ignorable command changed the state: %v", runsAfter)
		}
	})
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name    string
		command []byte
		wantErr string
	}{
		{"good enqueue", enqueueCommand(t, &daguhav1.Run{Id: "a", DagName: "d"}), ""},
		{"noop", encode(t, fsm.NoopType, &daguhav1.NoopCommand{}), ""},
		{"empty", nil, "empty command"},
		{"unknown type", []byte{0x7e}, "unknown command type 126"},
		{"unknown ignorable type", []byte{0xfe}, "unknown command type 126 (ignorable: true)"},
		{"run without id", enqueueCommand(t, &daguhav1.Run{DagName: "d"}), "run 0 has no id"},
		{"run without DAG name", enqueueCommand(t, &daguhav1.Run{Id: "x"}), `run "x" has no DAG name`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := fsm.Validate(tc.command)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestEnqueueIsIdempotentAndReportsConflicts(t *testing.T) {
	f := newFSM(t)
	first := f.Apply(entry(1, enqueueCommand(t, &daguhav1.Run{Id: "r", DagName: "etl", Params: "A=1"}))).(*fsm.Response)
	if o := first.Result.(*daguhav1.EnqueueRunsResult).GetOutcomes()[0]; !o.GetCreated() || o.GetConflict() != "" {
		t.Fatalf("first enqueue: %v", o)
	}
	again := f.Apply(entry(2, enqueueCommand(t, &daguhav1.Run{Id: "r", DagName: "etl", Params: "A=1"}))).(*fsm.Response)
	if o := again.Result.(*daguhav1.EnqueueRunsResult).GetOutcomes()[0]; o.GetCreated() || o.GetConflict() != "" {
		t.Fatalf("retried enqueue: %v", o)
	}
	otherDAG := f.Apply(entry(3, enqueueCommand(t, &daguhav1.Run{Id: "r", DagName: "report", Params: "A=1"}))).(*fsm.Response)
	if c := otherDAG.Result.(*daguhav1.EnqueueRunsResult).GetOutcomes()[0].GetConflict(); !strings.Contains(c, `"r"`) || !strings.Contains(c, "etl") || !strings.Contains(c, "report") {
		t.Fatalf("conflict on DAG name: %q", c)
	}
	otherParams := f.Apply(entry(4, enqueueCommand(t, &daguhav1.Run{Id: "r", DagName: "etl", Params: "A=2"}))).(*fsm.Response)
	if c := otherParams.Result.(*daguhav1.EnqueueRunsResult).GetOutcomes()[0].GetConflict(); !strings.Contains(c, "A=1") || !strings.Contains(c, "A=2") {
		t.Fatalf("conflict on params: %q", c)
	}
	run, err := f.State().Run("r")
	if err != nil || run == nil {
		t.Fatalf("run r: %v, %v", run, err)
	}
	if run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_QUEUED || run.GetCreateIndex() != 1 || run.GetModifyIndex() != 1 || run.GetParams() != "A=1" {
		t.Fatalf("stored run after retries and conflicts: %v", run)
	}
}

func TestWaitApplied(t *testing.T) {
	f := newFSM(t)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- f.WaitApplied(ctx, 2)
	}()
	f.Apply(entry(1, encode(t, fsm.NoopType, &daguhav1.NoopCommand{})))
	select {
	case err := <-done:
		t.Fatalf("WaitApplied(2) returned at index 1: %v", err)
	default:
	}
	f.Apply(entry(2, encode(t, fsm.NoopType, &daguhav1.NoopCommand{})))
	if err := <-done; err != nil {
		t.Fatalf("WaitApplied(2) after index 2: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.WaitApplied(ctx, 3); err == nil || !strings.Contains(err.Error(), "index 3") {
		t.Fatalf("cancelled wait: %v", err)
	}
}

func TestReadSnapshotRejectsDamagedStreams(t *testing.T) {
	f := newFSM(t)
	f.Apply(entry(1, enqueueCommand(t, &daguhav1.Run{Id: "a", DagName: "d"}, &daguhav1.Run{Id: "b", DagName: "d"})))
	good := snapshotBytes(t, f)
	if _, _, err := fsm.ReadSnapshot(bytes.NewReader(good)); err != nil {
		t.Fatalf("good snapshot: %v", err)
	}
	for cut := 0; cut < len(good); cut++ {
		if _, _, err := fsm.ReadSnapshot(bytes.NewReader(good[:cut])); err == nil {
			t.Fatalf("snapshot cut at %d of %d bytes was accepted", cut, len(good))
		}
	}
	wrongMagic := append([]byte("NOTASNAPSH"), good[10:]...)
	if _, _, err := fsm.ReadSnapshot(bytes.NewReader(wrongMagic)); err == nil || !strings.Contains(err.Error(), "not a daguha snapshot") {
		t.Fatalf("wrong magic: %v", err)
	}
	var future bytes.Buffer
	future.WriteString("DAGUHASNAP")
	header, _ := proto.Marshal(&daguhav1.SnapshotHeader{Version: fsm.SnapshotVersion + 1})
	future.WriteByte(byte(len(header)))
	future.Write(header)
	if _, _, err := fsm.ReadSnapshot(&future); err == nil || !strings.Contains(err.Error(), "version 2 is not supported") {
		t.Fatalf("future version: %v", err)
	}
	unknownRecord := append(append([]byte(nil), good[:len(good)-1]...), 0x42, 0)
	if _, _, err := fsm.ReadSnapshot(bytes.NewReader(unknownRecord)); err == nil || !strings.Contains(err.Error(), "record type 66 is unknown") {
		t.Fatalf("unknown record: %v", err)
	}
	var miscounted bytes.Buffer
	miscounted.WriteString("DAGUHASNAP")
	header, _ = proto.Marshal(&daguhav1.SnapshotHeader{Version: fsm.SnapshotVersion, Runs: 5})
	miscounted.WriteByte(byte(len(header)))
	miscounted.Write(header)
	miscounted.WriteByte(0xff)
	if _, _, err := fsm.ReadSnapshot(&miscounted); err == nil || !strings.Contains(err.Error(), "has 0 runs, header says 5") {
		t.Fatalf("miscounted: %v", err)
	}
}
