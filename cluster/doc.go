// Package cluster runs a daguha server's share of the cluster: the Raft
// node over the FSM, the gossip pool that finds the other servers,
// bootstrap-expect, leadership (the one place leader-only duties start and
// stop), and the forwarding of writes and read barriers to the leader.
//
// It speaks to other servers only through the PeerClient it is given
// (package rpc provides the gRPC one; tests may give an in-memory one), so
// that it never depends on the layers above it.
package cluster
