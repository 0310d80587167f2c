package api

import (
	"net/http"

	"github.com/daguha/daguha/cluster"
)

type peerStatesBody struct {
	Peers []cluster.PeerState `json:"peers"`
}

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

type peerRequest struct {
	ID string `json:"id"`
}

func (s *Server) removePeer(w http.ResponseWriter, r *http.Request) error {
	var req peerRequest
	if err := decodeJSON(r, &req); err != nil {
		return invalid(err)
	}
	if err := s.service.RemovePeer(r.Context(), req.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": req.ID})
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
	writeJSON(w, http.StatusOK, map[string]string{"transferred_to": req.ID})
	return nil
}
