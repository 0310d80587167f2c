package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/daguha/daguha/cluster/identity"
)

// LeaderDuty is work only the leader does (matching, reclaim, cron). It
// runs from the moment this server is an established leader (after a
// barrier, so its state includes every entry earlier leaders committed)
// until ctx is cancelled when leadership is lost or the server stops.
type LeaderDuty func(ctx context.Context)

// leadership is the state of this server's leader duties.
type leadership struct {
	notify chan bool

	mu         sync.Mutex
	duties     []namedDuty
	readyTerm  uint64 // term in which the barrier completed; 0 when not leader
	leaderSeen chan struct{}
	// current runs the duties of the leadership in progress, if any.
	current *dutyGroup
}

// dutyGroup is the duties of one leadership term.
type dutyGroup struct {
	ctx context.Context
	wg  sync.WaitGroup
}

func (g *dutyGroup) start(duty namedDuty, logger interface{ Debug(string, ...any) }) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		logger.Debug("leader duty started", "duty", duty.name)
		duty.run(g.ctx)
		logger.Debug("leader duty stopped", "duty", duty.name)
	}()
}

type namedDuty struct {
	name string
	run  LeaderDuty
}

// reconcileDuty is the cluster's own duty: it keeps Raft's voters in step
// with the servers that proved themselves (see reconcileServers).
var reconcileDuty = namedDuty{name: "reconcile-servers"}

func (l *leadership) init() {
	l.notify = make(chan bool, 16)
	l.leaderSeen = make(chan struct{})
}

// RegisterLeaderDuty adds a duty. Registered while this server already
// leads, it starts at once for the rest of that leadership.
func (s *Server) RegisterLeaderDuty(name string, duty LeaderDuty) {
	s.leader.mu.Lock()
	defer s.leader.mu.Unlock()
	d := namedDuty{name: name, run: duty}
	s.leader.duties = append(s.leader.duties, d)
	if s.leader.current != nil {
		s.leader.current.start(d, s.logger)
	}
}

// LeaderDuties names the duties this server runs while it leads, in the
// order they start: the cluster's own (reconcile-servers) first, then
// those registered. It is the list an operator reads in the
// "established leadership" log line.
func (s *Server) LeaderDuties() []string {
	s.leader.mu.Lock()
	defer s.leader.mu.Unlock()
	names := []string{reconcileDuty.name}
	for _, d := range s.leader.duties {
		names = append(names, d.name)
	}
	return names
}

// monitorLeadership is the one place leader duties start and stop.
func (s *Server) monitorLeadership() {
	var stop func()
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		select {
		case isLeader := <-s.leader.notify:
			switch {
			case isLeader && stop == nil:
				stop = s.startLeaderLoop()
			case !isLeader && stop != nil:
				stop()
				stop = nil
			}
		case <-s.shutdownCh:
			return
		}
	}
}

// startLeaderLoop runs leaderLoop in a goroutine and returns the function
// that stops it and waits for it.
func (s *Server) startLeaderLoop() func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.leaderLoop(ctx)
	}()
	return func() {
		cancel()
		<-done
		s.logger.Info("leader duties stopped")
	}
}

// leaderLoop establishes leadership with a barrier, then runs the duties
// until ctx ends.
func (s *Server) leaderLoop(ctx context.Context) {
	term := s.raft.CurrentTerm()
	for {
		// The barrier is waited for beside ctx: Raft hands leadership
		// changes to monitorLeadership through a channel it blocks on
		// when full, and monitorLeadership waits for this loop to stop.
		// Waiting for the barrier alone could hold all three forever
		// (Raft blocked on the channel cannot complete the barrier).
		barrier := make(chan error, 1)
		go func() { barrier <- s.raft.Barrier(time.Minute).Error() }()
		var err error
		select {
		case err = <-barrier:
		case <-ctx.Done():
			return
		}
		if err == nil {
			break
		}
		s.logger.Warn("leader barrier failed; retrying", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	group := &dutyGroup{ctx: ctx}
	s.leader.mu.Lock()
	s.leader.readyTerm = term
	s.leader.current = group
	group.start(namedDuty{name: reconcileDuty.name, run: s.reconcileServers}, s.logger)
	names := []string{reconcileDuty.name}
	for _, duty := range s.leader.duties {
		group.start(duty, s.logger)
		names = append(names, duty.name)
	}
	s.leader.mu.Unlock()
	s.logger.Info("established leadership", "term", term, "duties", names)

	<-ctx.Done()
	s.leader.mu.Lock()
	s.leader.readyTerm = 0
	s.leader.current = nil
	s.leader.mu.Unlock()
	group.wg.Wait()
}

// readyTerm returns the term in which this server established leadership,
// or 0 when it is not an established leader.
func (s *Server) readyTerm() uint64 {
	s.leader.mu.Lock()
	defer s.leader.mu.Unlock()
	return s.leader.readyTerm
}

// observeLeader wakes request goroutines waiting for a leader whenever
// Raft reports a leader change.
func (s *Server) observeLeader() {
	observations := make(chan raft.Observation, 16)
	observer := raft.NewObserver(observations, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.raft.RegisterObserver(observer)
	defer s.raft.DeregisterObserver(observer)
	var lastLeader raft.ServerID
	for {
		select {
		case o := <-observations:
			if id := o.Data.(raft.LeaderObservation).LeaderID; id != "" && id != lastLeader {
				if lastLeader != "" {
					s.config.Metrics.LeaderChanged()
				}
				lastLeader = id
			}
			s.leader.mu.Lock()
			close(s.leader.leaderSeen)
			s.leader.leaderSeen = make(chan struct{})
			s.leader.mu.Unlock()
		case <-s.shutdownCh:
			return
		}
	}
}

// leaderChanged returns a channel closed at the next leader change.
func (s *Server) leaderChanged() <-chan struct{} {
	s.leader.mu.Lock()
	defer s.leader.mu.Unlock()
	return s.leader.leaderSeen
}

// reconcileServers keeps the Raft configuration in line with the gossip
// pool: a live server that is not a voter is added, a server that left
// gracefully is removed. A server that failed is kept: it may come back,
// and removing it would only shrink the quorum a restart needs.
func (s *Server) reconcileServers(ctx context.Context) {
	changed := s.members.subscribe()
	ticker := time.NewTicker(min(10*time.Second, max(s.config.DeadServerTimeout/4, 100*time.Millisecond)))
	defer ticker.Stop()
	for {
		s.reconcileOnce()
		select {
		case <-changed:
		case <-ticker.C:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Server) reconcileOnce() {
	future := s.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		s.logger.Warn("reconcile: read raft configuration", "error", err)
		return
	}
	inConfig := map[raft.ServerID]raft.Server{}
	for _, server := range future.Configuration().Servers {
		inConfig[server.ID] = server
	}
	for _, member := range s.members.list(RoleServer) {
		id := raft.ServerID(member.Name)
		current, known := inConfig[id]
		switch member.Status {
		case MemberAlive:
			if member.Meta.RaftAddr == "" {
				continue
			}
			if known && current.Address == raft.ServerAddress(member.Meta.RaftAddr) && current.Suffrage == raft.Voter {
				continue
			}
			// Add only a server that proves it is the server gossip
			// names, at the address gossip gives (anyone with the gossip
			// key can announce a "server"), and that this one can speak
			// to: a voter nobody can reach would only raise the quorum.
			holder := ""
			if identity.Enforced {
				holder = raftAddressHolder(inConfig, member, s.members)
			}
			var taken error
			if holder != "" {
				taken = fmt.Errorf("its Raft address %s is server %s's, which is alive", member.Meta.RaftAddr, holder)
			}
			s.refusals.note(s, refusedRaftAddress, member, "not adding a server to the raft configuration: it claims a live voter's Raft address", taken)
			if taken != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			proven, err := s.proveServer(ctx, member)
			cancel()
			if err != nil {
				continue
			}
			why, err := s.memberKeysConflict(proven)
			if err != nil {
				s.logger.Warn("adding a server whose signing keys cannot be compared", "server", member.Name, "reason", err)
			}
			var mismatch error
			if why != "" {
				mismatch = keyMismatch(member.Name, why)
			}
			s.refusals.note(s, refusedKeys, member, "not adding a server to the raft configuration: its signing keys conflict with this server's", mismatch)
			if mismatch != nil {
				continue
			}
			s.logger.Info("adding server to raft configuration", "server", member.Name, "address", member.Meta.RaftAddr)
			if err := s.raft.AddVoter(id, raft.ServerAddress(member.Meta.RaftAddr), 0, 10*time.Second).Error(); err != nil {
				s.logger.Warn("add server", "server", member.Name, "error", err)
			}
		case MemberLeft:
			if !known || id == raft.ServerID(s.config.NodeName) {
				continue
			}
			s.logger.Info("removing server that left", "server", member.Name)
			if err := s.raft.RemoveServer(id, 0, 10*time.Second).Error(); err != nil {
				s.logger.Warn("remove server", "server", member.Name, "error", err)
			}
		case MemberFailed:
			if known && current.Suffrage == raft.Voter && time.Since(member.Since) > s.config.DeadServerTimeout {
				s.removeDeadServer(member, inConfig)
			}
		}
	}
}

// raftAddressHolder returns the id of another server of the Raft
// configuration that has member's Raft address and is alive in gossip, or
// "": a member claiming a live voter's address is not that voter.
func raftAddressHolder(inConfig map[raft.ServerID]raft.Server, member Member, table *members) string {
	for id, server := range inConfig {
		if id == raft.ServerID(member.Name) || server.Address != raft.ServerAddress(member.Meta.RaftAddr) {
			continue
		}
		if other, ok := table.get(string(id)); ok && other.Status == MemberAlive {
			return string(id)
		}
	}
	return ""
}

// removeDeadServer takes a server that has been failed for longer than the
// dead-server timeout out of the Raft configuration, but only when the
// live voters that remain are at least the cluster's intended size (a
// replacement has joined) and a majority of what remains: cleaning up
// must never cost the quorum.
func (s *Server) removeDeadServer(dead Member, inConfig map[raft.ServerID]raft.Server) {
	live := 0
	voters := 0
	for id, server := range inConfig {
		if server.Suffrage != raft.Voter || id == raft.ServerID(dead.Name) {
			continue
		}
		voters++
		if m, ok := s.members.get(string(id)); ok && m.Status == MemberAlive {
			live++
		}
	}
	intended := max(s.config.BootstrapExpect, 3)
	if live < intended || live <= voters/2 {
		s.logger.Info("keeping a dead server: no healthy replacement yet", "server", dead.Name, "live_voters", live, "intended", intended)
		return
	}
	s.logger.Warn("removing dead server", "server", dead.Name, "failed_for", time.Since(dead.Since).Round(time.Second), "live_voters", live)
	if err := s.raft.RemoveServer(raft.ServerID(dead.Name), 0, 10*time.Second).Error(); err != nil {
		s.logger.Warn("remove dead server", "server", dead.Name, "error", err)
	}
}
