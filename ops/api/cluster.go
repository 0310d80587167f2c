package api

import (
	"net/http"
	"strings"

	"github.com/daguha/daguha/cluster"
)

type healthBody struct {
	Status string `json:"status"`
	Node   string `json:"node"`
	Role   string `json:"role"`
	Leader string `json:"leader"`
}

// health is 200 once this server knows a leader, 503 before: a load
// balancer or orchestrator can route to it exactly when it can serve.
func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	leader, _ := s.cluster.Leader()
	body := healthBody{Status: "ok", Node: s.cluster.NodeName(), Role: strings.ToLower(s.cluster.State()), Leader: leader}
	if leader == "" {
		body.Status = "no leader"
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

type leaderBody struct {
	Leader  string `json:"leader"`
	Address string `json:"address"`
	Error   string `json:"error,omitempty"`
}

func (s *Server) leader(w http.ResponseWriter, _ *http.Request) {
	name, addr := s.cluster.Leader()
	if name == "" {
		writeJSON(w, http.StatusServiceUnavailable, leaderBody{Error: cluster.ErrNoLeader.Error()})
		return
	}
	writeJSON(w, http.StatusOK, leaderBody{Leader: name, Address: addr})
}

type peersBody struct {
	Peers []cluster.Peer `json:"peers"`
}

func (s *Server) peers(w http.ResponseWriter, _ *http.Request) error {
	peers, err := s.cluster.Peers()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, peersBody{Peers: peers})
	return nil
}

type membersBody struct {
	Members []cluster.Member `json:"members"`
}

func (s *Server) members(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, membersBody{Members: s.cluster.Members()})
}

type selfBody struct {
	Node      string   `json:"node"`
	Role      string   `json:"role"`
	Leader    string   `json:"leader"`
	Bootstrap string   `json:"bootstrap"`
	Raft      raftInfo `json:"raft"`
}

type raftInfo struct {
	HasState     bool   `json:"has_state"`
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// FSMIndex is the index of the last command applied to the state.
	FSMIndex uint64 `json:"fsm_index"`
}

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
