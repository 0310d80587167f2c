package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
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
// question is settled for good (bootstrapped, or not ours to do). Only
// servers that proved they are the servers gossip names (proveServer)
// count towards bootstrap-expect, and only their answers decide: a fake
// member can neither make up the numbers nor block the bootstrap with a
// bootstrap-expect or signing keys of its own.
func (s *Server) tryBootstrap() bool {
	if s.HasRaftState() {
		s.setBootstrapStatus("skipped: this server has raft state")
		return true
	}
	expect := s.config.BootstrapExpect
	configuration := raft.Configuration{Servers: []raft.Server{{
		ID: raft.ServerID(s.config.NodeName), Address: s.raftAddr, Suffrage: raft.Voter,
	}}}
	names := []string{s.config.NodeName}
	var unproven []string
	for _, member := range s.members.list(RoleServer) {
		if member.Status != MemberAlive || member.Name == s.config.NodeName {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		proven, err := s.proveServer(ctx, member)
		cancel()
		if err != nil {
			unproven = append(unproven, member.Name)
			continue
		}
		if theirs := int(proven.state.GetBootstrapExpect()); theirs != 0 && theirs != expect {
			s.setBootstrapStatus(fmt.Sprintf("refused: server %s has bootstrap-expect=%d, this server has %d; all servers must agree", member.Name, theirs, expect))
			return false
		}
		why, err := s.memberKeysConflict(proven)
		if err != nil {
			s.setBootstrapStatus(fmt.Sprintf("waiting: cannot compare signing keys: %v", err))
			return false
		}
		if why != "" {
			s.setBootstrapStatus("refused: " + keyMismatch(member.Name, why).Error())
			return false
		}
		if proven.state.GetHasState() {
			s.setBootstrapStatus(fmt.Sprintf("skipped: server %s already has raft state; waiting to be added by the leader", member.Name))
			return true
		}
		configuration.Servers = append(configuration.Servers, raft.Server{
			ID:       raft.ServerID(member.Name),
			Address:  raft.ServerAddress(member.Meta.RaftAddr),
			Suffrage: raft.Voter,
		})
		names = append(names, member.Name)
	}
	if len(configuration.Servers) < expect {
		status := fmt.Sprintf("waiting: %d of %d expected servers seen and proven", len(configuration.Servers), expect)
		if len(unproven) > 0 {
			status += fmt.Sprintf("; not counted, not proven to be servers: %s", strings.Join(unproven, ", "))
		}
		s.setBootstrapStatus(status)
		return false
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
	sort.Strings(names)
	s.setBootstrapStatus(fmt.Sprintf("bootstrapped a cluster of %d servers: %s", len(configuration.Servers), strings.Join(names, ", ")))
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
