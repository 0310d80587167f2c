package wire

import "github.com/daguha/daguha/cluster"

// The cluster's own descriptions of its servers travel as they are: the
// JSON shape is theirs, named here so that clients need only this package.
type (
	// Peer is a server in the Raft configuration.
	Peer = cluster.Peer
	// Member is a node gossip knows of.
	Member = cluster.Member
	// PeerState is a peer with its Raft state and last log index.
	PeerState = cluster.PeerState
)

// Health is the answer of GET /api/v2/health (200 once the server knows
// a leader, 503 before, with the same body).
type Health struct {
	Status string `json:"status"`
	Node   string `json:"node"`
	Role   string `json:"role"`
	Leader string `json:"leader"`
}

// Leader is the answer of GET /api/v2/cluster/leader; Error is set on 503.
type Leader struct {
	Leader  string `json:"leader"`
	Address string `json:"address"`
	Error   string `json:"error,omitempty"`
}

// Peers is the answer of GET /api/v2/cluster/peers: the Raft
// configuration as the server knows it.
type Peers struct {
	Peers []Peer `json:"peers"`
}

// Members is the answer of GET /api/v2/cluster/members: every node
// gossip knows of.
type Members struct {
	Members []Member `json:"members"`
}

// Self is the answer of GET /api/v2/agent/self: a server's role, what
// bootstrap decided, and how far its Raft log and state have come.
type Self struct {
	Node      string   `json:"node"`
	Role      string   `json:"role"`
	Leader    string   `json:"leader"`
	Bootstrap string   `json:"bootstrap"`
	Raft      RaftInfo `json:"raft"`
}

// RaftInfo is a server's Raft progress, in Self.
type RaftInfo struct {
	HasState     bool   `json:"has_state"`
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// FSMIndex is the index of the last command applied to the state.
	FSMIndex uint64 `json:"fsm_index"`
}

// RaftPeers is the answer of GET /api/v2/operator/raft/peers: the Raft
// configuration with each server's state and last log index.
type RaftPeers struct {
	Peers []PeerState `json:"peers"`
}

// PeerRequest is the body of POST /api/v2/operator/raft/remove-peer (ID
// required) and of transfer-leadership (ID empty: the leader's choice).
type PeerRequest struct {
	ID string `json:"id"`
}

// PeerRemoved is the answer of a remove-peer.
type PeerRemoved struct {
	Removed string `json:"removed"`
}

// LeadershipTransferred is the answer of a transfer-leadership; the id
// is the one asked for ("" when the leader chose).
type LeadershipTransferred struct {
	TransferredTo string `json:"transferred_to"`
}

// Restored is the answer of POST /api/v2/operator/snapshot.
type Restored struct {
	RestoredBytes int64 `json:"restored_bytes"`
}

// GlanceSample is the cluster at one moment, in the answer of GET
// /api/v2/cluster/glance.
type GlanceSample struct {
	At          string `json:"at"`
	QueueDepth  int    `json:"queue_depth"`
	RunsRunning int    `json:"runs_running"`
	// RunsStarted counts the runs the answering server started as leader
	// since the sample before.
	RunsStarted uint64         `json:"runs_started"`
	Workers     map[string]int `json:"workers"`
	Leader      string         `json:"leader"`
}

// Glance is the answer of GET /api/v2/cluster/glance: the last samples
// one server kept (the leader's unless stale), oldest first.
type Glance struct {
	Server  string         `json:"server"`
	Samples []GlanceSample `json:"samples"`
}
