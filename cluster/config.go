package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/raft"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Defaults, as the design gives them.
const (
	DefaultRaftPort    = 8300
	DefaultGossipPort  = 8301
	DefaultGRPCPort    = 50055
	DefaultHTTPPort    = 8080
	DefaultForwardHold = 5 * time.Second
)

// Config is what a server needs to join the cluster.
type Config struct {
	// NodeName names this server in gossip and is its Raft server id.
	NodeName string
	// DataDir holds the Raft log and snapshots. Required unless InMemory.
	DataDir string
	// BindAddr is the address the Raft and gossip listeners bind to.
	BindAddr string
	// AdvertiseAddr is the address the other servers reach this one at;
	// it defaults to BindAddr, or to a private address when BindAddr is a
	// wildcard.
	AdvertiseAddr string
	RaftPort      int
	GossipPort    int
	// GRPCPort and HTTPPort are not served by this package; they are
	// advertised in gossip so peers can forward requests and link to us.
	GRPCPort int
	HTTPPort int

	// BootstrapExpect is the number of servers to wait for before the
	// first Raft configuration is written (0: never bootstrap by count).
	BootstrapExpect int
	// Bootstrap makes this server a one-server cluster at once (dev mode).
	Bootstrap bool
	// Join lists gossip seeds (host:port); tried until one answers.
	Join []string
	// JoinRetryInterval is the pause between rounds of join attempts.
	JoinRetryInterval time.Duration

	// DeadServerTimeout is how long a server must have been failed in
	// gossip before the leader removes it from Raft, and then only when
	// enough live voters remain (0: 2 minutes).
	DeadServerTimeout time.Duration

	// RaftTimeout is Raft's heartbeat and election timeout: a follower
	// that hears nothing from the leader for between one and two of it
	// starts an election. The leader's lease is half of it. 0: 1 s,
	// hashicorp/raft's default, which rides out scheduling stalls of a
	// loaded host; a quiet LAN fails over sooner with 300-500 ms.
	RaftTimeout time.Duration

	// ForwardHold is how long a request waits for a leader to exist
	// before it fails with ErrNoLeader.
	ForwardHold time.Duration

	// Peers reaches other servers (forwarding, bootstrap questions).
	Peers PeerClient

	Logger *slog.Logger

	// RaftTLS, when set, runs Raft over TLS (mutual with a CA).
	RaftTLS *RaftTLS
	// ClusterTokens are the secret servers prove their role with when
	// there is no TLS (workers never hold it): the first is sent, any is
	// accepted, so it can be rotated. Empty without TLS: server-to-server
	// calls and the Raft port are open to anyone who reaches them (a
	// server says so at start).
	ClusterTokens []string
	// GossipKeys encrypt the gossip pool (memberlist's AES keys, 16, 24 or
	// 32 bytes): the first encrypts, all decrypt, so keys can be rotated.
	GossipKeys [][]byte

	// SigningKeyIDs are fingerprints of the lease signing keys, the
	// signing one first. Servers compare them over RaftState, never
	// through gossip: keys that cannot verify each other's tokens would
	// make every failover refuse every worker.
	SigningKeyIDs []string

	// ScheduleZone names the zone this server's scheduler reads schedules
	// without CRON_TZ= in (an IANA name, or "local NAME+OFFSET"). Servers
	// compare it and warn when they differ: a DAG would fire at another
	// hour after a failover. Empty: not compared.
	ScheduleZone string

	// OnMemberChange, if set, is told of every change in the gossip pool
	// (servers and workers joining, updating, failing, leaving). It is
	// called from gossip's goroutines and must not block.
	OnMemberChange func(Member)

	// Metrics, when set, records commit latency and leader changes.
	Metrics Observer

	// Test hooks: an in-memory Raft transport and stores instead of TCP
	// and bbolt, and changes to the Raft configuration (timeouts).
	RaftTransport raft.Transport
	InMemory      bool
	TuneRaft      func(*raft.Config)
	// GossipTimings switches memberlist to its loopback profile: faster
	// failure detection, for tests and dev mode.
	GossipTimings GossipTimings
}

// GossipTimings selects memberlist's timing profile.
type GossipTimings int

const (
	GossipLAN GossipTimings = iota
	GossipLocal
)

// PeerClient is how this server reaches another server's ClusterService.
type PeerClient interface {
	Apply(ctx context.Context, grpcAddr string, command []byte) (index uint64, result []byte, err error)
	// ReadIndex asks the leader at grpcAddr for a read index (of tables
	// only, when named: see Server.ConsistentReadOf).
	ReadIndex(ctx context.Context, grpcAddr string, tables ...string) (uint64, error)
	RaftState(ctx context.Context, grpcAddr string) (*daguhav1.RaftStateResponse, error)
	// ProveServer asks the server at grpcAddr for its RaftState with a
	// challenge, and returns the answer with the certificate the server
	// presented (proof.go checks what they prove).
	ProveServer(ctx context.Context, grpcAddr string, challenge []byte) (ServerAnswer, error)
}

func (c *Config) setDefaults() error {
	if c.Metrics == nil {
		c.Metrics = noObserver{}
	}
	if c.NodeName == "" {
		return errors.New("node name is empty")
	}
	if c.DataDir == "" && !c.InMemory {
		return errors.New("data directory is empty")
	}
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if c.AdvertiseAddr == "" {
		addr, err := advertiseFor(c.BindAddr)
		if err != nil {
			return err
		}
		c.AdvertiseAddr = addr
	}
	for name, port := range map[string]*int{"raft": &c.RaftPort, "gossip": &c.GossipPort, "grpc": &c.GRPCPort, "http": &c.HTTPPort} {
		if *port < 0 || *port > 65535 {
			return fmt.Errorf("%s port %d is out of range 0-65535", name, *port)
		}
	}
	if c.BootstrapExpect < 0 {
		return fmt.Errorf("bootstrap-expect %d is negative", c.BootstrapExpect)
	}
	if c.Bootstrap && c.BootstrapExpect > 1 {
		return fmt.Errorf("bootstrap (single server) and bootstrap-expect=%d exclude each other", c.BootstrapExpect)
	}
	if c.ForwardHold <= 0 {
		c.ForwardHold = DefaultForwardHold
	}
	if c.DeadServerTimeout <= 0 {
		c.DeadServerTimeout = 2 * time.Minute
	}
	if c.JoinRetryInterval <= 0 {
		c.JoinRetryInterval = time.Second
	}
	if c.Peers == nil {
		return errors.New("no peer client configured")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// advertiseFor picks the address to advertise for a bind address: the bind
// address itself unless it is a wildcard, else the first private IPv4
// address of this host (as Consul and Nomad do).
func advertiseFor(bind string) (string, error) {
	ip := net.ParseIP(bind)
	if ip == nil {
		return "", fmt.Errorf("bind address %q is not an IP address", bind)
	}
	if !ip.IsUnspecified() {
		return bind, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("list interface addresses to advertise: %w", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsPrivate() {
			return n.IP.String(), nil
		}
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String(), nil
		}
	}
	return "", fmt.Errorf("bind address is %s and no private IPv4 address was found to advertise: set the advertise address", bind)
}

// Observer receives what the cluster measures: how long writes take to
// commit (on the leader) and to apply as their caller sees it (forwarded
// or not), and leader changes. ops/metrics implements it; cluster never
// imports the metrics package.
type Observer interface {
	ObserveCommit(d time.Duration)
	ObserveApply(forwarded bool, d time.Duration)
	LeaderChanged()
}

// noObserver records nothing: the Observer of a server given none.
type noObserver struct{}

func (noObserver) ObserveCommit(time.Duration)      {}
func (noObserver) ObserveApply(bool, time.Duration) {}
func (noObserver) LeaderChanged()                   {}
