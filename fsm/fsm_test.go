package fsm_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// ---- helpers ---------------------------------------------------------------

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
	t.Helper()
	return encode(t, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: runs})
}

func entry(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

// applyAll applies commands as consecutive entries starting at first.
func applyAll(f *fsm.FSM, commands [][]byte, first uint64) {
	for i, command := range commands {
		f.Apply(entry(first+uint64(i), command))
	}
}

// testSeed returns a fresh seed, or DAGUHA_FSM_SEED when set, and logs it
// so that a failure can be replayed.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("DAGUHA_FSM_SEED"); v != "" {
		parsed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("DAGUHA_FSM_SEED=%q: %v", v, err)
		}
		s = parsed
	}
	t.Logf("seed %d (set DAGUHA_FSM_SEED=%d to replay)", s, s)
	return s
}

// ignorableType is a command type no server knows, with the IgnoreUnknown
// bit: what a newer leader may write and an older follower must skip.
const ignorableType = byte(fsm.IgnoreUnknown | 0x7e)

// randomLog builds n commands: mostly enqueue batches of 1-20 runs drawing
// ids from a pool of 3000 (so retries and conflicts happen), the dispatch
// commands (grants, reports, finishes, reclaims, cancels, worker
// registrations) with arguments that are valid about half the time, some
// no-ops, and some ignorable commands of a type this server does not know.
// It applies the log to a generator FSM as it goes, to pick plausible
// arguments; every command it builds passes fsm.Validate.
func randomLog(t *testing.T, rng *rand.Rand, n int) [][]byte {
	t.Helper()
	gen := newFSM(t)
	dags := []string{"etl", "train-model", "report"}
	workers := []string{"gpu-1", "cpu-1", "cpu-2"}
	runID := func() string { return fmt.Sprintf("run-%d", rng.IntN(3000)) }
	pickRun := func() *daguhav1.Run {
		run, _ := gen.State().Run(runID())
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
		return uint64(rng.IntN(n))
	}
	randomStep := func() *daguhav1.StepState {
		return &daguhav1.StepState{Name: fmt.Sprintf("s%d", rng.IntN(3)), Status: daguhav1.StepStatus(rng.IntN(5)), ExitCode: int32(rng.IntN(3))}
	}
	// The steps randomStep names, as a chain, for retries from a step.
	chain := []*daguhav1.StepSpec{{Name: "s0", Output: "OUT"}, {Name: "s1", Depends: []string{"s0"}}, {Name: "s2", Depends: []string{"s1"}}}
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
			command = append([]byte{ignorableType}, junk...)
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
			// A worker sends several states of a run at once.
			var reports []*daguhav1.StepReport
			for range 1 + rng.IntN(3) {
				reports = append(reports, &daguhav1.StepReport{RunId: run.GetId(), FencingToken: token(run), Step: randomStep()})
			}
			command = encode(t, fsm.ReportStepsType, &daguhav1.ReportStepsCommand{Reports: reports})
		case p < 36:
			run := pickHeld()
			if run == nil {
				continue
			}
			// The last steps' states go with the finish.
			var steps []*daguhav1.StepState
			for range rng.IntN(3) {
				steps = append(steps, randomStep())
			}
			command = encode(t, fsm.FinishRunsType, &daguhav1.FinishRunsCommand{Finishes: []*daguhav1.Finish{{
				RunId: run.GetId(), FencingToken: token(run), Status: daguhav1.RunStatus(2 + rng.IntN(4)), NowUnixNano: rng.Int64(),
				Steps: steps,
			}}})
		case p < 41:
			run := pickHeld()
			if run == nil {
				continue
			}
			command = encode(t, fsm.ReclaimRunsType, &daguhav1.ReclaimRunsCommand{Reclaims: []*daguhav1.Reclaim{{
				RunId: run.GetId(), FencingToken: token(run), Reason: "test", NowUnixNano: rng.Int64(),
			}}})
		case p < 47:
			name := dags[rng.IntN(len(dags))]
			command = encode(t, fsm.PutDagsType, &daguhav1.PutDagsCommand{NowUnixNano: rng.Int64(), Dags: []*daguhav1.StoredDag{{
				Spec: &daguhav1.DagSpec{Name: name}, ContentHash: fmt.Sprint(rng.IntN(3)), Source: "name: " + name,
			}}})
		case p < 48:
			command = encode(t, fsm.DeleteDagsType, &daguhav1.DeleteDagsCommand{Names: []string{dags[rng.IntN(len(dags))]}})
		case p < 52:
			name := dags[rng.IntN(len(dags))]
			slot := int64(rng.IntN(40))
			command = encode(t, fsm.FireSchedulesType, &daguhav1.FireSchedulesCommand{Firings: []*daguhav1.Firing{{
				DagName: name, SlotUnix: slot, Run: &daguhav1.Run{Id: fmt.Sprintf("sched-%s-%d", name, slot), DagName: name, ScheduleSlotUnix: slot},
			}}})
		case p < 55:
			command = encode(t, fsm.CancelRunsType, &daguhav1.CancelRunsCommand{RunIds: []string{runID(), runID()}, NowUnixNano: rng.Int64()})
		case p < 58:
			command = encode(t, fsm.RegisterWorkersType, &daguhav1.RegisterWorkersCommand{Workers: []*daguhav1.Worker{{
				Id: workers[rng.IntN(len(workers))], Labels: map[string]string{"gpu": fmt.Sprint(rng.IntN(2) == 0)}, MaxActiveRuns: uint32(1 + rng.IntN(9)),
			}}})
		case p < 61:
			// Retention: the roots the leader would propose for a random
			// cutoff (finish times are random), and some that do not
			// qualify (children, runs still going, ids that never were).
			before := 1 + rng.Int64N(1<<62)
			roots, _, err := gen.State().PruneCandidates("", 3000, 20, before)
			if err != nil {
				t.Fatal(err)
			}
			roots = append(roots, runID(), fmt.Sprintf("parent-%d", rng.IntN(50)))
			command = encode(t, fsm.PruneRunsType, &daguhav1.PruneRunsCommand{RootRunIds: roots, EndedBeforeUnixNano: before})
		case p < 63:
			// Retries of runs that may have ended, from any step or none.
			step := []string{"", "s0", "s1", "s2", "nope"}[rng.IntN(5)]
			command = encode(t, fsm.RetryRunsType, &daguhav1.RetryRunsCommand{Retries: []*daguhav1.RetryRun{
				{RunId: runID(), Step: step, NowUnixNano: rng.Int64()}, {RunId: runID(), NowUnixNano: rng.Int64()}}})
		case p < 64:
			command = encode(t, fsm.DequeueRunsType, &daguhav1.DequeueRunsCommand{RunIds: []string{runID(), runID()}, NowUnixNano: rng.Int64()})
		default:
			var runs []*daguhav1.Run
			for range 1 + rng.IntN(20) {
				run := &daguhav1.Run{
					Id:                 runID(),
					DagName:            dags[rng.IntN(len(dags))],
					Params:             fmt.Sprintf("N=%d", rng.IntN(2)),
					EnqueuedAtUnixNano: rng.Int64(),
				}
				// Three selectors, the empty one included, so that many runs of
				// one batch share a pending queue.
				switch rng.IntN(3) {
				case 1:
					run.Dag = &daguhav1.DagSpec{Name: run.GetDagName(), WorkerSelector: map[string]string{"gpu": "true"}, Steps: chain}
				case 2:
					run.Dag = &daguhav1.DagSpec{Name: run.GetDagName(), WorkerSelector: map[string]string{"gpu": "false", "zone": "eu"}}
				}
				if rng.IntN(4) == 0 {
					// A child, usually of a run that exists, so that
					// cancellations and finishes reach down hierarchies.
					parentID := fmt.Sprintf("parent-%d", rng.IntN(50))
					if parent := pickHeld(); parent != nil && rng.IntN(4) != 0 {
						parentID = parent.GetId()
					}
					run.RootDagRunName, run.RootDagRunId = "root", fmt.Sprintf("root-%d", rng.IntN(50))
					run.ParentDagRunName, run.ParentDagRunId = "parent", parentID
				}
				runs = append(runs, run)
			}
			command = enqueueCommand(t, runs...)
		}
		if command[0]&byte(fsm.IgnoreUnknown) == 0 {
			if err := fsm.Validate(command); err != nil {
				t.Fatalf("the generator built a command Validate rejects: %v", err)
			}
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

// stateBytes is the snapshot of the state alone, without the applied index.
func stateBytes(t testing.TB, f *fsm.FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := fsm.WriteSnapshot(&buf, f.State(), 0); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func allRuns(t testing.TB, s *store.StateStore) []*daguhav1.Run {
	t.Helper()
	var runs []*daguhav1.Run
	if err := s.EachRun(func(r *daguhav1.Run) bool { runs = append(runs, r); return true }); err != nil {
		t.Fatal(err)
	}
	return runs
}

func allWorkers(t testing.TB, s *store.StateStore) []*daguhav1.Worker {
	t.Helper()
	var workers []*daguhav1.Worker
	if err := s.EachWorker(func(w *daguhav1.Worker) bool { workers = append(workers, w); return true }); err != nil {
		t.Fatal(err)
	}
	return workers
}

func allTableIndexes(t testing.TB, s *store.StateStore) []*daguhav1.TableIndex {
	t.Helper()
	var indexes []*daguhav1.TableIndex
	if err := s.EachTableIndex(func(e *daguhav1.TableIndex) bool { indexes = append(indexes, e); return true }); err != nil {
		t.Fatal(err)
	}
	return indexes
}

func sameMessages[M proto.Message](a, b []M) (int, bool) {
	if len(a) != len(b) {
		return min(len(a), len(b)), false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return i, false
		}
	}
	return 0, true
}

// requireSameState compares two FSMs record by record (runs, workers,
// table indexes, cluster meta), by their indexes, and by their snapshots.
func requireSameState(t testing.TB, what string, a, b *fsm.FSM) {
	t.Helper()
	sa, sb := a.State(), b.State()
	runsA, runsB := allRuns(t, sa), allRuns(t, sb)
	if i, ok := sameMessages(runsA, runsB); !ok {
		if len(runsA) != len(runsB) {
			t.Fatalf("%s: %d runs vs %d", what, len(runsA), len(runsB))
		}
		t.Fatalf("%s: run %d differs:\n%v\n%v", what, i, runsA[i], runsB[i])
	}
	if i, ok := sameMessages(allWorkers(t, sa), allWorkers(t, sb)); !ok {
		t.Fatalf("%s: workers differ at %d", what, i)
	}
	if ia, ib := allTableIndexes(t, sa), allTableIndexes(t, sb); !func() bool { _, ok := sameMessages(ia, ib); return ok }() {
		t.Fatalf("%s: table indexes differ:\n%v\n%v", what, ia, ib)
	}
	if !proto.Equal(sa.ClusterMeta(), sb.ClusterMeta()) {
		t.Fatalf("%s: cluster meta %v vs %v", what, sa.ClusterMeta(), sb.ClusterMeta())
	}
	if sa.LatestIndex() != sb.LatestIndex() {
		t.Fatalf("%s: latest index %d vs %d", what, sa.LatestIndex(), sb.LatestIndex())
	}
	if a.LastApplied() != b.LastApplied() {
		t.Fatalf("%s: last applied %d vs %d", what, a.LastApplied(), b.LastApplied())
	}
	if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, b)) {
		t.Fatalf("%s: records are equal but snapshots differ", what)
	}
}

// queueProblem checks the derived indexes of a store against its runs:
// every queued run is in the pending queue of its selector and nothing
// else is, each selector's count is its number of queued runs, queues are
// oldest first, and the running index holds exactly the running runs.
func queueProblem(s *store.StateStore) error {
	queued := map[string][]string{}
	var running []string
	if err := s.EachRun(func(r *daguhav1.Run) bool {
		switch r.GetStatus() {
		case daguhav1.RunStatus_RUN_STATUS_QUEUED:
			queued[r.GetSelectorKey()] = append(queued[r.GetSelectorKey()], r.GetId())
		case daguhav1.RunStatus_RUN_STATUS_RUNNING:
			running = append(running, r.GetWorkerId()+"/"+r.GetId())
		}
		return true
	}); err != nil {
		return err
	}
	selectors, _, err := s.PendingSelectors()
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, sel := range selectors {
		listed[sel.Key] = true
		want := queued[sel.Key]
		if sel.Pending != uint64(len(want)) {
			return fmt.Errorf("selector %q counts %d pending runs; %d runs are queued on it", sel.Key, sel.Pending, len(want))
		}
		var got []string
		var prev *daguhav1.Run
		var head string
		var problem error
		_ = s.EachPending(sel.Key, func(r *daguhav1.Run) bool {
			switch {
			case r.GetStatus() != daguhav1.RunStatus_RUN_STATUS_QUEUED || r.GetSelectorKey() != sel.Key:
				problem = fmt.Errorf("pending queue %q holds run %q (%s, selector %q)", sel.Key, r.GetId(), r.GetStatus(), r.GetSelectorKey())
			case prev != nil && (r.GetCreateIndex() < prev.GetCreateIndex() ||
				r.GetCreateIndex() == prev.GetCreateIndex() && r.GetId() <= prev.GetId()):
				problem = fmt.Errorf("pending queue %q is out of order: %q (index %d) after %q (index %d)",
					sel.Key, r.GetId(), r.GetCreateIndex(), prev.GetId(), prev.GetCreateIndex())
			}
			if prev == nil {
				head = r.GetId()
			}
			got, prev = append(got, r.GetId()), r
			return problem == nil
		})
		if problem != nil {
			return problem
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			missing := "none"
			for _, id := range want {
				if _, found := slices.BinarySearch(got, id); !found {
					missing = strconv.Quote(id)
					break
				}
			}
			return fmt.Errorf("pending queue %q lists %d runs; %d are queued on it (first missing: %s)", sel.Key, len(got), len(want), missing)
		}
		if first, err := s.FirstPending(sel.Key); err != nil || first.GetId() != head {
			return fmt.Errorf("first pending run of %q is %v (%v); the queue starts with %q", sel.Key, first, err, head)
		}
	}
	for key, ids := range queued {
		if !listed[key] {
			return fmt.Errorf("%d runs are queued on selector %q, which is not listed as pending", len(ids), key)
		}
	}
	var indexed []string
	_ = s.EachRunning("", func(r *daguhav1.Run) bool { indexed = append(indexed, r.GetWorkerId()+"/"+r.GetId()); return true })
	slices.Sort(running)
	slices.Sort(indexed)
	if !slices.Equal(running, indexed) {
		return fmt.Errorf("running index lists %d runs; %d runs are running", len(indexed), len(running))
	}
	return nil
}

func requireQueues(t testing.TB, what string, s *store.StateStore) {
	t.Helper()
	if err := queueProblem(s); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// requireSameResponse compares two Apply responses: type, result, error.
func requireSameResponse(t testing.TB, index uint64, x, y interface{}) *fsm.Response {
	t.Helper()
	a, okA := x.(*fsm.Response)
	b, okB := y.(*fsm.Response)
	if !okA || !okB || a == nil || b == nil {
		t.Fatalf("entry %d: Apply returned %T and %T, want *fsm.Response", index, x, y)
	}
	if a.Type != b.Type {
		t.Fatalf("entry %d: response types %d vs %d", index, a.Type, b.Type)
	}
	if !proto.Equal(a.Result, b.Result) {
		t.Fatalf("entry %d: results differ:\n%v\n%v", index, a.Result, b.Result)
	}
	if errString(a.Err) != errString(b.Err) {
		t.Fatalf("entry %d: errors differ: %v vs %v", index, a.Err, b.Err)
	}
	return a
}

// ---- determinism -----------------------------------------------------------

func TestReplicasFedTheSameLogEndEqual(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 7))
	log := randomLog(t, rng, 10_000)
	a, b := newFSM(t), newFSM(t)
	distinct := map[string]bool{}
	fired := map[string]bool{}
	var created, retries, conflicts, noops, ignored, pruned, removed int
	for i, command := range log {
		index := uint64(i + 1)
		resp := requireSameResponse(t, index, a.Apply(entry(index, command)), b.Apply(entry(index, command)))
		if resp.Type != fsm.MessageType(command[0]) {
			t.Fatalf("entry %d: response type %d for a command of type %d", index, resp.Type, command[0])
		}
		if resp.Err != nil {
			// Every generated command is well formed; an error means a store
			// invariant broke (e.g. a pending count that cannot drop).
			t.Fatalf("entry %d (type %d) was rejected: %v", index, resp.Type, resp.Err)
		}
		switch result := resp.Result.(type) {
		case *daguhav1.EnqueueRunsResult:
			_, body, err := fsm.Decode(command)
			if err != nil {
				t.Fatal(err)
			}
			runs := body.(*daguhav1.EnqueueRunsCommand).GetRuns()
			if len(result.GetOutcomes()) != len(runs) {
				t.Fatalf("entry %d: %d outcomes for %d runs", index, len(result.GetOutcomes()), len(runs))
			}
			for j, o := range result.GetOutcomes() {
				if o.GetRunId() != runs[j].GetId() {
					t.Fatalf("entry %d: outcome %d is for %q, run %d is %q", index, j, o.GetRunId(), j, runs[j].GetId())
				}
				distinct[o.GetRunId()] = true
				switch {
				case o.GetCreated() && o.GetConflict() != "":
					t.Fatalf("entry %d: run %q both created and in conflict", index, o.GetRunId())
				case o.GetCreated():
					created++
				case o.GetConflict() != "":
					conflicts++
				default:
					retries++
				}
			}
		case *daguhav1.FireSchedulesResult:
			_, body, err := fsm.Decode(command)
			if err != nil {
				t.Fatal(err)
			}
			for j, o := range result.GetOutcomes() {
				firing := body.(*daguhav1.FireSchedulesCommand).GetFirings()[j]
				slot := fmt.Sprintf("%s@%d", firing.GetDagName(), firing.GetSlotUnix())
				if o.GetApplied() {
					if fired[slot] {
						t.Fatalf("entry %d: slot %s fired twice", index, slot)
					}
					fired[slot] = true
					distinct[o.GetRunId()] = true
					created++
				}
			}
		case *daguhav1.PruneRunsResult:
			pruned += len(result.GetPrunedRootRunIds())
			removed += int(result.GetRunsRemoved())
			if len(result.GetPrunedRootRunIds()) > int(result.GetRunsRemoved()) {
				t.Fatalf("entry %d: %d roots pruned but %d runs removed", index, len(result.GetPrunedRootRunIds()), result.GetRunsRemoved())
			}
		case *daguhav1.NoopResult:
			noops++
		case nil:
			if resp.Type != fsm.MessageType(ignorableType) {
				t.Fatalf("entry %d: no result for a command of type %d", index, resp.Type)
			}
			ignored++
		}
	}
	requireSameState(t, "after 10,000 commands", a, b)
	requireQueues(t, "replica a", a.State())
	requireQueues(t, "replica b", b.State())
	if a.LastApplied() != uint64(len(log)) {
		t.Fatalf("last applied %d after %d entries", a.LastApplied(), len(log))
	}

	// Sanity: the log exercised what it is meant to.
	runs := allRuns(t, a.State())
	if len(runs) != created-removed || len(runs) > len(distinct) {
		t.Fatalf("store has %d runs; %d distinct ids were enqueued, %d created, %d pruned", len(runs), len(distinct), created, removed)
	}
	if pruned == 0 {
		t.Fatal("no run was pruned: the log does not exercise retention")
	}
	// Retention removes whole hierarchies: no child outlives its parent.
	byID := map[string]bool{}
	for _, run := range runs {
		byID[run.GetId()] = true
	}
	for _, run := range runs {
		if parent := run.GetParentDagRunId(); parent != "" && !byID[parent] {
			t.Fatalf("run %q outlived its parent %q", run.GetId(), parent)
		}
	}
	if len(fired) == 0 {
		t.Fatal("no schedule slot fired")
	}
	if retries == 0 || conflicts == 0 || noops == 0 || ignored == 0 {
		t.Fatalf("the log exercised %d retries, %d conflicts, %d no-ops, %d ignorable commands; want some of each", retries, conflicts, noops, ignored)
	}
	statuses := map[daguhav1.RunStatus]int{}
	attempts := 0
	for _, run := range runs {
		statuses[run.GetStatus()]++
		attempts += len(run.GetAttempts())
	}
	for _, status := range []daguhav1.RunStatus{daguhav1.RunStatus_RUN_STATUS_QUEUED, daguhav1.RunStatus_RUN_STATUS_RUNNING,
		daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, daguhav1.RunStatus_RUN_STATUS_FAILED, daguhav1.RunStatus_RUN_STATUS_CANCELLED} {
		if statuses[status] == 0 {
			t.Fatalf("no run ended %s: the log does not exercise dispatch (%v)", status, statuses)
		}
	}
	t.Logf("%d entries: %d runs, %d retries, %d conflicts, %d no-ops, %d ignored, %d attempts, %d hierarchies (%d runs) pruned, statuses %v",
		len(log), created, retries, conflicts, noops, ignored, attempts, pruned, removed, statuses)
}

// ---- snapshot and restore --------------------------------------------------

// memorySink is a raft.SnapshotSink over a buffer.
type memorySink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memorySink) ID() string    { return "memory" }
func (s *memorySink) Close() error  { s.closed = true; return nil }
func (s *memorySink) Cancel() error { s.cancelled = true; return nil }

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func readCloser(data []byte) nopCloser { return nopCloser{bytes.NewReader(data)} }

func TestSnapshotRestoreEqualsReplay(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 11))
	log := randomLog(t, rng, 4_000)
	half := uint64(len(log) / 2)

	a := newFSM(t)
	applyAll(a, log[:half], 1)
	atSnapshot := snapshotBytes(t, a)
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Raft persists a snapshot on its own goroutine while Apply goes on:
	// the writes after Snapshot() must not leak into it (run with -race).
	sink := &memorySink{}
	persisted := make(chan error, 1)
	go func() { persisted <- snap.Persist(sink) }()
	applyAll(a, log[half:], half+1)
	if err := <-persisted; err != nil {
		t.Fatalf("persist: %v", err)
	}
	snap.Release()
	if !sink.closed || sink.cancelled {
		t.Fatalf("a successful persist left the sink closed=%t cancelled=%t", sink.closed, sink.cancelled)
	}
	if !bytes.Equal(sink.Bytes(), atSnapshot) {
		t.Fatalf("the snapshot taken at entry %d changed with later writes", half)
	}

	// B starts with a record the snapshot does not have: a restore replaces
	// the state, it does not merge into it.
	b := newFSM(t)
	b.Apply(entry(1, enqueueCommand(t, &daguhav1.Run{Id: "only-in-b", DagName: "d"})))
	if err := b.Restore(readCloser(sink.Bytes())); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if b.LastApplied() != half {
		t.Fatalf("restored FSM reports last applied %d, want %d", b.LastApplied(), half)
	}
	if run, _ := b.State().Run("only-in-b"); run != nil {
		t.Fatal("a record from before the restore survived it")
	}
	requireQueues(t, "just restored", b.State())
	applyAll(b, log[half:], half+1)

	c := newFSM(t)
	applyAll(c, log, 1)

	requireSameState(t, "restored+replayed vs snapshotted", a, b)
	requireSameState(t, "restored+replayed vs replayed from scratch", b, c)
	requireQueues(t, "restored+replayed", b.State())
}

// ---- unknown and malformed commands ----------------------------------------

// applyRecovering applies one entry and returns its response, or the
// message of the panic it caused.
func applyRecovering(f *fsm.FSM, index uint64, command []byte) (resp interface{}, panicked string) {
	defer func() {
		if r := recover(); r != nil {
			panicked = fmt.Sprint(r)
			if panicked == "" {
				panicked = "<empty panic>"
			}
		}
	}()
	return f.Apply(entry(index, command)), ""
}

func TestUnknownCommandTypes(t *testing.T) {
	enqueueBody := enqueueCommand(t, &daguhav1.Run{Id: "b", DagName: "d"})[1:]
	cases := []struct {
		name      string
		command   []byte
		wantPanic []string // nil: must be skipped without a panic
	}{
		{"unknown type without the ignorable bit panics", []byte{0x7e, 1, 2}, []string{"unknown command type 126", "entry 2"}},
		{"the next unassigned type panics", []byte{byte(fsm.DequeueRunsType) + 1}, []string{"unknown command type 17", "entry 2"}},
		{"the highest type without the bit panics", append([]byte{0x7f}, enqueueBody...), []string{"unknown command type 127", "entry 2"}},
		{"an empty command panics", nil, []string{"empty command", "entry 2"}},
		{"a known type with a corrupt body panics", []byte{byte(fsm.EnqueueRunsType), 0xff, 0xff, 0xff}, []string{"decode command type 1", "entry 2"}},
		{"an ignorable unknown type is skipped", []byte{ignorableType, 9, 9}, nil},
		{"an ignorable type without a body is skipped", []byte{byte(fsm.IgnoreUnknown)}, nil},
		{"the ignorable bit on a known type's number is another type, skipped", append([]byte{byte(fsm.IgnoreUnknown | fsm.EnqueueRunsType)}, enqueueBody...), nil},
		{"0xff is skipped", []byte{0xff, 0}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFSM(t)
			f.Apply(entry(1, enqueueCommand(t, &daguhav1.Run{Id: "a", DagName: "d"})))
			before := stateBytes(t, f)
			resp, panicked := applyRecovering(f, 2, tc.command)
			if tc.wantPanic != nil {
				if panicked == "" {
					t.Fatalf("Apply returned %v; want a panic", resp)
				}
				for _, want := range tc.wantPanic {
					if !strings.Contains(panicked, want) {
						t.Fatalf("panic %q does not mention %q", panicked, want)
					}
				}
				if f.LastApplied() != 1 {
					t.Fatalf("an entry that panicked counts as applied: last applied %d", f.LastApplied())
				}
			} else {
				if panicked != "" {
					t.Fatalf("an ignorable command panicked: %s", panicked)
				}
				r, ok := resp.(*fsm.Response)
				if !ok || r == nil || r.Type != fsm.MessageType(tc.command[0]) || r.Result != nil || r.Err != nil {
					t.Fatalf("response %#v; want type %d with neither result nor error", resp, tc.command[0])
				}
				if f.LastApplied() != 2 {
					t.Fatalf("a skipped command still counts as applied: last applied %d, want 2", f.LastApplied())
				}
			}
			if !bytes.Equal(stateBytes(t, f), before) {
				t.Fatal("the command changed the state")
			}
			if run, _ := f.State().Run("b"); run != nil {
				t.Fatal("a command not applied created a run")
			}
		})
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name    string
		command []byte
		wantErr string // "" accepts
	}{
		{"a good enqueue is accepted", enqueueCommand(t, &daguhav1.Run{Id: "a", DagName: "d"}, &daguhav1.Run{Id: "b", DagName: "d"}), ""},
		{"an empty enqueue is accepted", enqueueCommand(t), ""},
		{"a noop is accepted", encode(t, fsm.NoopType, &daguhav1.NoopCommand{}), ""},
		{"a grant is accepted", encode(t, fsm.GrantLeasesType, &daguhav1.GrantLeasesCommand{Grants: []*daguhav1.Grant{{RunId: "a"}}}), ""},
		{"an empty command is rejected", nil, "empty command"},
		{"an unknown type is rejected", []byte{0x7e}, "unknown command type 126 (ignorable: false)"},
		{"an unknown ignorable type is rejected", []byte{ignorableType, 1}, "unknown command type 126 (ignorable: true)"},
		{"a corrupt body is rejected", []byte{byte(fsm.EnqueueRunsType), 0xff}, "decode command type 1"},
		{"a run without id is rejected", enqueueCommand(t, &daguhav1.Run{DagName: "d"}), "run 0 has no id"},
		{"a later run without id is rejected", enqueueCommand(t, &daguhav1.Run{Id: "a", DagName: "d"}, &daguhav1.Run{DagName: "d"}), "run 1 has no id"},
		{"a run without DAG name is rejected", enqueueCommand(t, &daguhav1.Run{Id: "x"}), `run "x" has no DAG name`},
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
			// The leader validates its own commands before encoding
			// them (ValidateBody): the same verdict on the same body.
			if typ, body, derr := fsm.Decode(tc.command); derr == nil {
				if berr := fsm.ValidateBody(typ, body); (berr == nil) != (err == nil) || (berr != nil && berr.Error() != err.Error()) {
					t.Fatalf("ValidateBody says %v where Validate says %v", berr, err)
				}
			}
		})
	}
	t.Run("a body of another type than its command type is rejected", func(t *testing.T) {
		err := fsm.ValidateBody(fsm.EnqueueRunsType, &daguhav1.GrantLeasesCommand{Grants: []*daguhav1.Grant{{RunId: "a"}}})
		if err == nil || !strings.Contains(err.Error(), "EnqueueRunsCommand, not daguha.v1.GrantLeasesCommand") {
			t.Fatalf("error %v, want one naming both message types", err)
		}
		if err := fsm.ValidateBody(0x7e, &daguhav1.NoopCommand{}); err == nil || !strings.Contains(err.Error(), "unknown command type 126") {
			t.Fatalf("error %v for an unknown type, want one naming it", err)
		}
	})
	t.Run("every known type with an empty body is accepted", func(t *testing.T) {
		for typ := fsm.NoopType; typ <= fsm.RemoveWorkersType; typ++ {
			if err := fsm.Validate([]byte{byte(typ)}); err != nil {
				t.Errorf("type %d: %v", typ, err)
			}
		}
	})
}

// ---- enqueue ---------------------------------------------------------------

func enqueueOutcomes(t *testing.T, resp interface{}) []*daguhav1.EnqueueOutcome {
	t.Helper()
	r := resp.(*fsm.Response)
	if r.Err != nil {
		t.Fatalf("enqueue rejected: %v", r.Err)
	}
	return r.Result.(*daguhav1.EnqueueRunsResult).GetOutcomes()
}

func TestEnqueueOfAKnownIDIsARetryOrAConflict(t *testing.T) {
	first := &daguhav1.Run{Id: "r", DagName: "etl", Params: "A=1", EnqueuedAtUnixNano: 5, RootDagRunId: "root-1"}
	cases := []struct {
		name         string
		again        *daguhav1.Run
		wantConflict []string // nil: a retry
	}{
		{"same DAG and params is a retry", &daguhav1.Run{Id: "r", DagName: "etl", Params: "A=1"}, nil},
		{"another enqueue time or hierarchy is still a retry", &daguhav1.Run{Id: "r", DagName: "etl", Params: "A=1", EnqueuedAtUnixNano: 9, RootDagRunId: "root-2"}, nil},
		{"another DAG conflicts", &daguhav1.Run{Id: "r", DagName: "report", Params: "A=1"}, []string{`"r"`, `"etl"`, `"report"`}},
		{"other params conflict", &daguhav1.Run{Id: "r", DagName: "etl", Params: "A=2"}, []string{`"r"`, `"A=1"`, `"A=2"`}},
		{"no params conflict with params", &daguhav1.Run{Id: "r", DagName: "etl"}, []string{`"r"`, `"A=1"`, `""`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFSM(t)
			o := enqueueOutcomes(t, f.Apply(entry(7, enqueueCommand(t, first))))
			if len(o) != 1 || o[0].GetRunId() != "r" || !o[0].GetCreated() || o[0].GetConflict() != "" {
				t.Fatalf("first enqueue: %v", o)
			}
			stored, _ := f.State().Run("r")
			o = enqueueOutcomes(t, f.Apply(entry(8, enqueueCommand(t, tc.again))))
			if len(o) != 1 || o[0].GetRunId() != "r" || o[0].GetCreated() {
				t.Fatalf("second enqueue: %v; want created=false", o)
			}
			if tc.wantConflict == nil && o[0].GetConflict() != "" {
				t.Fatalf("a retry reported conflict %q", o[0].GetConflict())
			}
			if tc.wantConflict != nil && o[0].GetConflict() == "" {
				t.Fatal("no conflict reported")
			}
			for _, want := range tc.wantConflict {
				if !strings.Contains(o[0].GetConflict(), want) {
					t.Fatalf("conflict %q does not mention %s", o[0].GetConflict(), want)
				}
			}
			after, _ := f.State().Run("r")
			if !proto.Equal(after, stored) || len(allRuns(t, f.State())) != 1 {
				t.Fatalf("the second enqueue changed the run:\n%v\n%v", stored, after)
			}
			if after.GetStatus() != daguhav1.RunStatus_RUN_STATUS_QUEUED || after.GetCreateIndex() != 7 || after.GetModifyIndex() != 7 {
				t.Fatalf("stored run %v; want queued with create and modify index 7", after)
			}
		})
	}
}

func TestEnqueueStoresAQueuedRunAtTheEntryIndex(t *testing.T) {
	f := newFSM(t)
	// The fields that belong to the state machine are overwritten, whatever
	// the command says; the request's own fields are kept.
	sent := &daguhav1.Run{
		Id: "r", DagName: "etl", Params: "A=1", EnqueuedAtUnixNano: 1234,
		RootDagRunName: "root", RootDagRunId: "root-1",
		Dag:    &daguhav1.DagSpec{Name: "etl", WorkerSelector: map[string]string{"zone": "eu", "gpu": "true"}},
		Status: daguhav1.RunStatus_RUN_STATUS_RUNNING, CreateIndex: 1, ModifyIndex: 1, SelectorKey: "bogus",
		Attempt: 3, WorkerId: "w", FencingToken: 9,
	}
	o := enqueueOutcomes(t, f.Apply(entry(42, enqueueCommand(t, sent))))
	if len(o) != 1 || !o[0].GetCreated() {
		t.Fatalf("outcome %v", o)
	}
	run, err := f.State().Run("r")
	if err != nil || run == nil {
		t.Fatalf("run r: %v, %v", run, err)
	}
	want := proto.Clone(sent).(*daguhav1.Run)
	want.Status, want.CreateIndex, want.ModifyIndex, want.SelectorKey = daguhav1.RunStatus_RUN_STATUS_QUEUED, 42, 42, "gpu=true,zone=eu"
	want.Attempt, want.WorkerId, want.FencingToken = 0, "", 0
	if !proto.Equal(run, want) {
		t.Fatalf("stored run\n%v\nwant\n%v", run, want)
	}
	if got := f.State().TableIndex("runs"); got != 42 {
		t.Fatalf("runs table index %d, want 42", got)
	}
	requireQueues(t, "after enqueue", f.State())
}

func TestEnqueueBatchSeesItsOwnRuns(t *testing.T) {
	f := newFSM(t)
	o := enqueueOutcomes(t, f.Apply(entry(1, enqueueCommand(t,
		&daguhav1.Run{Id: "a", DagName: "etl"},
		&daguhav1.Run{Id: "a", DagName: "etl"},
		&daguhav1.Run{Id: "b", DagName: "etl"},
		&daguhav1.Run{Id: "b", DagName: "report"},
	))))
	got := make([]string, len(o))
	for i, outcome := range o {
		switch {
		case outcome.GetCreated():
			got[i] = outcome.GetRunId() + ":created"
		case outcome.GetConflict() != "":
			got[i] = outcome.GetRunId() + ":conflict"
		default:
			got[i] = outcome.GetRunId() + ":retry"
		}
	}
	if want := []string{"a:created", "a:retry", "b:created", "b:conflict"}; !slices.Equal(got, want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	if b, _ := f.State().Run("b"); b.GetDagName() != "etl" {
		t.Fatalf("the conflicting run replaced the first: %v", b)
	}
	requireQueues(t, "after a batch with repeated ids", f.State())
}

// ---- WaitApplied -----------------------------------------------------------

func noop(t testing.TB) []byte { return encode(t, fsm.NoopType, &daguhav1.NoopCommand{}) }

// waitAsync starts WaitApplied on its own goroutine.
func waitAsync(ctx context.Context, f *fsm.FSM, index uint64) <-chan error {
	done := make(chan error, 1)
	go func() { done <- f.WaitApplied(ctx, index) }()
	return done
}

func TestWaitApplied(t *testing.T) {
	// Safety net only: no case should come near it.
	bound := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	t.Run("returns at once for an index already applied", func(t *testing.T) {
		f := newFSM(t)
		applyAll(f, [][]byte{noop(t), noop(t), noop(t)}, 1)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // even a dead context: nothing to wait for
		for _, index := range []uint64{0, 1, 3} {
			if err := f.WaitApplied(ctx, index); err != nil {
				t.Fatalf("WaitApplied(%d) at applied index 3: %v", index, err)
			}
		}
	})
	t.Run("returns once the index is applied", func(t *testing.T) {
		f := newFSM(t)
		done := waitAsync(bound(t), f, 2)
		f.Apply(entry(1, noop(t)))
		select {
		case err := <-done:
			t.Fatalf("WaitApplied(2) returned at index 1: %v", err)
		default:
		}
		f.Apply(entry(2, noop(t)))
		if err := <-done; err != nil {
			t.Fatalf("WaitApplied(2) after index 2: %v", err)
		}
	})
	t.Run("an ignored command counts as applied", func(t *testing.T) {
		f := newFSM(t)
		done := waitAsync(bound(t), f, 1)
		f.Apply(entry(1, []byte{ignorableType}))
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a restore past the index wakes the waiter", func(t *testing.T) {
		source := newFSM(t)
		source.Apply(entry(60, enqueueCommand(t, &daguhav1.Run{Id: "a", DagName: "d"})))
		f := newFSM(t)
		done := waitAsync(bound(t), f, 50)
		if err := f.Restore(readCloser(snapshotBytes(t, source))); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("WaitApplied(50) after restoring index 60: %v", err)
		}
	})
	t.Run("returns the context error when cancelled first", func(t *testing.T) {
		f := newFSM(t)
		f.Apply(entry(1, noop(t)))
		ctx, cancel := context.WithCancel(context.Background())
		done := waitAsync(ctx, f, 3)
		f.Apply(entry(2, noop(t)))
		cancel()
		err := <-done
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "index 3") {
			t.Fatalf("cancelled wait returned %v; want context.Canceled naming index 3", err)
		}
	})
	t.Run("returns the context error at its deadline", func(t *testing.T) {
		f := newFSM(t)
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		if err := f.WaitApplied(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("expired wait returned %v; want context.DeadlineExceeded", err)
		}
	})
}

// ---- snapshot stream errors ------------------------------------------------

// frame is one snapshot record: type byte, uvarint length, body.
func frame(kind byte, msg proto.Message) []byte {
	body, err := proto.Marshal(msg)
	if err != nil {
		panic(err)
	}
	return append(binary.AppendUvarint([]byte{kind}, uint64(len(body))), body...)
}

// snapshotStream builds a stream by hand: magic, header, records, and the
// end marker.
func snapshotStream(header *daguhav1.SnapshotHeader, records ...[]byte) []byte {
	out := []byte("DAGUHASNAP")
	out = append(out, frame(0, header)[1:]...)
	for _, r := range records {
		out = append(out, r...)
	}
	return append(out, 0xff)
}

const (
	recordTableIndex byte = 1
	recordRun        byte = 2
	recordWorker     byte = 3
)

// smallState is an FSM holding two queued runs and a running one (entry 3
// granted r1 to w1: fencing token 3), a worker and, withMeta, cluster meta
// (entry 4): a little of everything a snapshot carries.
func smallState(t testing.TB, withMeta bool) *fsm.FSM {
	t.Helper()
	f := newFSM(t)
	f.Apply(entry(1, encode(t, fsm.RegisterWorkersType, &daguhav1.RegisterWorkersCommand{Workers: []*daguhav1.Worker{{Id: "w1", Labels: map[string]string{"gpu": "true"}}}})))
	f.Apply(entry(2, enqueueCommand(t,
		&daguhav1.Run{Id: "q1", DagName: "d", Params: "X=1", Dag: &daguhav1.DagSpec{WorkerSelector: map[string]string{"gpu": "true"}}},
		&daguhav1.Run{Id: "q2", DagName: "d", Dag: &daguhav1.DagSpec{WorkerSelector: map[string]string{"gpu": "true"}}},
		&daguhav1.Run{Id: "r1", DagName: "d"})))
	f.Apply(entry(3, encode(t, fsm.GrantLeasesType, &daguhav1.GrantLeasesCommand{Grants: []*daguhav1.Grant{{RunId: "r1", WorkerId: "w1", Attempt: 1}}})))
	if withMeta {
		f.Apply(entry(4, encode(t, fsm.SetClusterMetaType, &daguhav1.SetClusterMetaCommand{Meta: &daguhav1.ClusterMeta{SigningKey: []byte("k")}})))
	}
	return f
}

func TestReadSnapshotRoundTrips(t *testing.T) {
	f := smallState(t, true)
	good := snapshotBytes(t, f)
	restored, last, err := fsm.ReadSnapshot(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if last != 4 {
		t.Fatalf("last index %d, want 4", last)
	}
	var again bytes.Buffer
	if err := fsm.WriteSnapshot(&again, restored, last); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), good) {
		t.Fatal("a restored store writes a different snapshot")
	}
	requireQueues(t, "restored", restored)
	if !proto.Equal(restored.ClusterMeta(), f.State().ClusterMeta()) || len(allWorkers(t, restored)) != 1 || len(allRuns(t, restored)) != 3 {
		t.Fatal("records were lost in the round trip")
	}
}

func TestReadSnapshotRejectsDamagedStreams(t *testing.T) {
	good := snapshotBytes(t, smallState(t, true))
	header := func(runs, workers uint64) *daguhav1.SnapshotHeader {
		return &daguhav1.SnapshotHeader{Version: fsm.SnapshotVersion, LastIndex: 9, Runs: runs, Workers: workers}
	}
	run := func(id string) []byte { return frame(recordRun, &daguhav1.Run{Id: id, DagName: "d"}) }
	cases := []struct {
		name    string
		stream  []byte
		wantErr string
	}{
		{"an empty stream", nil, "read snapshot magic"},
		{"wrong magic", append([]byte("NOTASNAPSH"), good[10:]...), "not a daguha snapshot"},
		{"version 0", snapshotStream(&daguhav1.SnapshotHeader{}), "version 0 is not supported"},
		{"a future version", snapshotStream(&daguhav1.SnapshotHeader{Version: fsm.SnapshotVersion + 1}), fmt.Sprintf("version %d is not supported", fsm.SnapshotVersion+1)},
		{"a corrupt header", append([]byte("DAGUHASNAP\x03"), 0xff, 0xff, 0xff), "snapshot header"},
		{"an unknown record type", append(append([]byte(nil), good[:len(good)-1]...), 0x42, 0), "record type 66 is unknown"},
		{"fewer runs than the header says", snapshotStream(header(5, 0)), "has 0 runs, header says 5"},
		{"more runs than the header says", snapshotStream(header(1, 0), run("a"), run("b")), "has 2 runs, header says 1"},
		{"fewer workers than the header says", snapshotStream(header(0, 2), frame(recordWorker, &daguhav1.Worker{Id: "w"})), "has 1 workers, header says 2"},
		{"a record longer than the limit", append(snapshotStream(header(1, 0))[:len(snapshotStream(header(1, 0)))-1], binary.AppendUvarint([]byte{recordRun}, 1<<40)...), "exceeds"},
		{"a corrupt run record", snapshotStream(header(1, 0), []byte{recordRun, 2, 0xff, 0xff}), "run record 1"},
		{"a run without id", snapshotStream(header(1, 0), frame(recordRun, &daguhav1.Run{DagName: "d"})), "restore run"},
		{"the same run twice", snapshotStream(header(2, 0), run("a"), run("a")), `run "a" appears twice`},
		{"a table index without table", snapshotStream(header(0, 0), frame(recordTableIndex, &daguhav1.TableIndex{Index: 3})), "restore index"},
		{"no end marker", snapshotStream(header(1, 0), run("a"))[:len(snapshotStream(header(1, 0), run("a")))-1], "without end marker"},
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
		})
	}
	t.Run("every truncation is rejected", func(t *testing.T) {
		for cut := range len(good) {
			if _, _, err := fsm.ReadSnapshot(bytes.NewReader(good[:cut])); err == nil {
				t.Fatalf("snapshot cut at %d of %d bytes was accepted", cut, len(good))
			}
		}
		if _, _, err := fsm.ReadSnapshot(bytes.NewReader(good)); err != nil {
			t.Fatalf("the whole snapshot: %v", err)
		}
	})
	t.Run("a failed restore leaves the FSM as it was", func(t *testing.T) {
		f := newFSM(t)
		f.Apply(entry(7, enqueueCommand(t, &daguhav1.Run{Id: "mine", DagName: "d"})))
		before := snapshotBytes(t, f)
		if err := f.Restore(readCloser(good[:len(good)-1])); err == nil {
			t.Fatal("a truncated snapshot was restored")
		}
		if !bytes.Equal(snapshotBytes(t, f), before) || f.LastApplied() != 7 {
			t.Fatal("a failed restore changed the state")
		}
	})
}
