package dispatch

import (
	"fmt"
	"sort"
	"strings"

	"github.com/daguha/daguha/dispatch/valid"
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

// ParseLabels reads "k=v,k=v" (the seed's --worker.labels form), with
// spaces around keys and values trimmed. Each key and value follows the
// rules of package valid (non-empty, no '=' or ',', at most 253 and 63
// bytes), and there are at most valid.MaxLabels of them: "a=b=c" is
// refused rather than read one way or the other.
func ParseLabels(text string) (map[string]string, error) {
	labels := map[string]string{}
	for _, part := range strings.Split(text, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, value, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("label %s: want key=value", valid.Quote(part))
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if err := valid.LabelKey(key); err != nil {
			return nil, err
		}
		if err := valid.LabelValue(key, value); err != nil {
			return nil, err
		}
		if _, dup := labels[key]; dup {
			return nil, fmt.Errorf("label %s is given twice", valid.Quote(key))
		}
		labels[key] = value
	}
	if err := valid.LabelCount(len(labels)); err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, valid.Quote(text))
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
