package dispatch

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
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
// the last modify index seen until it ends, and the run's outputs go with
// FinishRun.
func TestWorkerRunsChildStepsThroughTheCoordinator(t *testing.T) {
	coordinator := &fakeCoordinator{finished: make(chan struct{}), task: &daguhav1.Task{LeaseToken: "lease-1", Run: &daguhav1.Run{
		Id: "parent", DagName: "p", Attempt: 1, Dag: &daguhav1.DagSpec{Name: "p", Steps: []*daguhav1.StepSpec{
			{Name: "call", ChildDag: "sub", Output: "CHILD"},
			{Name: "use", Depends: []string{"call"}, Command: `echo "got $CHILD"`, Output: "USED"},
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

	worker, err := NewWorker(conn, WorkerConfig{ID: "w1", MaxActiveRuns: 1, PollWait: 100 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond, LogDir: t.TempDir()})
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
		f.GetOutputs()["CHILD"] != `{"k":"v"}` || f.GetOutputs()["USED"] != `got {"k":"v"}` {
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
		worker, err := NewWorker(conn, WorkerConfig{ID: "w", MaxActiveRuns: 1, LogDir: dir})
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
