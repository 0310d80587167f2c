package valid

import (
	"fmt"
	"sort"
	"strings"
)

// ParseLabels reads "k=v,k=v" (the seed's --worker.labels form), with
// spaces around keys and values trimmed. Each key and value follows the
// rules of this package (non-empty, no '=' or ',', at most 253 and 63
// bytes), and there are at most MaxLabels of them: "a=b=c" is
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
			return nil, fmt.Errorf("label %s: want key=value", Quote(part))
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if err := LabelKey(key); err != nil {
			return nil, err
		}
		if err := LabelValue(key, value); err != nil {
			return nil, err
		}
		if _, dup := labels[key]; dup {
			return nil, fmt.Errorf("label %s is given twice", Quote(key))
		}
		labels[key] = value
	}
	if err := LabelCount(len(labels)); err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, Quote(text))
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
