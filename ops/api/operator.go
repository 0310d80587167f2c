package api

import (
	"net/http"

	"github.com/daguha/daguha/ops/wire"
)

type peerStatesBody = wire.RaftPeers

// raftPeers lists the Raft configuration with each server's state and
// last log index.
func (s *Server) raftPeers(w http.ResponseWriter, r *http.Request) error {
	peers, err := s.service.RaftPeers(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, peerStatesBody{Peers: peers})
	return nil
}

type peerRequest = wire.PeerRequest

func (s *Server) removePeer(w http.ResponseWriter, r *http.Request) error {
	var req peerRequest
	if err := decodeJSON(r, &req); err != nil {
		return invalid(err)
	}
	if err := s.service.RemovePeer(r.Context(), req.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.PeerRemoved{Removed: req.ID})
	return nil
}

func (s *Server) transferLeadership(w http.ResponseWriter, r *http.Request) error {
	var req peerRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return invalid(err)
		}
	}
	if err := s.service.TransferLeadership(r.Context(), req.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.LeadershipTransferred{TransferredTo: req.ID})
	return nil
}
