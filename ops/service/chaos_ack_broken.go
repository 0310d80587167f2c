//go:build chaos_broken_ack

package service

// ackBeforeCommit: this deliberately broken build acknowledges an enqueue
// before Raft has committed it. Only the chaos suite builds it.
const ackBeforeCommit = true
