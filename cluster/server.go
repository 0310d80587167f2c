package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/daguha/daguha/fsm"
	"github.com/daguha/daguha/store"
)

// Server is one daguha server's Raft node and gossip membership.
type Server struct {
	config Config
	logger *slog.Logger

	fsm      *fsm.FSM
	raft     *raft.Raft
	raftAddr raft.ServerAddress
	stores   *store.RaftStores
	// transport is closed on shutdown when we created it.
	transport *raft.NetworkTransport

	gossip  *memberlist.Memberlist
	meta    *metaDelegate
	members *members

	// hadState is whether Raft state existed on disk when we started, or
	// has been written since (bootstrap): a server with state never
	// bootstraps and tells peers that ask.
	hadState atomic.Bool
	// hadStateAtStart: this server was part of a cluster before this run.
	hadStateAtStart bool
	fatal           chan error
	// refusals are the gossip members that did not prove they are
	// servers, with the reason last logged.
	refusals refusals
	// provenAddrs are the gRPC addresses servers proved themselves at
	// (by node name): the only addresses requests are forwarded to.
	provenAddrs provenAddrs
	// bootstrap reports what bootstrap-expect decided, for operators.
	bootstrapMu     sync.Mutex
	bootstrapStatus string

	leader leadership

	shutdownOnce sync.Once
	shutdownCh   chan struct{}
	wg           sync.WaitGroup
}

// New creates the server and starts Raft and gossip. It returns once the
// listeners are up; cluster formation continues in the background.
func New(config Config) (*Server, error) {
	if err := config.setDefaults(); err != nil {
		return nil, fmt.Errorf("cluster config: %w", err)
	}
	f, err := fsm.New()
	if err != nil {
		return nil, err
	}
	s := &Server{
		config:     config,
		logger:     config.Logger.With("node", config.NodeName),
		fsm:        f,
		members:    newMembers(time.Now),
		shutdownCh: make(chan struct{}),
		fatal:      make(chan error, 1),
	}
	s.members.onChange = config.OnMemberChange
	s.leader.init()
	s.removeLeftRestoreFiles()
	if err := s.startRaft(); err != nil {
		s.closeStores()
		return nil, err
	}
	if err := s.startGossip(); err != nil {
		s.raft.Shutdown().Error()
		s.closeStores()
		return nil, err
	}
	s.hadStateAtStart = s.hadState.Load()
	s.goFunc(s.monitorLeadership)
	s.goFunc(s.observeLeader)
	s.goFunc(s.watchKeyConflicts)
	s.goFunc(s.watchZoneConflicts)
	switch {
	case config.Bootstrap:
		s.bootstrapSelf()
	case config.BootstrapExpect > 0:
		s.goFunc(s.bootstrapLoop)
	default:
		s.setBootstrapStatus("disabled: waiting to be added by a leader")
	}
	return s, nil
}

func (s *Server) startRaft() error {
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(s.config.NodeName)
	conf.Logger = newHCLog(s.logger, "raft")
	conf.NotifyCh = s.leader.notify
	// Buffer the apply channel so the leader writes every command waiting
	// there in one log append (one fsync) instead of one each: a bare
	// three-node cluster on this project's benchmark machine went from
	// ~215 to ~3,800 entries/s with it (docs/performance.md). The cost is
	// that a command may be applied after its Apply timed out; every
	// command here is idempotent or fenced, so a retry changes nothing.
	conf.BatchApplyCh = true
	if t := s.config.RaftTimeout; t > 0 {
		conf.HeartbeatTimeout = t
		conf.ElectionTimeout = t
		conf.LeaderLeaseTimeout = t / 2
	}
	if s.config.TuneRaft != nil {
		s.config.TuneRaft(conf)
	}

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if s.config.InMemory {
		mem := raft.NewInmemStore()
		logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
	} else {
		stores, err := store.OpenRaftStores(s.config.DataDir, &levelPrefixWriter{logger: s.logger.With("component", "snapshots")})
		if err != nil {
			return err
		}
		s.stores = stores
		logs, stable, snaps = stores.Log, stores.Log, stores.Snapshots
	}

	trans := s.config.RaftTransport
	if trans == nil {
		bind := net.JoinHostPort(s.config.BindAddr, strconv.Itoa(s.config.RaftPort))
		advertise, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(s.config.AdvertiseAddr, strconv.Itoa(s.config.RaftPort)))
		if err != nil {
			return fmt.Errorf("raft advertise address: %w", err)
		}
		stream, err := newRaftStream(bind, advertise, s.config.RaftTLS, s.config.ClusterTokens, RaftHandshakeTimeout, s.logger)
		if err != nil {
			return fmt.Errorf("raft listener on %s: %w", bind, err)
		}
		s.transport = raft.NewNetworkTransportWithLogger(stream, 3, 10*time.Second, newHCLog(s.logger, "raft-net"))
		trans = s.transport
	}
	s.raftAddr = trans.LocalAddr()

	hasState, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fmt.Errorf("read raft state: %w", err)
	}
	s.hadState.Store(hasState)

	r, err := raft.NewRaft(conf, s.fsm, logs, stable, snaps, trans)
	if err != nil {
		if s.transport != nil {
			s.transport.Close()
		}
		return fmt.Errorf("start raft: %w", err)
	}
	s.raft = r
	return nil
}

func (s *Server) closeStores() {
	if s.stores != nil {
		if err := s.stores.Close(); err != nil {
			s.logger.Warn("close raft stores", "error", err)
		}
	}
}

// goFunc runs fn in a goroutine that Shutdown waits for.
func (s *Server) goFunc(fn func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

// Leave hands leadership over if this server has it and leaves the gossip
// pool, so the leader removes this server from the Raft configuration.
// It is the graceful half of a stop; Shutdown is the other half.
func (s *Server) Leave(timeout time.Duration) error {
	var errs []error
	if s.raft.State() == raft.Leader && s.votersOtherThanSelf() > 0 {
		s.logger.Info("handing leadership over before leaving")
		if err := s.raft.LeadershipTransfer().Error(); err != nil {
			errs = append(errs, fmt.Errorf("leadership transfer: %w", err))
		}
	}
	if err := s.leaveGossip(timeout); err != nil {
		errs = append(errs, fmt.Errorf("leave gossip: %w", err))
	}
	// Give the leader a moment to take us out of the configuration, so a
	// following stop does not look like a failure to the others.
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && s.isVoter() && s.votersOtherThanSelf() > 0 {
		select {
		case <-time.After(100 * time.Millisecond):
		case <-s.shutdownCh:
			return errors.Join(errs...)
		}
	}
	return errors.Join(errs...)
}

// Shutdown stops Raft and gossip and waits for every goroutine of the
// server. It is safe to call more than once.
func (s *Server) Shutdown() error {
	var err error
	s.shutdownOnce.Do(func() {
		close(s.shutdownCh)
		var errs []error
		if e := s.raft.Shutdown().Error(); e != nil {
			errs = append(errs, fmt.Errorf("raft shutdown: %w", e))
		}
		if e := s.gossip.Shutdown(); e != nil {
			errs = append(errs, fmt.Errorf("gossip shutdown: %w", e))
		}
		s.wg.Wait()
		if s.transport != nil {
			if e := s.transport.Close(); e != nil {
				errs = append(errs, fmt.Errorf("raft transport close: %w", e))
			}
		}
		s.closeStores()
		err = errors.Join(errs...)
	})
	return err
}

// NodeName returns this server's name (also its Raft server id).
func (s *Server) NodeName() string { return s.config.NodeName }

// FSM returns the state machine, for reads.
func (s *Server) FSM() *fsm.FSM { return s.fsm }

// Raft exposes the Raft node for stats and operator commands.
func (s *Server) Raft() *raft.Raft { return s.raft }

func (s *Server) configuration() ([]raft.Server, error) {
	future := s.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return nil, err
	}
	return future.Configuration().Servers, nil
}

func (s *Server) isVoter() bool {
	servers, err := s.configuration()
	if err != nil {
		return false
	}
	for _, server := range servers {
		if server.ID == raft.ServerID(s.config.NodeName) && server.Suffrage == raft.Voter {
			return true
		}
	}
	return false
}

func (s *Server) votersOtherThanSelf() int {
	servers, err := s.configuration()
	if err != nil {
		return 0
	}
	n := 0
	for _, server := range servers {
		if server.ID != raft.ServerID(s.config.NodeName) && server.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}

// Peer is one server of the Raft configuration, with what it runs as
// this server's gossip view says (Versions: UnknownVersion, schema and
// protocol 0, for a server gossip does not know).
type Peer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
	Versions
}

// UnknownVersion is the version of a server gossip does not know.
const UnknownVersion = "unknown"

// Peers returns the Raft configuration as this server knows it.
func (s *Server) Peers() ([]Peer, error) {
	servers, err := s.configuration()
	if err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	_, leaderID := s.raft.LeaderWithID()
	peers := make([]Peer, 0, len(servers))
	for _, server := range servers {
		versions := Versions{Version: UnknownVersion}
		if m, ok := s.members.get(string(server.ID)); ok {
			versions = m.Meta.Versions()
		}
		peers = append(peers, Peer{
			ID:       string(server.ID),
			Address:  string(server.Address),
			Voter:    server.Suffrage == raft.Voter,
			Leader:   server.ID == leaderID,
			Versions: versions,
		})
	}
	return peers, nil
}

// Leader returns the leader's node name and Raft address, empty when this
// server knows of no leader.
func (s *Server) Leader() (name, raftAddr string) {
	addr, id := s.raft.LeaderWithID()
	return string(id), string(addr)
}

// IsLeader reports whether this server is the Raft leader.
func (s *Server) IsLeader() bool { return s.raft.State() == raft.Leader }

// State is this server's Raft role: Leader, Follower, Candidate, Shutdown.
func (s *Server) State() string { return s.raft.State().String() }

// BootstrapStatus says what bootstrap-expect has decided so far.
func (s *Server) BootstrapStatus() string {
	s.bootstrapMu.Lock()
	defer s.bootstrapMu.Unlock()
	return s.bootstrapStatus
}

func (s *Server) setBootstrapStatus(status string) {
	s.bootstrapMu.Lock()
	changed := s.bootstrapStatus != status
	s.bootstrapStatus = status
	s.bootstrapMu.Unlock()
	if changed {
		s.logger.Info("bootstrap", "status", status)
	}
}

// HasRaftState reports whether this server has Raft state (a log, a
// term, a snapshot, or a configuration it bootstrapped).
func (s *Server) HasRaftState() bool { return s.hadState.Load() || s.raft.LastIndex() > 0 }
