package dispatch

import (
	"fmt"
	"sort"
	"strings"

	"github.com/daguha/daguha/store"
)

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

// ParseLabels reads "k=v,k=v" (the seed's --worker.labels form). Keys must
// be non-empty; a value may be empty ("k=") but holds no '=' (so
// "a=b=c" is refused rather than read one way or the other).
func ParseLabels(text string) (map[string]string, error) {
	labels := map[string]string{}
	for _, part := range strings.Split(text, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, value, ok := strings.Cut(part, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, fmt.Errorf("label %q: want key=value", part)
		}
		if _, dup := labels[key]; dup {
			return nil, fmt.Errorf("label %q is given twice", key)
		}
		if strings.Contains(value, "=") {
			return nil, fmt.Errorf("label %q: want key=value, and the value must not contain '='", part)
		}
		labels[key] = strings.TrimSpace(value)
	}
	return labels, nil
}

// FormatLabels writes labels in the "k=v,k=v" form, sorted by key.
func FormatLabels(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}
