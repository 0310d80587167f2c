package api

import (
	"errors"
	"net/http"

	"github.com/daguha/daguha/ops/wire"
)

type peerStatesBody = wire.RaftPeers

// raftPeers lists the Raft configuration with each server's state and
// last log index.
func (s *Server) raftPeers(w http.ResponseWriter, r *http.Request) {
	peers, err := s.cluster.PeerStates(r.Context())
	if err != nil {
		writeClusterError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, peerStatesBody{Peers: peers})
}

type peerRequest = wire.PeerRequest

func (s *Server) removePeer(w http.ResponseWriter, r *http.Request) {
	var req peerRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if req.ID == "" {
		writeError(w, http.StatusBadRequest, errors.New("id is required: the server to remove"))
		return
	}
	if err := s.cluster.RemovePeer(r.Context(), req.ID); err != nil {
		writeClusterError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.PeerRemoved{Removed: req.ID})
}

func (s *Server) transferLeadership(w http.ResponseWriter, r *http.Request) {
	var req peerRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
	}
	if err := s.cluster.TransferLeadership(r.Context(), req.ID); err != nil {
		writeClusterError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.LeadershipTransferred{TransferredTo: req.ID})
}
