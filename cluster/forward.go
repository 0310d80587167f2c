package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/fsm"
)

var (
	// ErrNoLeader is returned when no leader was known for the whole
	// forwarding hold.
	ErrNoLeader = errors.New("no cluster leader")
	// ErrNotLeader is returned by the leader-only entry points when this
	// server is not (or no longer) the established leader; callers retry.
	ErrNotLeader = errors.New("this server is not the cluster leader")
)

// RetryableError marks an error after which the request may be tried again
// at the (possibly new) leader: nothing was applied, or the command is
// idempotent and applying it again changes nothing.
type RetryableError struct{ Err error }

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// CommandError is a command's own, deterministic failure: every replica
// rejected it, and trying again will not help.
type CommandError struct{ Err error }

func (e *CommandError) Error() string { return e.Err.Error() }
func (e *CommandError) Unwrap() error { return e.Err }

// applyTimeout bounds how long a command waits to be enqueued in Raft.
const applyTimeout = 30 * time.Second

// Apply writes a command through Raft from any server: locally on the
// leader, forwarded to the leader from a follower. While there is no
// leader it waits, up to the forwarding hold, for one to be elected. All
// commands are idempotent, so a command that may or may not have been
// applied when a leader died is simply sent again to the next one.
func (s *Server) Apply(ctx context.Context, t fsm.MessageType, body proto.Message) (proto.Message, uint64, error) {
	// Validated before it is encoded: decoding what was just encoded to
	// check it cost the leader a decode of every entry it wrote.
	if err := fsm.ValidateBody(t, body); err != nil {
		return nil, 0, &CommandError{Err: err}
	}
	command, err := fsm.Encode(t, body)
	if err != nil {
		return nil, 0, err
	}
	var (
		index     uint64
		encoded   []byte
		forwarded bool
	)
	began := time.Now()
	err = s.OnLeader(ctx, func(ctx context.Context, local bool, grpcAddr string) error {
		var err error
		forwarded = !local
		if local {
			var result proto.Message
			result, index, err = s.applyLocal(command)
			if err == nil {
				encoded, err = proto.Marshal(result)
			}
			return err
		}
		index, encoded, err = s.config.Peers.Apply(ctx, grpcAddr, command)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	s.config.Metrics.ObserveApply(forwarded, time.Since(began))
	result, err := fsm.DecodeResult(t, encoded)
	if err != nil {
		return nil, 0, err
	}
	return result, index, nil
}

// ApplyLocal applies an encoded command on this server, which must be the
// leader; it is what a forwarded Apply runs on the leader.
func (s *Server) ApplyLocal(command []byte) (uint64, []byte, error) {
	if err := fsm.Validate(command); err != nil {
		return 0, nil, &CommandError{Err: err}
	}
	result, index, err := s.applyLocal(command)
	if err != nil {
		return 0, nil, err
	}
	encoded, err := proto.Marshal(result)
	if err != nil {
		return 0, nil, fmt.Errorf("encode result: %w", err)
	}
	return index, encoded, nil
}

// applyLocal is the one place the leader writes a command, its own or a
// forwarded one: the version check (checkServersRead) runs here, so no
// path around it reaches the log.
func (s *Server) applyLocal(command []byte) (proto.Message, uint64, error) {
	if len(command) == 0 {
		return nil, 0, &CommandError{Err: fsm.ErrEmptyCommand}
	}
	if s.raft.State() == raft.Leader {
		// A server that is not the leader answers ErrNotLeader below,
		// which the caller retries at the leader; it does not judge.
		if err := s.checkServersRead(fsm.MessageType(command[0])); err != nil {
			return nil, 0, err
		}
	}
	began := time.Now()
	future := s.raft.Apply(command, applyTimeout)
	if err := future.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
			errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrEnqueueTimeout):
			return nil, 0, &RetryableError{Err: fmt.Errorf("%w: %v", ErrNotLeader, err)}
		}
		return nil, 0, fmt.Errorf("raft apply: %w", err)
	}
	s.config.Metrics.ObserveCommit(time.Since(began))
	resp, ok := future.Response().(*fsm.Response)
	if !ok {
		return nil, 0, fmt.Errorf("raft apply: unexpected response %T", future.Response())
	}
	if resp.Err != nil {
		return nil, future.Index(), &CommandError{Err: resp.Err}
	}
	return resp.Result, future.Index(), nil
}

// ConsistentRead waits until this server's state includes every write
// acknowledged before the call, so a read from it that follows is
// linearizable. On a follower it asks the leader how far to catch up.
func (s *Server) ConsistentRead(ctx context.Context) error { return s.ConsistentReadOf(ctx) }

// ConsistentReadOf is ConsistentRead for a read of the named tables
// alone (store.TableDags, ...): this server waits only until it has
// applied the last write to them that the leader has, not every write
// the leader has. A follower learns that entries are committed with the
// leader's next message, up to a heartbeat interval (~100 ms) later, so
// a read of a table nobody wrote since, such as the DAGs an enqueue by
// name resolves, does not wait on the runs being written meanwhile.
// Without tables it is ConsistentRead.
func (s *Server) ConsistentReadOf(ctx context.Context, tables ...string) error {
	var index uint64
	err := s.OnLeader(ctx, func(ctx context.Context, local bool, grpcAddr string) error {
		var err error
		if local {
			index, err = s.LeaderReadIndex(tables...)
			return err
		}
		index, err = s.config.Peers.ReadIndex(ctx, grpcAddr, tables...)
		return err
	})
	if err != nil {
		return err
	}
	return s.fsm.WaitApplied(ctx, index)
}

// MaxReadTables bounds the tables one read index may name.
const MaxReadTables = 16

// LeaderReadIndex returns, on the established leader, the index a reader
// must have applied to see every acknowledged write: the leader's own
// applied index, once it has confirmed with a quorum that it still leads.
// Every acknowledged write was applied here before it was acknowledged
// (or before the barrier that established this leader's term). With
// tables, it is the index of the last write to any of them in that same
// state: every acknowledged write to them is at or below it.
func (s *Server) LeaderReadIndex(tables ...string) (uint64, error) {
	if len(tables) > MaxReadTables {
		return 0, fmt.Errorf("a read index of %d tables, more than %d", len(tables), MaxReadTables)
	}
	term := s.readyTerm()
	if term == 0 {
		return 0, &RetryableError{Err: ErrNotLeader}
	}
	index := s.fsm.LastApplied()
	if len(tables) > 0 {
		state, tableIndex := s.fsm.State(), uint64(0)
		for _, table := range tables {
			tableIndex = max(tableIndex, state.TableIndex(table))
		}
		// The state was read after LastApplied: never past it.
		index = min(index, tableIndex)
	}
	if err := s.raft.VerifyLeader().Error(); err != nil {
		return 0, &RetryableError{Err: fmt.Errorf("%w: %v", ErrNotLeader, err)}
	}
	if s.raft.CurrentTerm() != term {
		return 0, &RetryableError{Err: ErrNotLeader}
	}
	return index, nil
}

// OnLeader runs attempt against the leader (locally when this server is
// the leader), retrying retryable failures and waiting through elections
// for at most the forwarding hold.
func (s *Server) OnLeader(ctx context.Context, attempt func(ctx context.Context, local bool, grpcAddr string) error) error {
	holdUntil := time.Now().Add(s.config.ForwardHold)
	var lastErr error
	for {
		changed := s.leaderChanged()
		local, grpcAddr, known := s.leaderTarget()
		if known && !local {
			if err := s.ensureProvenLeader(ctx, grpcAddr); err != nil {
				// Not (yet) proven: gossip may have been told a lie, or
				// the leader is just starting; try again within the hold.
				known = false
			}
		}
		if known {
			err := s.attemptUntilLeaderChange(ctx, changed, local, grpcAddr, attempt)
			var retryable *RetryableError
			if err == nil || !errors.As(err, &retryable) {
				return err
			}
			lastErr = err
		} else {
			lastErr = ErrNoLeader
		}
		wait := time.Until(holdUntil)
		if wait <= 0 {
			if errors.Is(lastErr, ErrNoLeader) {
				return fmt.Errorf("%w after waiting %s", ErrNoLeader, s.config.ForwardHold)
			}
			return fmt.Errorf("%w (no leader could take the request within %s)", lastErr, s.config.ForwardHold)
		}
		// Wake at a leader change, or soon anyway: a failed forward to a
		// leader that has just died is retried once Raft notices.
		timer := time.NewTimer(min(wait, 100*time.Millisecond))
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%w (last: %v)", ctx.Err(), lastErr)
		case <-s.shutdownCh:
			timer.Stop()
			return &RetryableError{Err: errors.New("server is shutting down")}
		}
		timer.Stop()
	}
}

// attemptUntilLeaderChange runs one attempt, abandoning it when the leader
// changes: a forward to a leader that was paused or cut off would
// otherwise hang, and the command is safe to send again to the new one.
func (s *Server) attemptUntilLeaderChange(ctx context.Context, changed <-chan struct{}, local bool, grpcAddr string,
	attempt func(ctx context.Context, local bool, grpcAddr string) error) error {
	attemptCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-changed:
			cancel()
		case <-attemptCtx.Done():
		}
	}()
	err := attempt(attemptCtx, local, grpcAddr)
	if err != nil && ctx.Err() == nil && attemptCtx.Err() != nil {
		return &RetryableError{Err: fmt.Errorf("leader changed during the request: %w", err)}
	}
	return err
}

// leaderTarget says where the leader is: this server, a peer's gRPC
// address, or unknown.
func (s *Server) leaderTarget() (local bool, grpcAddr string, known bool) {
	if s.raft.State() == raft.Leader {
		return true, "", true
	}
	_, id := s.raft.LeaderWithID()
	if id == "" {
		return false, "", false
	}
	member, ok := s.members.get(string(id))
	if !ok || member.Status != MemberAlive || member.Meta.GRPCAddr == "" {
		return false, "", false
	}
	return false, member.Meta.GRPCAddr, true
}

// provenAddrs remembers, by node name, the gRPC and HTTP addresses each
// server last proved itself at (proveServer).
type provenAddrs struct {
	mu     sync.Mutex
	byName map[string]provenAddr
}

type provenAddr struct{ grpc, http string }

func (p *provenAddrs) set(name, grpcAddr, httpAddr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byName == nil {
		p.byName = map[string]provenAddr{}
	}
	p.byName[name] = provenAddr{grpc: grpcAddr, http: httpAddr}
}

func (p *provenAddrs) is(name, grpcAddr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return grpcAddr != "" && p.byName[name].grpc == grpcAddr
}

// httpOf is the HTTP address proven together with a gRPC address, or "".
func (p *provenAddrs) httpOf(grpcAddr string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, addr := range p.byName {
		if grpcAddr != "" && addr.grpc == grpcAddr {
			return addr.http
		}
	}
	return ""
}

// ensureProvenLeader makes sure the leader's gRPC address, which gossip
// told, is where the leader proved itself (asking it now when it has not
// yet), before a request and the cluster token travel there: anyone with
// the gossip key can announce a server's name with other addresses for a
// moment, and a forwarded write carries the token and the worker's word.
func (s *Server) ensureProvenLeader(ctx context.Context, grpcAddr string) error {
	if !identity.Enforced {
		return nil
	}
	_, id := s.raft.LeaderWithID()
	member, ok := s.members.get(string(id))
	return checkForwardTarget(member, ok, grpcAddr, s.provenAddrs.is, func(m Member) error {
		proveCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := s.proveServer(proveCtx, m)
		return err
	})
}

// checkForwardTarget is ensureProvenLeader's rule: the address must be the
// one gossip gives for the leader, and proven there, now or before.
func checkForwardTarget(leader Member, known bool, grpcAddr string, proven func(name, grpcAddr string) bool, prove func(Member) error) error {
	if !known || leader.Meta.GRPCAddr != grpcAddr {
		return fmt.Errorf("the leader %q is not at %s in gossip", leader.Name, grpcAddr)
	}
	if proven(leader.Name, grpcAddr) {
		return nil
	}
	return prove(leader)
}

// HTTPAddrOf returns the HTTP address a server proved together with its
// gRPC address (what OnLeader hands its attempt), or "" when unknown: a
// request relayed there carries the caller's API token, and gossip, which
// anyone with the gossip key can speak, may name another address for a
// moment.
func (s *Server) HTTPAddrOf(grpcAddr string) string {
	if identity.Enforced {
		return s.provenAddrs.httpOf(grpcAddr)
	}
	for _, m := range s.members.list(RoleServer) {
		if m.Meta.GRPCAddr == grpcAddr {
			return m.Meta.HTTPAddr
		}
	}
	return ""
}
