//go:build !daguha_trust_off

package identity

// Enforced is true in every real build. The security suite builds daguha
// a second time with the tag daguha_trust_off, where it is false and the
// trust checks that consult it step aside, to show that each attack it
// replays succeeds without its check (so those tests can fail). Never
// build a release with that tag.
const Enforced = true
