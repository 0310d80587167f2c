package dagfile

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/daguha/daguha/dispatch/yamlmap"
)

// Helpers that read yaml.Node values, reporting every mismatch with the
// node's line instead of stopping at the first one.

// The reading of aliases and merge keys is package yamlmap's, shared with
// the config file: these are its names here.

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node { return yamlmap.Resolve(n) }

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names what a node is, for "want X, got Y" messages.
func describe(n *yaml.Node) string { return yamlmap.Describe(n) }

// entry is one key of a mapping, after merge keys ("<<: *base") are applied.
type entry struct {
	key   string
	keyAt *yaml.Node
	value *yaml.Node
}

// entries lists a mapping's keys in the order written, with the keys of
// merged maps after them (yamlmap.Entries); what is wrong with its keys
// or merges is reported under path.
func (c *collector) entries(n *yaml.Node, path string) []entry {
	list, problems := yamlmap.Entries(n)
	for _, p := range problems {
		c.add(p.Node, path, "%s", p.Msg)
	}
	out := make([]entry, len(list))
	for i, e := range list {
		out[i] = entry{key: e.Key, keyAt: e.KeyNode, value: e.Value}
	}
	return out
}

// keyTable maps the camelCase and snake_case spellings of known keys to
// the camelCase one.
type keyTable map[string]string

// anyCase, as a key of a keyTable, makes it take its keys in any case:
// a key not found as written is looked up in lower case.
const anyCase = "\x00any-case"

// lookup is the name of the key written as key, if the table knows it.
func (t keyTable) lookup(key string) (string, bool) {
	if name, ok := t[key]; ok && key != anyCase {
		return name, true
	}
	if _, folded := t[anyCase]; folded {
		name, ok := t[strings.ToLower(key)]
		return name, ok && name != anyCase
	}
	return "", false
}

func newKeyTable(camel ...string) keyTable {
	t := keyTable{}
	for _, k := range camel {
		t[k] = k
		t[snakeCase(k)] = k
	}
	return t
}

func snakeCase(camel string) string {
	var b strings.Builder
	for _, r := range camel {
		if unicode.IsUpper(r) {
			b.WriteByte('_')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// fields reads a mapping of known keys: it reports unknown keys (with a
// suggestion when one is close) and keys given twice (in either spelling),
// and returns the entries by their camelCase name.
func (c *collector) fields(n *yaml.Node, path string, known keyTable) map[string]entry {
	out := map[string]entry{}
	for _, e := range c.entries(n, path) {
		name, ok := known.lookup(e.key)
		if !ok {
			msg := fmt.Sprintf("unknown key %q", e.key)
			if s := suggest(e.key, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			c.add(e.keyAt, join(path, e.key), "%s", msg)
			continue
		}
		if prev, dup := out[name]; dup {
			c.add(e.keyAt, join(path, e.key), "given twice (first as %q on line %d)", prev.key, prev.keyAt.Line)
			continue
		}
		out[name] = e
	}
	return out
}

// join makes the path of a key inside path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// suggest returns the known key closest to an unknown one, if it is close
// enough to be a likely typo.
func suggest(key string, known keyTable) string {
	spellings := make([]string, 0, len(known))
	for spelling := range known {
		if spelling != anyCase {
			spellings = append(spellings, spelling)
		}
	}
	sort.Strings(spellings)
	best, bestDistance := "", math.MaxInt
	for _, spelling := range spellings {
		if d := editDistance(strings.ToLower(key), strings.ToLower(spelling)); d < bestDistance {
			best, bestDistance = spelling, d
		}
	}
	if bestDistance <= 2 && bestDistance*2 < len(key) {
		return best
	}
	// A shortened key: timeout for timeoutSec.
	if len(key) >= 4 {
		for _, spelling := range spellings {
			if strings.HasPrefix(strings.ToLower(spelling), strings.ToLower(key)) {
				return spelling
			}
		}
	}
	return ""
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// text reads a scalar as the text written: a number or true/false is kept
// as its text, null is "". ok is false (and a problem reported) for a map
// or a list.
func (c *collector) text(n *yaml.Node, path string) (string, bool) {
	r := resolve(n)
	if isNull(r) {
		return "", true
	}
	if r.Kind != yaml.ScalarNode {
		c.add(n, path, "want a string, got %s", describe(n))
		return "", false
	}
	return r.Value, true
}

// texts reads a string or a list of strings.
func (c *collector) texts(n *yaml.Node, path string) ([]string, []*yaml.Node) {
	r := resolve(n)
	if isNull(r) {
		return nil, nil
	}
	if r.Kind == yaml.SequenceNode {
		var values []string
		var at []*yaml.Node
		for i, item := range r.Content {
			v, ok := c.text(item, index(path, i))
			if ok {
				values = append(values, v)
				at = append(at, item)
			}
		}
		return values, at
	}
	v, ok := c.text(n, path)
	if !ok {
		return nil, nil
	}
	return []string{v}, []*yaml.Node{n}
}

// integer reads a whole number between 0 and limit; a quoted one ("30")
// is accepted too.
func (c *collector) integer(n *yaml.Node, path string, limit int64) (int64, bool) {
	r := resolve(n)
	if isNull(r) {
		return 0, true
	}
	var v int64
	bad := r.Kind != yaml.ScalarNode
	if !bad {
		switch r.ShortTag() {
		case "!!int":
			bad = r.Decode(&v) != nil
		case "!!str":
			var err error
			v, err = strconv.ParseInt(strings.TrimSpace(r.Value), 10, 64)
			bad = err != nil
		default:
			bad = true
		}
	}
	if bad {
		got := describe(n)
		if r.Kind == yaml.ScalarNode {
			got = strconv.Quote(r.Value)
		}
		c.add(n, path, "want a whole number, got %s", got)
		return 0, false
	}
	if v < 0 {
		c.add(n, path, "must not be negative, got %d", v)
		return 0, false
	}
	if v > limit {
		c.add(n, path, "must be at most %d, got %d", limit, v)
		return 0, false
	}
	return v, true
}

func (c *collector) boolean(n *yaml.Node, path string) (bool, bool) {
	r := resolve(n)
	if isNull(r) {
		return false, true
	}
	var v bool
	if r.Kind != yaml.ScalarNode || r.Decode(&v) != nil {
		c.add(n, path, "want true or false, got %s", describe(n))
		return false, false
	}
	return v, true
}
