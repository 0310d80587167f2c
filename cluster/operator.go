package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/daguha/daguha/fsm"
)

// ErrUnknownPeer is returned for a server id not in the configuration.
var ErrUnknownPeer = errors.New("no such server in the Raft configuration")

// OperatorClient reaches the leader for operator changes; PeerClient
// implementations that support them provide it.
type OperatorClient interface {
	RemovePeer(ctx context.Context, grpcAddr, id string) error
	TransferLeadership(ctx context.Context, grpcAddr, id string) error
}

// RemovePeer takes a server out of the Raft configuration, from any
// server (the leader does it). A server still alive in gossip would be
// added back: stop it first.
func (s *Server) RemovePeer(ctx context.Context, id string) error {
	return s.OnLeader(ctx, func(ctx context.Context, local bool, grpcAddr string) error {
		if !local {
			return s.operator().RemovePeer(ctx, grpcAddr, id)
		}
		return s.RemovePeerLocal(id)
	})
}

// RemovePeerLocal removes a server on the leader.
func (s *Server) RemovePeerLocal(id string) error {
	servers, err := s.configuration()
	if err != nil {
		return err
	}
	found := false
	for _, server := range servers {
		found = found || server.ID == raft.ServerID(id)
	}
	if !found {
		return &CommandError{Err: fmt.Errorf("%w: %q", ErrUnknownPeer, id)}
	}
	if id == s.config.NodeName {
		return &CommandError{Err: errors.New("the leader cannot remove itself: transfer leadership first")}
	}
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error(); err != nil {
		return retryableRaftError(err)
	}
	s.logger.Info("server removed by an operator", "server", id)
	return nil
}

// TransferLeadership hands leadership to the server id, or to the most
// up-to-date follower when id is empty.
func (s *Server) TransferLeadership(ctx context.Context, id string) error {
	return s.OnLeader(ctx, func(ctx context.Context, local bool, grpcAddr string) error {
		if !local {
			return s.operator().TransferLeadership(ctx, grpcAddr, id)
		}
		return s.TransferLeadershipLocal(id)
	})
}

// TransferLeadershipLocal transfers leadership from this leader. Asking
// the leader to transfer to itself succeeds: it is where the caller wants
// leadership to be, and a forwarded request abandoned when leadership
// moved is retried at the new leader.
func (s *Server) TransferLeadershipLocal(id string) error {
	if id == s.config.NodeName {
		return nil
	}
	var future raft.Future
	if id == "" {
		future = s.raft.LeadershipTransfer()
	} else {
		servers, err := s.configuration()
		if err != nil {
			return err
		}
		var target *raft.Server
		for i := range servers {
			if servers[i].ID == raft.ServerID(id) {
				target = &servers[i]
			}
		}
		switch {
		case target == nil:
			return &CommandError{Err: fmt.Errorf("%w: %q", ErrUnknownPeer, id)}
		case target.Suffrage != raft.Voter:
			return &CommandError{Err: fmt.Errorf("server %q is not a voter", id)}
		}
		future = s.raft.LeadershipTransferToServer(target.ID, target.Address)
	}
	if err := future.Error(); err != nil {
		return &CommandError{Err: fmt.Errorf("leadership transfer: %w", err)}
	}
	s.logger.Info("leadership transferred by an operator", "to", id)
	return nil
}

func retryableRaftError(err error) error {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
		return &RetryableError{Err: err}
	}
	return err
}

func (s *Server) operator() OperatorClient {
	if op, ok := s.config.Peers.(OperatorClient); ok {
		return op
	}
	return noOperator{}
}

type noOperator struct{}

func (noOperator) RemovePeer(context.Context, string, string) error {
	return errors.New("this server cannot reach the leader for operator changes")
}
func (noOperator) TransferLeadership(context.Context, string, string) error {
	return errors.New("this server cannot reach the leader for operator changes")
}

// PeerState is one server of the Raft configuration with what it says of
// itself.
type PeerState struct {
	Peer
	// State is "leader", "follower", or "unreachable".
	State     string `json:"state"`
	LastIndex uint64 `json:"last_index"`
	Term      uint64 `json:"term"`
}

// PeerStates lists the Raft configuration, asking each server over gRPC
// for its last index.
func (s *Server) PeerStates(ctx context.Context) ([]PeerState, error) {
	peers, err := s.Peers()
	if err != nil {
		return nil, err
	}
	out := make([]PeerState, len(peers))
	for i, p := range peers {
		out[i] = PeerState{Peer: p, State: "follower"}
		if p.Leader {
			out[i].State = "leader"
		}
		if p.ID == s.config.NodeName {
			out[i].LastIndex, out[i].Term = s.raft.LastIndex(), s.raft.CurrentTerm()
			continue
		}
		member, ok := s.members.get(p.ID)
		if !ok || member.Meta.GRPCAddr == "" {
			out[i].State = "unreachable"
			continue
		}
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		state, err := s.config.Peers.RaftState(callCtx, member.Meta.GRPCAddr)
		cancel()
		if err != nil {
			out[i].State = "unreachable"
			continue
		}
		out[i].LastIndex, out[i].Term = state.GetLastIndex(), state.GetTerm()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// MaxArchiveBytes bounds an archive sent for restore between servers.
const MaxArchiveBytes = 256 << 20

// ArchiveClient forwards a restore to the leader.
type ArchiveClient interface {
	RestoreSnapshot(ctx context.Context, grpcAddr string, archive []byte) error
}

// WriteArchive streams a snapshot of this server's state to w. Call
// ConsistentRead first for a linearizable point: then any server can
// serve it.
func (s *Server) WriteArchive(w io.Writer) error {
	state, applied := s.fsm.State().Snapshot(), s.fsm.LastApplied()
	return fsm.WriteArchive(w, fsm.ArchiveHeader{
		Index: applied, Term: s.raft.CurrentTerm(), Node: s.config.NodeName,
		CreatedAt: time.Now().UTC().Format(time.RFC3339),
	}, state, applied)
}

// RestoreArchive replaces the cluster's state with an archive's, through
// the leader. A truncated, altered or unreadable archive is refused before
// anything changes.
func (s *Server) RestoreArchive(ctx context.Context, archive []byte) error {
	if _, _, err := fsm.InspectArchive(archive); err != nil {
		return &CommandError{Err: err}
	}
	return s.OnLeader(ctx, func(ctx context.Context, local bool, grpcAddr string) error {
		if !local {
			client, ok := s.config.Peers.(ArchiveClient)
			if !ok {
				return errors.New("this server cannot forward a restore to the leader")
			}
			return client.RestoreSnapshot(ctx, grpcAddr, archive)
		}
		return s.RestoreArchiveLocal(archive)
	})
}

// RestoreArchiveLocal restores on the leader; Raft sends the new state to
// the followers as a snapshot.
func (s *Server) RestoreArchiveLocal(archive []byte) error {
	header, counts, err := fsm.InspectArchive(archive)
	if err != nil {
		return &CommandError{Err: err}
	}
	_, snapshot, _ := fsm.ReadArchive(archive)
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: header.Index, Term: header.Term, Size: int64(len(snapshot))}
	if err := s.raft.Restore(meta, bytes.NewReader(snapshot), 5*time.Minute); err != nil {
		return retryableRaftError(fmt.Errorf("restore: %w", err))
	}
	s.logger.Warn("cluster state replaced from a snapshot archive", "archive_index", header.Index, "archive_node", header.Node,
		"runs", counts.Runs, "workers", counts.Workers)
	return nil
}
