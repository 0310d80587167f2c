package rpc_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/dispatch/worker"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/rpc"
	"github.com/daguha/daguha/store"
)

type backend struct{ *cluster.Server }

func (b backend) State() *store.StateStore { return b.FSM().State() }

// callCounter counts the CoordinatorService calls a server got from
// workers (not those another server forwarded to it).
type callCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *callCounter) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("x-daguha-forwarded")) == 0 {
		c.mu.Lock()
		c.calls[info.FullMethod]++
		c.mu.Unlock()
	}
	return handler(ctx, req)
}

func (c *callCounter) count(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls["/daguha.v1.CoordinatorService/"+method]
}

// total is the number of calls of every method.
func (c *callCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for _, n := range c.calls {
		total += n
	}
	return total
}

// servedCluster is an in-process cluster whose servers each serve the
// CoordinatorService on their gRPC address, forwarding to the leader
// through real connections, as the agent wires it.
type servedCluster struct {
	*clustertest.InProcCluster
	counters map[string]*callCounter
}

func startServedCluster(t *testing.T, servers int) *servedCluster {
	t.Helper()
	c := &servedCluster{InProcCluster: clustertest.StartInProc(t, clustertest.InProcOptions{Servers: servers}), counters: map[string]*callCounter{}}
	for _, s := range c.Servers {
		d := dispatch.New(backend{s.Server}, dispatch.Config{SigningKeys: [][]byte{[]byte("rpc-test-key")}, LeaseTTL: time.Minute})
		s.Server.RegisterLeaderDuty("dispatch", d.RunLeader)
		counter := &callCounter{calls: map[string]int{}}
		c.counters[s.Name] = counter
		ln, err := net.Listen("tcp", s.GRPCAddr)
		if err != nil {
			t.Fatal(err)
		}
		// An open port (no TLS, no cluster token), as a plaintext cluster.
		g := grpc.NewServer(append(rpc.NewAuthorizer(false, nil, nil).ServerOptions(), grpc.ChainUnaryInterceptor(counter.intercept))...)
		peers := rpc.NewPeerClient()
		rpc.RegisterCoordinatorService(g, s.Server, d, peers, rpc.CoordinatorOptions{})
		go func() { _ = g.Serve(ln) }()
		t.Cleanup(func() {
			g.Stop()
			peers.Close()
		})
	}
	return c
}

// runWorker runs a no-op worker against addr until the test ends.
func runWorker(t *testing.T, addr string, config worker.Config) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	runWorkerOn(t, conn, config)
}

// runWorkerOn runs a no-op worker over conn until the test ends (it stops
// before conn's own cleanup runs).
func runWorkerOn(t *testing.T, conn *grpc.ClientConn, config worker.Config) {
	t.Helper()
	config.LogDir = t.TempDir()
	config.NoopExecutor = true
	w, err := worker.New(conn, config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func enqueueRuns(t *testing.T, s *clustertest.InProcServer, n int, dag *daguhav1.DagSpec) []string {
	t.Helper()
	var runs []*daguhav1.Run
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s-%d", dag.GetName(), i)
		runs = append(runs, &daguhav1.Run{Id: id, DagName: dag.GetName(), Dag: dag})
		ids = append(ids, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := s.Server.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: runs}); err != nil {
		t.Fatal(err)
	}
	return ids
}

// waitSucceeded waits until every run succeeded on server s with each
// step's end recorded.
func waitSucceeded(t *testing.T, s *clustertest.InProcServer, ids []string, steps int) {
	t.Helper()
	clustertest.WaitFor(t, 30*time.Second, "every run succeeded with its steps' ends", func() (bool, string) {
		for _, id := range ids {
			run, err := s.Server.FSM().State().Run(id)
			if err != nil || run == nil || run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED || len(run.GetSteps()) != steps {
				return false, fmt.Sprintf("%s: %v %v", id, run.GetStatus(), run.GetSteps())
			}
			for _, step := range run.GetSteps() {
				if step.GetStatus() != daguhav1.StepStatus_STEP_STATUS_SUCCEEDED {
					return false, fmt.Sprintf("%s: step %v", id, step)
				}
			}
		}
		return true, ""
	})
}

// A worker reaching a follower: each step's start is a report of its own,
// its end goes with the next start or the finish, the reports of runs
// that arrive together go as one Report call, and every end lands in the
// run's record on every server.
func TestReportsOfManyRunsTravelTogetherThroughAFollower(t *testing.T) {
	c := startServedCluster(t, 3)
	c.Leader(10 * time.Second)
	follower := c.Followers()[0]
	runWorker(t, follower.GRPCAddr, worker.Config{ID: "w1", MaxActiveRuns: 20, HoldSteps: time.Hour, PollWait: time.Second})
	dag := &daguhav1.DagSpec{Name: "two", Steps: []*daguhav1.StepSpec{{Name: "a", Command: "true"}, {Name: "b", Command: "true", Depends: []string{"a"}}}}
	ids := enqueueRuns(t, follower, 40, dag)
	for _, s := range c.Servers {
		waitSucceeded(t, s, ids, 2)
	}
	counter := c.counters[follower.Name]
	// Per run: a's start; a's end with b's start; the finish with b's end.
	items := 3 * len(ids)
	reports := counter.count("Report")
	if singles := counter.count("ReportStep") + counter.count("FinishRun"); singles != 0 || reports == 0 || reports >= items {
		t.Errorf("%d Report calls and %d single calls for %d report items", reports, singles, items)
	}
	t.Logf("%d report items of %d runs in %d Report calls", items, len(ids), reports)
}

// One Report call: each item is taken or refused on its own, a forged
// token refused as the single call would be, and a finish records the
// steps it carries.
func TestReportAnswersEachItem(t *testing.T) {
	c := startServedCluster(t, 3)
	c.Leader(10 * time.Second)
	follower := c.Followers()[0]
	dag := &daguhav1.DagSpec{Name: "one", Steps: []*daguhav1.StepSpec{{Name: "a", Command: "true"}}}
	enqueueRuns(t, follower, 2, dag)
	conn, err := grpc.NewClient(follower.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := daguhav1.NewCoordinatorServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var tasks []*daguhav1.Task
	clustertest.WaitFor(t, 10*time.Second, "two runs granted", func() (bool, string) {
		resp, err := client.Poll(ctx, &daguhav1.PollRequest{Worker: &daguhav1.WorkerInfo{Id: "tester", MaxActiveRuns: 2}, WaitMillis: 1000, MaxTasks: 2})
		if err != nil {
			return false, err.Error()
		}
		if resp.GetTask() != nil {
			tasks = append(tasks, resp.GetTask())
		}
		tasks = append(tasks, resp.GetMoreTasks()...)
		return len(tasks) == 2, fmt.Sprintf("%d granted", len(tasks))
	})
	step := func(status daguhav1.StepStatus) []*daguhav1.StepState {
		return []*daguhav1.StepState{{Name: "a", Status: status}}
	}
	resp, err := client.Report(ctx, &daguhav1.ReportRequest{Items: []*daguhav1.ReportItem{
		{LeaseToken: tasks[0].GetLeaseToken(), Steps: step(daguhav1.StepStatus_STEP_STATUS_RUNNING)},
		{LeaseToken: "forged", Steps: step(daguhav1.StepStatus_STEP_STATUS_RUNNING)},
		{LeaseToken: tasks[1].GetLeaseToken(), Steps: step(daguhav1.StepStatus_STEP_STATUS_SUCCEEDED),
			Finish: &daguhav1.RunEnd{Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var got []codes.Code
	for _, o := range resp.GetOutcomes() {
		got = append(got, codes.Code(o.GetCode()))
	}
	if fmt.Sprint(got) != fmt.Sprint([]codes.Code{codes.OK, codes.PermissionDenied, codes.OK}) {
		t.Fatalf("outcomes %v", resp.GetOutcomes())
	}
	// The finished run's lease no longer holds: a late report is stale.
	resp, err = client.Report(ctx, &daguhav1.ReportRequest{Items: []*daguhav1.ReportItem{
		{LeaseToken: tasks[1].GetLeaseToken(), Steps: step(daguhav1.StepStatus_STEP_STATUS_FAILED)},
	}})
	if err != nil || len(resp.GetOutcomes()) != 1 || codes.Code(resp.GetOutcomes()[0].GetCode()) != codes.FailedPrecondition {
		t.Fatalf("a report after the finish: %v %v", resp, err)
	}
	state := follower.Server.FSM().State()
	clustertest.WaitFor(t, 10*time.Second, "the follower to apply the reports", func() (bool, string) {
		running, _ := state.Run(tasks[0].GetRun().GetId())
		finished, _ := state.Run(tasks[1].GetRun().GetId())
		ok := len(running.GetSteps()) == 1 && running.GetSteps()[0].GetStatus() == daguhav1.StepStatus_STEP_STATUS_RUNNING &&
			finished.GetStatus() == daguhav1.RunStatus_RUN_STATUS_SUCCEEDED && len(finished.GetSteps()) == 1 &&
			finished.GetSteps()[0].GetStatus() == daguhav1.StepStatus_STEP_STATUS_SUCCEEDED
		return ok, fmt.Sprintf("%v / %v", running, finished)
	})
}
