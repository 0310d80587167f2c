package rpc_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch"
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
		g := grpc.NewServer(grpc.ChainUnaryInterceptor(counter.intercept))
		peers := rpc.NewPeerClient()
		rpc.RegisterCoordinatorService(g, s.Server, d, peers)
		go func() { _ = g.Serve(ln) }()
		t.Cleanup(func() {
			g.Stop()
			peers.Close()
		})
	}
	return c
}

// runWorker runs a no-op worker against addr until the test ends.
func runWorker(t *testing.T, addr string, config dispatch.WorkerConfig) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	config.LogDir = t.TempDir()
	config.NoopExecutor = true
	worker, err := dispatch.NewWorker(conn, config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = worker.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		conn.Close()
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
// its end goes with the next start or the finish, and every end lands in
// the run's record on every server.
func TestStepEndsTravelWithTheNextReportThroughAFollower(t *testing.T) {
	c := startServedCluster(t, 3)
	c.Leader(10 * time.Second)
	follower := c.Followers()[0]
	runWorker(t, follower.GRPCAddr, dispatch.WorkerConfig{ID: "w1", MaxActiveRuns: 8, HoldSteps: time.Hour, PollWait: time.Second})
	dag := &daguhav1.DagSpec{Name: "two", Steps: []*daguhav1.StepSpec{{Name: "a", Command: "true"}, {Name: "b", Command: "true", Depends: []string{"a"}}}}
	ids := enqueueRuns(t, follower, 20, dag)
	for _, s := range c.Servers {
		waitSucceeded(t, s, ids, 2)
	}
	counter := c.counters[follower.Name]
	if reports, finishes := counter.count("ReportStep"), counter.count("FinishRun"); reports != 2*len(ids) || finishes != len(ids) {
		t.Errorf("%d step reports and %d finishes for %d two-step runs, want %d and %d", reports, finishes, len(ids), 2*len(ids), len(ids))
	}
}
