//go:build !chaos_broken_fencing

package store

// FencingChecked says whether a lease holder's reports are checked
// against the run's current fencing token. It is false only in the chaos
// suite's deliberately broken build (tag chaos_broken_fencing), which
// proves that the suite's checkers catch stale results. Never build a
// release with that tag.
const FencingChecked = true
