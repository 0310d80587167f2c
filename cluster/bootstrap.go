package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// bootstrapLoop waits until bootstrap-expect servers are in the gossip
// pool and then writes the first Raft configuration, unless any server
// (this one included) already has Raft state: a restarted server, or one
// joining a running cluster, must never start a second cluster.
func (s *Server) bootstrapLoop() {
	changed := s.members.subscribe()
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		if s.tryBootstrap() {
			return
		}
		select {
		case <-changed:
		case <-ticker.C:
		case <-s.shutdownCh:
			return
		}
	}
}

// tryBootstrap makes one bootstrap decision. It returns true once the
// question is settled for good (bootstrapped, or not ours to do).
func (s *Server) tryBootstrap() bool {
	if s.HasRaftState() {
		s.setBootstrapStatus("skipped: this server has raft state")
		return true
	}
	expect := s.config.BootstrapExpect
	var servers []Member
	for _, member := range s.members.list(RoleServer) {
		if member.Status != MemberAlive {
			continue
		}
		if member.Meta.Expect != 0 && member.Meta.Expect != expect {
			s.setBootstrapStatus(fmt.Sprintf("refused: server %s has bootstrap-expect=%d, this server has %d; all servers must agree", member.Name, member.Meta.Expect, expect))
			return false
		}
		servers = append(servers, member)
	}
	if err := s.keyConflict(); err != nil {
		s.setBootstrapStatus("refused: " + err.Error())
		return false
	}
	if len(servers) < expect {
		s.setBootstrapStatus(fmt.Sprintf("waiting: %d of %d expected servers seen", len(servers), expect))
		return false
	}
	for _, peer := range servers {
		if peer.Name == s.config.NodeName {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		state, err := s.config.Peers.RaftState(ctx, peer.Meta.GRPCAddr)
		cancel()
		if err != nil {
			s.setBootstrapStatus(fmt.Sprintf("waiting: could not ask %s whether it has raft state: %v", peer.Name, err))
			return false
		}
		if state.GetHasState() {
			s.setBootstrapStatus(fmt.Sprintf("skipped: server %s already has raft state; waiting to be added by the leader", peer.Name))
			return true
		}
	}
	configuration := raft.Configuration{}
	names := make([]string, 0, len(servers))
	for _, member := range servers {
		configuration.Servers = append(configuration.Servers, raft.Server{
			ID:       raft.ServerID(member.Name),
			Address:  raft.ServerAddress(member.Meta.RaftAddr),
			Suffrage: raft.Voter,
		})
		names = append(names, member.Name)
	}
	if err := s.raft.BootstrapCluster(configuration).Error(); err != nil {
		if errors.Is(err, raft.ErrCantBootstrap) {
			s.setBootstrapStatus("skipped: this server has raft state")
			return true
		}
		s.setBootstrapStatus(fmt.Sprintf("waiting: bootstrap failed: %v", err))
		return false
	}
	s.hadState.Store(true)
	s.setBootstrapStatus(fmt.Sprintf("bootstrapped a cluster of %d servers: %s", len(servers), strings.Join(names, ", ")))
	return true
}

// bootstrapSelf makes this server a one-server cluster (dev mode), unless
// it already has state from an earlier run on the same data directory.
func (s *Server) bootstrapSelf() {
	if s.HasRaftState() {
		s.setBootstrapStatus("skipped: this server has raft state")
		return
	}
	configuration := raft.Configuration{Servers: []raft.Server{{
		ID: raft.ServerID(s.config.NodeName), Address: s.raftAddr, Suffrage: raft.Voter,
	}}}
	if err := s.raft.BootstrapCluster(configuration).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		s.setBootstrapStatus(fmt.Sprintf("failed: %v", err))
		return
	}
	s.hadState.Store(true)
	s.setBootstrapStatus("bootstrapped a single-server cluster")
}
