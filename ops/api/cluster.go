package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/ops/wire"
)

type healthBody = wire.Health

// health is 200 once this server knows a leader, 503 before: a load
// balancer or orchestrator can route to it exactly when it can serve.
// Dagu 1.x's health call is the same path: Dagu's version, uptime and
// timestamp come beside daguha's fields (its status stays daguha's "ok";
// /api/v1/health answers Dagu's "healthy").
func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	leader, _ := s.cluster.Leader()
	body := wire.SharedHealth{
		Health:  healthBody{Status: "ok", Node: s.cluster.NodeName(), Role: strings.ToLower(s.cluster.State()), Leader: leader},
		Version: s.version, Uptime: int64(time.Since(s.started).Seconds()), Timestamp: time.Now().UTC().Format(time.RFC3339),
	}
	if leader == "" {
		body.Health.Status = "no leader"
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

type leaderBody = wire.Leader

func (s *Server) leader(w http.ResponseWriter, _ *http.Request) {
	name, addr := s.cluster.Leader()
	if name == "" {
		writeJSON(w, http.StatusServiceUnavailable, leaderBody{Error: cluster.ErrNoLeader.Error()})
		return
	}
	writeJSON(w, http.StatusOK, leaderBody{Leader: name, Address: addr})
}

type peersBody = wire.Peers

func (s *Server) peers(w http.ResponseWriter, _ *http.Request) error {
	peers, err := s.cluster.Peers()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, peersBody{Peers: peers})
	return nil
}

type membersBody = wire.Members

func (s *Server) members(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, membersBody{Members: s.cluster.Members()})
}

type (
	selfBody = wire.Self
	raftInfo = wire.RaftInfo
)

// self describes this server for operators and tests: its role, what
// bootstrap decided, and how far its Raft log and state have come.
func (s *Server) self(w http.ResponseWriter, _ *http.Request) {
	leader, _ := s.cluster.Leader()
	r := s.cluster.Raft()
	writeJSON(w, http.StatusOK, selfBody{
		Node:      s.cluster.NodeName(),
		Role:      strings.ToLower(s.cluster.State()),
		Leader:    leader,
		Bootstrap: s.cluster.BootstrapStatus(),
		Raft: raftInfo{
			HasState:     s.cluster.HasRaftState(),
			Term:         r.CurrentTerm(),
			LastIndex:    r.LastIndex(),
			CommitIndex:  r.CommitIndex(),
			AppliedIndex: r.AppliedIndex(),
			FSMIndex:     s.cluster.FSM().LastApplied(),
		},
	})
}
