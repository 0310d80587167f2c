//go:build !chaos_broken_ack

package service

// ackBeforeCommit is true only in the chaos suite's deliberately broken
// build (tag chaos_broken_ack), which answers an enqueue before Raft has
// committed it, to prove that the suite's checkers catch lost acks.
// Never build a release with that tag.
const ackBeforeCommit = false
