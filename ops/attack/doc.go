// Package attack is the security suite: it replays, against real daguha
// processes, every attack that was seen to work on a live cluster before
// the trust boundaries of docs/security.md existed (issue 20's table: a
// worker's certificate, the gossip key, a read-only token, a full token,
// and plain network access), on a cluster under mutual TLS and on one
// without TLS but with a cluster token.
//
// Each attack runs twice: against the real build, where it must be
// refused and the refusal logged with its reason, and against the
// deliberately broken build (tag daguha_trust_off, where the trust checks
// step aside), where the attacks those checks stop must succeed. The
// second run is what makes the first one mean something: a suite whose
// attacks fail against the broken build tests nothing.
//
// The package holds no code of its own; everything is in its tests.
package attack
