package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// fakeCoordinator hands out one task and plays the cluster for it.
type fakeCoordinator struct {
	daguhav1.UnimplementedCoordinatorServiceServer
	mu        sync.Mutex
	task      *daguhav1.Task
	enqueues  []*daguhav1.EnqueueChildRequest
	watchMins []uint64
	reports   []*daguhav1.StepState
	finish    *daguhav1.FinishRunRequest
	finished  chan struct{}
}

func (f *fakeCoordinator) Poll(ctx context.Context, req *daguhav1.PollRequest) (*daguhav1.PollResponse, error) {
	f.mu.Lock()
	task := f.task
	f.task = nil
	f.mu.Unlock()
	if task != nil {
		return &daguhav1.PollResponse{Task: task}, nil
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(req.GetWaitMillis()) * time.Millisecond):
	}
	return &daguhav1.PollResponse{}, nil
}

func (f *fakeCoordinator) Heartbeat(context.Context, *daguhav1.HeartbeatRequest) (*daguhav1.HeartbeatResponse, error) {
	return &daguhav1.HeartbeatResponse{}, nil
}

func (f *fakeCoordinator) ReportStep(_ context.Context, req *daguhav1.ReportStepRequest) (*daguhav1.ReportStepResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reports = append(f.reports, proto.Clone(req.GetStep()).(*daguhav1.StepState))
	return &daguhav1.ReportStepResponse{}, nil
}

func (f *fakeCoordinator) FinishRun(_ context.Context, req *daguhav1.FinishRunRequest) (*daguhav1.FinishRunResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.finish == nil {
		f.finish = proto.Clone(req).(*daguhav1.FinishRunRequest)
		close(f.finished)
	}
	return &daguhav1.FinishRunResponse{}, nil
}

func (f *fakeCoordinator) EnqueueChild(_ context.Context, req *daguhav1.EnqueueChildRequest) (*daguhav1.EnqueueChildResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enqueues = append(f.enqueues, proto.Clone(req).(*daguhav1.EnqueueChildRequest))
	return &daguhav1.EnqueueChildResponse{ChildRunId: "child-1", Created: true}, nil
}

// WatchRun moves the child along one change per call: running at 5 and
// 7, succeeded at 9.
func (f *fakeCoordinator) WatchRun(_ context.Context, req *daguhav1.WatchRunRequest) (*daguhav1.WatchRunResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watchMins = append(f.watchMins, req.GetMinModifyIndex())
	run := &daguhav1.Run{Id: req.GetRunId(), Status: daguhav1.RunStatus_RUN_STATUS_RUNNING}
	switch req.GetMinModifyIndex() {
	case 0:
		run.ModifyIndex = 5
	case 5:
		run.ModifyIndex = 7
	default:
		run.ModifyIndex, run.Status, run.Outputs = 9, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, map[string]string{"k": "v"}
	}
	return &daguhav1.WatchRunResponse{Run: run}, nil
}

// The worker runs a task through the engine over the coordinator client:
// the child step enqueues its child under the lease, long-polls it from
// the last modify index seen until it ends (its result, as Dagu's, is the
// step's output), and the run's outputs go with FinishRun.
func TestWorkerRunsChildStepsThroughTheCoordinator(t *testing.T) {
	coordinator := &fakeCoordinator{finished: make(chan struct{}), task: &daguhav1.Task{LeaseToken: "lease-1", LogTicket: "ticket-1", Run: &daguhav1.Run{
		Id: "parent", DagName: "p", Attempt: 1, Dag: &daguhav1.DagSpec{Name: "p", Steps: []*daguhav1.StepSpec{
			{Name: "call", ChildDag: "sub", Output: "CHILD"},
			{Name: "use", Depends: []string{"call"}, Command: `echo "got ${CHILD.outputs.k}"`, Output: "USED"},
		}},
	}}}
	listener := bufconn.Listen(1 << 20)
	server := grpc.NewServer()
	daguhav1.RegisterCoordinatorServiceServer(server, coordinator)
	go func() { _ = server.Serve(listener) }()
	defer server.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return listener.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	worker, err := New(conn, Config{ID: "w1", MaxActiveRuns: 1, PollWait: 100 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond, LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(worker.LogDir())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = worker.Run(ctx)
	}()
	select {
	case <-coordinator.finished:
	case <-ctx.Done():
		t.Fatal("the run did not finish")
	}
	cancel()
	<-done

	coordinator.mu.Lock()
	defer coordinator.mu.Unlock()
	if f := coordinator.finish; f.GetStatus() != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED || f.GetLeaseToken() != "lease-1" ||
		!strings.Contains(f.GetOutputs()["CHILD"], `"dagRunId": "child-1"`) || f.GetOutputs()["USED"] != "got v" {
		t.Errorf("finish: %v", f)
	}
	if len(coordinator.enqueues) != 1 || coordinator.enqueues[0].GetLeaseToken() != "lease-1" ||
		coordinator.enqueues[0].GetStepName() != "call" || coordinator.enqueues[0].GetRetry() != 1 {
		t.Errorf("enqueues: %v", coordinator.enqueues)
	}
	if got := coordinator.watchMins; len(got) != 3 || got[0] != 0 || got[1] != 5 || got[2] != 7 {
		t.Errorf("watch min indexes %v, want [0 5 7]", got)
	}
	var childID string
	for _, r := range coordinator.reports {
		if r.GetName() == "call" && r.GetStatus() == daguhav1.StepStatus_STEP_STATUS_SUCCEEDED {
			childID = r.GetChildRunId()
		}
	}
	if childID != "child-1" {
		t.Errorf("reports: %v", coordinator.reports)
	}
	if _, err := os.Stat(worker.engine.LogPath("parent", 1, "use")); err != nil {
		t.Errorf("the step log is not in the worker's log dir: %v", err)
	}
	if kept, err := os.ReadFile(worker.engine.logTicketPath("parent", 1)); err != nil || string(kept) != "ticket-1" {
		t.Errorf("the worker kept the log ticket %q (%v), want the task's", kept, err)
	}
}

// A worker given no log directory makes a temporary one and removes it
// when it stops; one it was given is kept.
func TestWorkerRemovesOnlyTheLogDirItMade(t *testing.T) {
	conn, err := grpc.NewClient("passthrough:///nowhere", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	given := t.TempDir()
	for _, dir := range []string{"", given} {
		worker, err := New(conn, Config{ID: "w", MaxActiveRuns: 1, LogDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		made := worker.LogDir()
		if _, err := os.Stat(made); err != nil {
			t.Fatalf("log dir %s: %v", made, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := worker.Run(ctx); err != nil {
			t.Fatal(err)
		}
		_, err = os.Stat(made)
		if dir == "" && !os.IsNotExist(err) {
			t.Fatalf("the temporary log dir %s is left behind: %v", made, err)
		}
		if dir != "" && err != nil {
			t.Fatalf("the given log dir %s was removed: %v", made, err)
		}
	}
}

// recordingCoordinator hands out one task and records every report and
// finish call as it came; refuse, when set, refuses a report call.
type recordingCoordinator struct {
	daguhav1.UnimplementedCoordinatorServiceServer
	mu       sync.Mutex
	task     *daguhav1.Task
	calls    []string
	finish   *daguhav1.FinishRunRequest
	finished chan struct{}
	refuse   func(steps []*daguhav1.StepState) bool
	// refuseFinish refuses every finish as stale.
	refuseFinish bool
}

func describeSteps(steps []*daguhav1.StepState) string {
	var parts []string
	for _, s := range steps {
		parts = append(parts, s.GetName()+":"+strings.TrimPrefix(s.GetStatus().String(), "STEP_STATUS_"))
	}
	return strings.Join(parts, ",")
}

func (f *recordingCoordinator) Poll(ctx context.Context, req *daguhav1.PollRequest) (*daguhav1.PollResponse, error) {
	f.mu.Lock()
	task := f.task
	f.task = nil
	f.mu.Unlock()
	if task != nil {
		return &daguhav1.PollResponse{Task: task}, nil
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(req.GetWaitMillis()) * time.Millisecond):
	}
	return &daguhav1.PollResponse{}, nil
}

func (f *recordingCoordinator) Heartbeat(context.Context, *daguhav1.HeartbeatRequest) (*daguhav1.HeartbeatResponse, error) {
	return &daguhav1.HeartbeatResponse{}, nil
}

func (f *recordingCoordinator) ReportStep(_ context.Context, req *daguhav1.ReportStepRequest) (*daguhav1.ReportStepResponse, error) {
	steps := req.GetSteps()
	if req.GetStep() != nil {
		steps = append(steps, req.GetStep())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	call := "report " + describeSteps(steps)
	if len(req.GetSteps()) == 0 {
		call = "report1 " + describeSteps(steps)
	}
	if f.refuse != nil && f.refuse(steps) {
		f.calls = append(f.calls, call+" refused")
		return nil, status.Error(codes.FailedPrecondition, "stale lease")
	}
	f.calls = append(f.calls, call)
	return &daguhav1.ReportStepResponse{}, nil
}

func (f *recordingCoordinator) FinishRun(_ context.Context, req *daguhav1.FinishRunRequest) (*daguhav1.FinishRunResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "finish "+describeSteps(req.GetSteps()))
	if f.finish == nil {
		f.finish = proto.Clone(req).(*daguhav1.FinishRunRequest)
		close(f.finished)
	}
	if f.refuseFinish {
		return nil, status.Error(codes.FailedPrecondition, "stale lease")
	}
	if f.refuseFinish {
		return nil, status.Error(codes.FailedPrecondition, "stale lease")
	}
	return &daguhav1.FinishRunResponse{}, nil
}

func (f *recordingCoordinator) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the messages logged, each with its step and step status.
func (b *syncBuffer) lines(t *testing.T, msgs ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, line := range strings.Split(b.buf.String(), "\n") {
		if line == "" {
			continue
		}
		var l struct {
			Msg, Step string
			Status    string `json:"step_status"`
			CalledAt  int64  `json:"called_at_unix_nano"`
			Attempt   uint32 `json:"attempt"`
			Token     uint64 `json:"fencing_token"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if slices.Contains(msgs, l.Msg) {
			if l.Step != "" && l.CalledAt == 0 || l.Attempt != 1 || l.Token != 7 {
				t.Errorf("log line without its attempt, token or call time: %s", line)
			}
			out = append(out, l.Msg+" "+l.Step+":"+strings.TrimPrefix(l.Status, "STEP_STATUS_"))
		}
	}
	return out
}

// runOneTask runs a worker against coordinator until the task's finish
// arrives (or, when wantFinish is false, until done says so).
func runOneTask(t *testing.T, coordinator *recordingCoordinator, config Config, until func() bool) *syncBuffer {
	t.Helper()
	listener := bufconn.Listen(1 << 20)
	server := grpc.NewServer()
	daguhav1.RegisterCoordinatorServiceServer(server, coordinator)
	go func() { _ = server.Serve(listener) }()
	defer server.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return listener.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	logs := &syncBuffer{}
	config.ID, config.MaxActiveRuns, config.PollWait, config.HeartbeatInterval = "w1", 1, 100*time.Millisecond, 100*time.Millisecond
	config.LogDir = t.TempDir()
	config.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	worker, err := New(conn, config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = worker.Run(ctx)
	}()
	waitFor(t, 10*time.Second, "the run to end", until)
	cancel()
	<-done
	return logs
}

func batchTask(steps ...*daguhav1.StepSpec) *daguhav1.Task {
	return &daguhav1.Task{LeaseToken: "lease-1", TakesStepBatches: true, Run: &daguhav1.Run{
		Id: "r", DagName: "d", Attempt: 1, FencingToken: 7, Dag: &daguhav1.DagSpec{Name: "d", Steps: steps},
	}}
}

// A step's end goes with the run's next report or its finish: a two-step
// no-op run is three calls (a's start; a's end with b's start; the finish
// with b's end) instead of five, and the log has one line per state.
// A server that does not take batches gets one call per state.
func TestWorkerSendsStepEndsWithTheNextReportOrTheFinish(t *testing.T) {
	steps := []*daguhav1.StepSpec{{Name: "a", Command: "true"}, {Name: "b", Command: "true", Depends: []string{"a"}}}
	coordinator := &recordingCoordinator{finished: make(chan struct{}), task: batchTask(steps...)}
	finished := func() bool {
		select {
		case <-coordinator.finished:
			return true
		default:
			return false
		}
	}
	logs := runOneTask(t, coordinator, Config{NoopExecutor: true, HoldSteps: time.Hour}, finished)
	if got, want := strings.Join(coordinator.callList(), " | "), "report1 a:RUNNING | report a:SUCCEEDED,b:RUNNING | finish b:SUCCEEDED"; got != want {
		t.Errorf("calls:\n%s\nwant\n%s", got, want)
	}
	if got, want := strings.Join(logs.lines(t, "step reported", "step report not taken"), " | "),
		"step reported a:RUNNING | step reported a:SUCCEEDED | step reported b:RUNNING | step reported b:SUCCEEDED"; got != want {
		t.Errorf("log:\n%s\nwant\n%s", got, want)
	}

	old := &recordingCoordinator{finished: make(chan struct{}), task: batchTask(steps...)}
	old.task.TakesStepBatches = false
	finished = func() bool {
		select {
		case <-old.finished:
			return true
		default:
			return false
		}
	}
	runOneTask(t, old, Config{NoopExecutor: true, HoldSteps: time.Hour}, finished)
	if got, want := strings.Join(old.callList(), " | "), "report1 a:RUNNING | report1 a:SUCCEEDED | report1 b:RUNNING | report1 b:SUCCEEDED | finish "; got != want {
		t.Errorf("calls to an older server:\n%s\nwant\n%s", got, want)
	}
}

// A held end that nothing else carries goes on its own once its hold runs
// out, while the run's other step still runs.
func TestWorkerSendsAHeldEndOnItsOwnAfterTheHold(t *testing.T) {
	dir := t.TempDir()
	task := batchTask(
		&daguhav1.StepSpec{Name: "quick", Command: "true"},
		&daguhav1.StepSpec{Name: "slow", Command: `while [ ! -e "$D/go" ]; do sleep 0.02; done`},
	)
	task.Run.Dag.Env = []*daguhav1.EnvVar{{Name: "D", Value: dir}}
	coordinator := &recordingCoordinator{finished: make(chan struct{}), task: task}
	runOneTask(t, coordinator, Config{HoldSteps: 20 * time.Millisecond}, func() bool {
		calls := coordinator.callList()
		if slices.Contains(calls, "report1 quick:SUCCEEDED") {
			_ = os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
		}
		return len(calls) > 0 && strings.HasPrefix(calls[len(calls)-1], "finish")
	})
	calls := coordinator.callList()
	if got := calls[len(calls)-1]; got != "finish slow:SUCCEEDED" {
		t.Errorf("calls %q: the finish should carry slow's end alone", calls)
	}
}

// A held end refused when it goes on its own gives the attempt up: the
// other step is stopped, no finish is sent, and the log says the state
// was not taken.
func TestWorkerGivesUpWhenAHeldEndIsRefused(t *testing.T) {
	dir := t.TempDir()
	task := batchTask(
		&daguhav1.StepSpec{Name: "quick", Command: "true"},
		&daguhav1.StepSpec{Name: "slow", Command: `echo $$ > "$D/pid"; exec sleep 300`},
	)
	task.Run.Dag.Env = []*daguhav1.EnvVar{{Name: "D", Value: dir}}
	coordinator := &recordingCoordinator{finished: make(chan struct{}), task: task, refuse: func(steps []*daguhav1.StepState) bool {
		return slices.ContainsFunc(steps, func(s *daguhav1.StepState) bool { return s.GetStatus() == daguhav1.StepStatus_STEP_STATUS_SUCCEEDED })
	}}
	var logs *syncBuffer
	logs = runOneTask(t, coordinator, Config{HoldSteps: 20 * time.Millisecond}, func() bool {
		return slices.Contains(coordinator.callList(), "report1 quick:SUCCEEDED refused")
	})
	pid := readPid(t, filepath.Join(dir, "pid"))
	waitFor(t, 5*time.Second, "the other step's process to be gone", func() bool { return processGone(pid) })
	for _, c := range coordinator.callList() {
		if strings.HasPrefix(c, "finish") {
			t.Errorf("a finish was sent after a refusal: %v", coordinator.callList())
		}
	}
	if got := logs.lines(t, "step report not taken"); !slices.Contains(got, "step report not taken quick:SUCCEEDED") {
		t.Errorf("log: %v", got)
	}
}

// A finish refused with the ends it carried (the lease was lost as the
// last step ended) abandons the run, as a refused end report did.
func TestWorkerAbandonsTheRunWhenTheFinishCarryingEndsIsRefused(t *testing.T) {
	coordinator := &recordingCoordinator{finished: make(chan struct{}), refuseFinish: true, task: batchTask(&daguhav1.StepSpec{Name: "a", Command: "true"})}
	logs := runOneTask(t, coordinator, Config{NoopExecutor: true, HoldSteps: time.Hour}, func() bool {
		select {
		case <-coordinator.finished:
			return true
		default:
			return false
		}
	})
	waitFor(t, 5*time.Second, "the worker to give the run up", func() bool {
		return len(logs.lines(t, "run abandoned: this worker no longer holds it")) == 1
	})
	if got := logs.lines(t, "step report not taken", "run end not recorded"); len(got) != 1 || got[0] != "step report not taken a:SUCCEEDED" {
		t.Errorf("log: %v", got)
	}
}
