package dispatch

import "github.com/daguha/daguha/store"

// Matches reports whether a worker with labels may take a run with
// selector: every selector label present with the identical value.
func Matches(selector, labels map[string]string) bool {
	for key, want := range selector {
		got, ok := labels[key]
		if !ok || got != want {
			return false
		}
	}
	return true
}

// SelectorKey is the canonical form runs are queued under.
func SelectorKey(selector map[string]string) string { return store.SelectorKey(selector) }
