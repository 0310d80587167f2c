//go:build chaos_broken_fencing

package store

// FencingChecked is false in this deliberately broken build: any lease
// the cluster ever signed is believed, however stale. Only the chaos
// suite builds it, to prove its checkers can fail.
const FencingChecked = false
