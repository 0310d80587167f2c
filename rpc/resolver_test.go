package rpc_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch/worker"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/rpc"
)

// A worker connected to every server of a cluster through a ServerList
// sends its calls to the leader once a follower has forwarded one and
// named it: the followers stop handling the worker's calls.
func TestWorkerCallsGoToTheLeaderOnceAFollowerNamesIt(t *testing.T) {
	c := startServedCluster(t, 3)
	leader := c.Leader(10 * time.Second)
	var addrs []string
	for _, s := range c.Servers {
		addrs = append(addrs, s.GRPCAddr)
	}
	list, conn := dialList(t, addrs)
	runWorkerOn(t, conn, worker.Config{ID: "w1", MaxActiveRuns: 8, PollWait: time.Second})

	dag := &daguhav1.DagSpec{Name: "first", Steps: []*daguhav1.StepSpec{{Name: "a", Command: "true"}}}
	waitSucceeded(t, leader, enqueueRuns(t, leader, 20, dag), 1)
	// Calls go round the servers until one forwards and names the leader
	// (the worker polls on while idle).
	clustertest.WaitFor(t, 20*time.Second, "the list names the leader", func() (bool, string) {
		return list.Leader() == leader.GRPCAddr, fmt.Sprintf("named %q, leader %s", list.Leader(), leader.GRPCAddr)
	})
	// The calls each server took from the worker so far.
	before := map[string]int{}
	for _, s := range c.Servers {
		before[s.Name] = c.counters[s.Name].total()
	}
	dag = &daguhav1.DagSpec{Name: "second", Steps: []*daguhav1.StepSpec{{Name: "a", Command: "true"}}}
	waitSucceeded(t, leader, enqueueRuns(t, leader, 40, dag), 1)
	for _, s := range c.Servers {
		got := c.counters[s.Name].total() - before[s.Name]
		switch {
		case s.Name == leader.Name && got == 0:
			t.Errorf("the leader took no call of the worker's 40 runs")
		case s.Name != leader.Name && got != 0:
			t.Errorf("follower %s took %d calls after the worker learned the leader", s.Name, got)
		}
		t.Logf("%s (leader %v): %d calls before the leader was known, %d after", s.Name, s.Name == leader.Name, before[s.Name], got)
	}
}

// dialList connects to addrs through a ServerList, until the test ends.
func dialList(t *testing.T, addrs []string) (*rpc.ServerList, *grpc.ClientConn) {
	t.Helper()
	list := rpc.NewServerList(addrs)
	conn, err := list.Dial(grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return list, conn
}

// namingServer is a CoordinatorService whose answers name a leader, as a
// forwarding follower's do, and count the calls it took.
type namingServer struct {
	daguhav1.UnimplementedCoordinatorServiceServer
	calls atomic.Int64
	names *atomic.Pointer[string]
	// cutOff answers as a server cut off from the others does.
	cutOff atomic.Bool
}

func (s *namingServer) Discover(ctx context.Context, _ *daguhav1.DiscoverRequest) (*daguhav1.DiscoverResponse, error) {
	s.calls.Add(1)
	if s.cutOff.Load() {
		return nil, status.Error(codes.Unavailable, "no leader")
	}
	if name := s.names.Load(); name != nil {
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-daguha-leader", *name))
	}
	return &daguhav1.DiscoverResponse{}, nil
}

// countingListener counts the connections it accepted.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return conn, err
}

func startNamingServers(t *testing.T, n int, names *atomic.Pointer[string]) ([]*namingServer, []*grpc.Server, []string) {
	t.Helper()
	var services []*namingServer
	var servers []*grpc.Server
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		service := &namingServer{names: names}
		g := grpc.NewServer()
		daguhav1.RegisterCoordinatorServiceServer(g, service)
		go func() { _ = g.Serve(ln) }()
		t.Cleanup(g.Stop)
		services, servers, addrs = append(services, service), append(servers, g), append(addrs, ln.Addr().String())
	}
	return services, servers, addrs
}

func callsOf(services []*namingServer) []int64 {
	var calls []int64
	for _, s := range services {
		calls = append(calls, s.calls.Load())
	}
	return calls
}

// A name that is none of the list's servers changes nothing: calls stay
// spread over the list, and the named address is never dialled.
func TestServerListNeverDialsANameOutsideIt(t *testing.T) {
	stranger, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingListener{Listener: stranger}
	go func() {
		for {
			conn, err := counted.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	defer stranger.Close()
	var names atomic.Pointer[string]
	name := stranger.Addr().String()
	names.Store(&name)
	services, _, addrs := startNamingServers(t, 3, &names)
	list, conn := dialList(t, addrs)
	client := daguhav1.NewCoordinatorServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Once all three are up, calls go round the three.
	clustertest.WaitFor(t, 20*time.Second, "every server took a call", func() (bool, string) {
		if _, err := client.Discover(ctx, &daguhav1.DiscoverRequest{}, grpc.WaitForReady(true)); err != nil {
			return false, err.Error()
		}
		calls := callsOf(services)
		for _, n := range calls {
			if n == 0 {
				return false, fmt.Sprint(calls)
			}
		}
		return true, ""
	})
	if list.Leader() != name {
		t.Fatalf("the list kept %q, want the name it was told, %q", list.Leader(), name)
	}
	before := callsOf(services)
	for range 30 {
		if _, err := client.Discover(ctx, &daguhav1.DiscoverRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	after := callsOf(services)
	for i := range services {
		if after[i] == before[i] {
			t.Errorf("server %d took none of 30 calls (before %v, after %v)", i, before, after)
		}
	}
	if n := counted.accepted.Load(); n != 0 {
		t.Errorf("the named address outside the list was dialled %d times", n)
	}
}

// Calls follow the named leader, and go round the others while it is
// down.
func TestServerListFollowsTheNamedLeaderAndGoesOnWithoutIt(t *testing.T) {
	var names atomic.Pointer[string]
	services, servers, addrs := startNamingServers(t, 3, &names)
	names.Store(&addrs[1])
	list, conn := dialList(t, addrs)
	client := daguhav1.NewCoordinatorServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := client.Discover(ctx, &daguhav1.DiscoverRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	before := callsOf(services)
	for range 30 {
		if _, err := client.Discover(ctx, &daguhav1.DiscoverRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	after := callsOf(services)
	if after[1]-before[1] != 30 || after[0] != before[0] || after[2] != before[2] {
		t.Fatalf("30 calls after server 1 was named: before %v, after %v", before, after)
	}

	// The named server is cut off from the others, which elect server 2
	// and name it: the call it fails sends the next ones round again,
	// until one names the new leader.
	names.Store(&addrs[2])
	services[1].cutOff.Store(true)
	if _, err := client.Discover(ctx, &daguhav1.DiscoverRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("the cut-off server answered %v", err)
	}
	clustertest.WaitFor(t, 10*time.Second, "the list names the new leader", func() (bool, string) {
		_, _ = client.Discover(ctx, &daguhav1.DiscoverRequest{})
		return list.Leader() == addrs[2], list.Leader()
	})
	before = callsOf(services)
	for range 30 {
		if _, err := client.Discover(ctx, &daguhav1.DiscoverRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	after = callsOf(services)
	if after[2]-before[2] != 30 {
		t.Fatalf("30 calls after server 2 was named: before %v, after %v", before, after)
	}
	services[1].cutOff.Store(false)
	names.Store(&addrs[1])
	if _, err := client.Discover(ctx, &daguhav1.DiscoverRequest{}); err != nil || list.Leader() != addrs[1] {
		t.Fatalf("server 1 named again: %v, the list names %q", err, list.Leader())
	}

	// The named server goes away: calls go on over the other two.
	servers[1].Stop()
	clustertest.WaitFor(t, 20*time.Second, "a call answered without server 1", func() (bool, string) {
		if _, err := client.Discover(ctx, &daguhav1.DiscoverRequest{}); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	before = callsOf(services)
	for range 30 {
		if _, err := client.Discover(ctx, &daguhav1.DiscoverRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	after = callsOf(services)
	if after[0] == before[0] || after[2] == before[2] || after[0]-before[0]+after[2]-before[2] != 30 {
		t.Errorf("30 calls with the named server down: before %v, after %v", before, after)
	}
}
