//go:build daguha_trust_off

package identity

// Enforced is false only in the security suite's deliberately broken
// build (tag daguha_trust_off): the trust checks step aside.
const Enforced = false
