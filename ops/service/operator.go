package service

import (
	"context"
	"errors"

	"github.com/daguha/daguha/cluster"
)

// RaftPeers lists the Raft configuration with each server's state and
// last log index.
func (s *Service) RaftPeers(ctx context.Context) ([]cluster.PeerState, error) {
	return s.cluster.PeerStates(ctx)
}

// RemovePeer takes the server id out of the Raft configuration.
func (s *Service) RemovePeer(ctx context.Context, id string) error {
	if id == "" {
		return errorOf(Invalid, errors.New("id is required: the server to remove"))
	}
	return s.cluster.RemovePeer(ctx, id)
}

// TransferLeadership hands leadership to the server id, or to the most
// up-to-date follower when id is empty.
func (s *Service) TransferLeadership(ctx context.Context, id string) error {
	return s.cluster.TransferLeadership(ctx, id)
}
