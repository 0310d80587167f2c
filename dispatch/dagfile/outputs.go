package dagfile

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/daguha/daguha/dispatch/valid"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's output written as a map: entries a step publishes when it ends,
// each a literal value or read from its stdout, its stderr or a file,
// decoded as text, JSON or YAML, and optionally a part of it selected.

var outputEntryKeys = newKeyTable("value", "from", "path", "decode", "select")

// outputEntries reads an output map.
func (c *collector) outputEntries(m *yaml.Node, key string) []*daguhav1.StepOutputEntry {
	var out []*daguhav1.StepOutputEntry
	for _, e := range c.entries(m, key) {
		k := join(key, e.key)
		if err := valid.OutputName(e.key); err != nil {
			c.add(e.keyAt, k, "%v", err)
			continue
		}
		if entry := c.outputEntry(e.key, e.value, k); entry != nil {
			out = append(out, entry)
		}
	}
	if len(out) == 0 && len(c.entriesQuiet(m)) == 0 {
		c.add(m, key, "an empty output map publishes nothing")
	}
	return out
}

// outputEntry reads one entry: a literal (a map is one only when it uses
// none of value, from, path, decode and select) or a structured entry.
func (c *collector) outputEntry(name string, n *yaml.Node, key string) *daguhav1.StepOutputEntry {
	r := resolve(n)
	structured := false
	if r.Kind == yaml.MappingNode {
		for _, e := range c.entriesQuiet(r) {
			if _, ok := outputEntryKeys[e.key]; ok {
				structured = true
			}
		}
	}
	if !structured {
		value, ok := c.jsonValue(n, key)
		if !ok {
			return nil
		}
		return &daguhav1.StepOutputEntry{Name: name, ValueJson: value}
	}
	entry := &daguhav1.StepOutputEntry{Name: name}
	fields := c.fields(r, key, outputEntryKeys)
	text := func(field string) string {
		if e, ok := fields[field]; ok {
			v, _ := c.text(e.value, join(key, e.key))
			return strings.TrimSpace(v)
		}
		return ""
	}
	entry.From, entry.Path, entry.Decode, entry.Select = text("from"), text("path"), text("decode"), text("select")
	if e, ok := fields["value"]; ok {
		if entry.From != "" {
			c.add(e.keyAt, join(key, e.key), "value and from cannot be used together")
			return nil
		}
		if entry.Path != "" || entry.Decode != "" || entry.Select != "" {
			c.add(e.keyAt, join(key, e.key), "path, decode and select go with from, not value")
			return nil
		}
		value, ok := c.jsonValue(e.value, join(key, e.key))
		if !ok {
			return nil
		}
		entry.ValueJson = value
		return entry
	}
	switch entry.From {
	case "stdout", "stderr":
		if entry.Path != "" {
			c.add(fields["path"].keyAt, join(key, "path"), "path goes with from: file")
			return nil
		}
	case "file":
		if entry.Path == "" {
			c.add(r, join(key, "path"), "from: file needs a path")
			return nil
		}
	case "":
		c.add(r, join(key, "from"), "an entry needs a value or from (stdout, stderr or file)")
		return nil
	default:
		c.add(fields["from"].value, join(key, "from"), "want stdout, stderr or file, got %q", entry.From)
		return nil
	}
	switch entry.Decode {
	case "", "text", "json", "yaml":
	default:
		c.add(fields["decode"].value, join(key, "decode"), "want text, json or yaml, got %q", entry.Decode)
		return nil
	}
	if entry.Select != "" {
		if entry.Decode != "json" && entry.Decode != "yaml" {
			c.add(fields["select"].keyAt, join(key, "select"), "select needs decode: json or yaml")
			return nil
		}
		if _, err := ParseSelect(entry.Select); err != nil {
			c.add(fields["select"].value, join(key, "select"), "%v", err)
			return nil
		}
	}
	return entry
}

// jsonValue is a YAML value as JSON.
func (c *collector) jsonValue(n *yaml.Node, key string) (string, bool) {
	var v any
	if err := resolve(n).Decode(&v); err != nil {
		c.add(n, key, "%v", err)
		return "", false
	}
	data, err := json.Marshal(v)
	if err != nil {
		c.add(n, key, "not a JSON value: %v", err)
		return "", false
	}
	return string(data), true
}

// SelectStep is one step of a select path: a key of an object, or an
// index of an array.
type SelectStep struct {
	Key   string
	Index int
	IsKey bool
}

// ParseSelect reads a select path such as .a.b[0], .["a b"] or . (the
// whole value), as Dagu's output select takes them (jq's simple paths).
func ParseSelect(s string) ([]SelectStep, error) {
	s = strings.TrimSpace(s)
	bad := func(at int) error {
		return fmt.Errorf("bad select path %q at offset %d: want a path such as .a.b[0]", s, at)
	}
	if s == "" || s[0] != '.' {
		return nil, bad(0)
	}
	if s == "." {
		return nil, nil
	}
	var steps []SelectStep
	i := 0
	for i < len(s) {
		switch {
		case s[i] == '.' && i+1 < len(s) && s[i+1] == '[':
			i++
		case s[i] == '.':
			j := i + 1
			for j < len(s) && (isNameByte(s[j]) || s[j] == '-') {
				j++
			}
			if j == i+1 {
				return nil, bad(i)
			}
			steps = append(steps, SelectStep{Key: s[i+1 : j], IsKey: true})
			i = j
		case s[i] == '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, bad(i)
			}
			inner := s[i+1 : i+end]
			if n, err := strconv.Atoi(inner); err == nil && n >= 0 {
				steps = append(steps, SelectStep{Index: n})
			} else if k, err := strconv.Unquote(inner); err == nil && strings.HasPrefix(inner, `"`) {
				steps = append(steps, SelectStep{Key: k, IsKey: true})
			} else {
				return nil, bad(i)
			}
			i += end + 1
		default:
			return nil, bad(i)
		}
	}
	return steps, nil
}

func isNameByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// Select follows a select path into a decoded JSON or YAML value.
func Select(v any, path []SelectStep) (any, error) {
	for _, step := range path {
		switch x := v.(type) {
		case map[string]any:
			if !step.IsKey {
				return nil, fmt.Errorf("[%d]: the value is an object, not an array", step.Index)
			}
			next, ok := x[step.Key]
			if !ok {
				return nil, fmt.Errorf(".%s: no such key", step.Key)
			}
			v = next
		case []any:
			if step.IsKey {
				return nil, fmt.Errorf(".%s: the value is an array, not an object", step.Key)
			}
			if step.Index >= len(x) {
				return nil, fmt.Errorf("[%d]: the array has %d items", step.Index, len(x))
			}
			v = x[step.Index]
		default:
			if step.IsKey {
				return nil, fmt.Errorf(".%s: the value is not an object", step.Key)
			}
			return nil, fmt.Errorf("[%d]: the value is not an array", step.Index)
		}
	}
	return v, nil
}
