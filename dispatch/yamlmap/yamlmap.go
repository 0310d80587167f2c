// Package yamlmap reads the mappings of YAML that comes from outside (DAG
// files, the config file) the one way daguha reads them: aliases followed
// a bounded number of hops, merge keys (<<) expanded with the explicit keys
// winning and the first merged map winning over later ones, as YAML's merge
// key says, a map merged into itself refused, merges nested at most
// MaxMergeDepth deep, and keys that are not strings refused. Every problem
// carries the node it is about, so callers can name the line.
//
// It is a leaf: it imports no daguha package, and both dispatch/dagfile
// and cmd/daguha's config reader use it.
package yamlmap

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// MaxMergeDepth bounds how deep merge keys are followed: a merged map may
// merge another, which may merge another.
const MaxMergeDepth = 8

// maxAliasHops bounds Resolve. A parsed file cannot make an alias name an
// alias, but the bound keeps a hand-built tree from looping.
const maxAliasHops = 16

// Resolve follows aliases to the node they name.
func Resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < maxAliasHops; i++ {
		n = n.Alias
	}
	return n
}

// IsNull says whether a node is absent or YAML's null.
func IsNull(n *yaml.Node) bool {
	n = Resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// Describe names what a node is, for "want X, got Y" messages: a map, a
// list, null, true/false, a number, a string.
func Describe(n *yaml.Node) string {
	n = Resolve(n)
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a map"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.AliasNode:
		return "an alias"
	case n.Kind != yaml.ScalarNode:
		return "a document"
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!bool":
		return "true/false"
	case "!!int", "!!float":
		return "a number"
	}
	return "a string"
}

// Entry is one key of a mapping, after merge keys are applied.
type Entry struct {
	Key     string
	KeyNode *yaml.Node // where the key was written (in the merged map, for a merged key)
	Value   *yaml.Node
}

// Problem is what is wrong at one node.
type Problem struct {
	Node *yaml.Node
	Msg  string
}

// Entries lists a mapping's keys in the order written, then the keys of
// merged maps that the mapping does not give itself. A key written twice
// in the same map is listed twice: callers that refuse duplicates see
// both. It returns nothing for a node that is not a mapping.
func Entries(n *yaml.Node) ([]Entry, []Problem) {
	r := &reader{merging: map[*yaml.Node]bool{}}
	entries := r.entries(Resolve(n), 0)
	return entries, r.problems
}

type reader struct {
	merging  map[*yaml.Node]bool
	problems []Problem
}

func (r *reader) add(n *yaml.Node, format string, args ...any) {
	r.problems = append(r.problems, Problem{Node: n, Msg: fmt.Sprintf(format, args...)})
}

func (r *reader) entries(n *yaml.Node, depth int) []Entry {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	if r.merging[n] {
		r.add(n, "a map is merged into itself")
		return nil
	}
	r.merging[n] = true
	defer delete(r.merging, n)

	var own []Entry
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		rk := Resolve(k)
		if rk == nil || rk.Kind != yaml.ScalarNode {
			r.add(k, "a key must be a string, got %s", Describe(k))
			continue
		}
		if rk.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		own = append(own, Entry{Key: rk.Value, KeyNode: k, Value: v})
	}
	if len(merges) == 0 {
		return own
	}
	seen := map[string]bool{}
	for _, e := range own {
		seen[e.Key] = true
	}
	for _, m := range merges {
		var sources []*yaml.Node
		switch rm := Resolve(m); {
		case rm != nil && rm.Kind == yaml.MappingNode:
			sources = []*yaml.Node{rm}
		case rm != nil && rm.Kind == yaml.SequenceNode:
			sources = rm.Content
		}
		if len(sources) == 0 {
			r.add(m, "a merge key (<<) takes a map or a list of maps, got %s", Describe(m))
			continue
		}
		for _, src := range sources {
			rs := Resolve(src)
			if rs == nil || rs.Kind != yaml.MappingNode {
				r.add(src, "a merge key (<<) takes a map or a list of maps, got %s", Describe(src))
				continue
			}
			if depth >= MaxMergeDepth {
				r.add(src, "merge keys (<<) nest more than %d deep", MaxMergeDepth)
				continue
			}
			for _, e := range r.entries(rs, depth+1) {
				if !seen[e.Key] {
					seen[e.Key] = true
					own = append(own, e)
				}
			}
		}
	}
	return own
}
