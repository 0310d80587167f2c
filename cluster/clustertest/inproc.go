package clustertest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/daguha/daguha/cluster"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// InProcServer is one server of an in-process cluster.
type InProcServer struct {
	Name      string
	Server    *cluster.Server
	Transport *raft.InmemTransport
	// GRPCAddr is the address the server advertises for forwarding; in
	// process it is only a key into the in-memory peer client.
	GRPCAddr string
	stopped  bool
}

// InProcCluster is N servers in one test process: Raft over the in-memory
// transport (partitionable), gossip over real loopback sockets, and
// forwarding through an in-memory peer client that calls the target
// server directly. It is for tests of the cluster layer itself; the
// process harness runs the real binary.
type InProcCluster struct {
	t       testing.TB
	Servers []*InProcServer
	peers   *memPeers
}

// InProcOptions adjusts an in-process cluster.
type InProcOptions struct {
	Servers     int
	ForwardHold time.Duration
	// Logger defaults to discarding everything.
	Logger *slog.Logger
	// TuneRaft, when set, adjusts Raft's configuration after the short
	// test timings are applied (slower timings for a test whose leader
	// must outlast heavy work on a loaded machine).
	TuneRaft func(*raft.Config)
}

// StartInProc starts opts.Servers servers with bootstrap-expect equal to
// their number, joined to each other through gossip, with Raft timings
// shortened for tests. Cleanup shuts every server down.
func StartInProc(t testing.TB, opts InProcOptions) *InProcCluster {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &InProcCluster{t: t, peers: &memPeers{servers: map[string]*InProcServer{}}}
	ports := FreePorts(t, 2*opts.Servers)
	transports := make([]*raft.InmemTransport, opts.Servers)
	for i := range transports {
		_, transports[i] = raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("raft-%d", i)))
	}
	for i, a := range transports {
		for j, b := range transports {
			if i != j {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
	var seeds []string
	for i := 0; i < opts.Servers; i++ {
		seeds = append(seeds, "127.0.0.1:"+strconv.Itoa(ports[2*i]))
	}
	for i := 0; i < opts.Servers; i++ {
		name := fmt.Sprintf("server-%d", i)
		member := &InProcServer{Name: name, Transport: transports[i], GRPCAddr: "127.0.0.1:" + strconv.Itoa(ports[2*i+1])}
		server, err := cluster.New(cluster.Config{
			NodeName:        name,
			BindAddr:        "127.0.0.1",
			GossipPort:      ports[2*i],
			GRPCPort:        ports[2*i+1],
			BootstrapExpect: opts.Servers,
			Join:            seeds,
			ForwardHold:     opts.ForwardHold,
			Peers:           c.peers,
			Logger:          opts.Logger.With("server", name),
			RaftTransport:   transports[i],
			InMemory:        true,
			TuneRaft:        tuneRaft(opts.TuneRaft),
			GossipTimings:   cluster.GossipLocal,
		})
		if err != nil {
			c.Shutdown()
			t.Fatalf("start %s: %v", name, err)
		}
		member.Server = server
		c.peers.add(member)
		c.Servers = append(c.Servers, member)
	}
	t.Cleanup(c.Shutdown)
	return c
}

// fastRaft shortens Raft's timings the way hashicorp/raft's own test
// harness does, so elections take tens of milliseconds.
func fastRaft(conf *raft.Config) {
	conf.HeartbeatTimeout = 200 * time.Millisecond
	conf.ElectionTimeout = 200 * time.Millisecond
	conf.LeaderLeaseTimeout = 100 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
}

func tuneRaft(extra func(*raft.Config)) func(*raft.Config) {
	return func(conf *raft.Config) {
		fastRaft(conf)
		if extra != nil {
			extra(conf)
		}
	}
}

// Leader waits until exactly one running server is the established leader
// that every running server agrees on, and returns it.
func (c *InProcCluster) Leader(timeout time.Duration) *InProcServer {
	c.t.Helper()
	var leader *InProcServer
	WaitFor(c.t, timeout, "one leader that every running server agrees on", func() (bool, string) {
		leader = nil
		names := map[string]bool{}
		for _, s := range c.Running() {
			name, _ := s.Server.Leader()
			names[name] = true
			if s.Server.IsLeader() {
				if leader != nil {
					return false, "two servers think they lead"
				}
				leader = s
			}
		}
		if leader == nil || len(names) != 1 || names[""] {
			return false, fmt.Sprintf("leaders seen: %v", names)
		}
		return true, ""
	})
	return leader
}

// Running returns the servers not shut down.
func (c *InProcCluster) Running() []*InProcServer {
	var out []*InProcServer
	for _, s := range c.Servers {
		if !s.stopped {
			out = append(out, s)
		}
	}
	return out
}

// Followers returns the running servers that are not leader.
func (c *InProcCluster) Followers() []*InProcServer {
	var out []*InProcServer
	for _, s := range c.Running() {
		if !s.Server.IsLeader() {
			out = append(out, s)
		}
	}
	return out
}

// Stop shuts one server down, as a crash would look to the others: its
// Raft transport is cut and its peer endpoint stops answering.
func (c *InProcCluster) Stop(s *InProcServer) {
	c.t.Helper()
	c.Disconnect(s)
	if err := s.Server.Shutdown(); err != nil {
		c.t.Errorf("shutdown %s: %v", s.Name, err)
	}
	s.stopped = true
}

// Disconnect cuts s off from every other server's Raft traffic and
// forwarding, both ways.
func (c *InProcCluster) Disconnect(s *InProcServer) {
	s.Transport.DisconnectAll()
	for _, other := range c.Servers {
		if other != s {
			other.Transport.Disconnect(s.Transport.LocalAddr())
		}
	}
	c.peers.setDown(s.GRPCAddr, true)
}

// Shutdown stops every server still running.
func (c *InProcCluster) Shutdown() {
	var wg sync.WaitGroup
	for _, s := range c.Servers {
		if s.stopped || s.Server == nil {
			continue
		}
		s.stopped = true
		wg.Add(1)
		go func(s *InProcServer) {
			defer wg.Done()
			s.Server.Shutdown()
		}(s)
	}
	wg.Wait()
}

// memPeers implements cluster.PeerClient by calling the target server in
// process; a server marked down answers like an unreachable one.
type memPeers struct {
	mu      sync.Mutex
	servers map[string]*InProcServer
	down    map[string]bool
}

func (m *memPeers) add(s *InProcServer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.servers[s.GRPCAddr] = s
}

func (m *memPeers) setDown(addr string, down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down == nil {
		m.down = map[string]bool{}
	}
	m.down[addr] = down
}

func (m *memPeers) target(addr string) (*cluster.Server, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.servers[addr]
	if !ok || m.down[addr] || s.Server == nil {
		return nil, &cluster.RetryableError{Err: fmt.Errorf("server %s unreachable", addr)}
	}
	return s.Server, nil
}

func (m *memPeers) Apply(_ context.Context, addr string, command []byte) (uint64, []byte, error) {
	s, err := m.target(addr)
	if err != nil {
		return 0, nil, err
	}
	return s.ApplyLocal(command)
}

func (m *memPeers) ReadIndex(_ context.Context, addr string, tables ...string) (uint64, error) {
	s, err := m.target(addr)
	if err != nil {
		return 0, err
	}
	return s.LeaderReadIndex(tables...)
}

func (m *memPeers) RaftState(_ context.Context, addr string) (*daguhav1.RaftStateResponse, error) {
	s, err := m.target(addr)
	if err != nil {
		return nil, err
	}
	return s.AnswerRaftState(nil, cluster.RaftStateCaller{})
}

// ProveServer answers as the server's gRPC RaftState does over a link
// without TLS.
func (m *memPeers) ProveServer(_ context.Context, addr string, challenge []byte) (cluster.ServerAnswer, error) {
	s, err := m.target(addr)
	if err != nil {
		return cluster.ServerAnswer{}, err
	}
	state, err := s.AnswerRaftState(challenge, cluster.RaftStateCaller{})
	return cluster.ServerAnswer{State: state}, err
}
