package dagfile

import (
	"math"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/daguha/daguha/dispatch/valid"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// DefaultMaxConcurrent is how many child runs of a parallel step may be
// active at once when the step does not say: Dagu's default.
const DefaultMaxConcurrent = 10

var parallelKeys = newKeyTable("items", "maxConcurrent")

// stepParallel reads a step's parallel key, Dagu's one step over a list of
// items with a child run per item. It is for run/call steps only, as in
// Dagu.
func (c *collector) stepParallel(step *daguhav1.StepSpec, info *stepInfo, fields map[string]entry, path string) {
	e, ok := fields["parallel"]
	if !ok || isNull(resolve(e.value)) {
		return
	}
	key := join(path, e.key)
	parallel := c.parallel(e.value, key)
	if info.childKey == nil {
		c.add(e.keyAt, key, "parallel is for run/call steps: each item starts a child run of the DAG the step names (as in Dagu)")
		return
	}
	step.Parallel = parallel
}

// parallel reads Dagu's three forms: a string (a variable holding the
// items, read when the step runs: parallel: ${ITEMS}), a list of items,
// or a map of items (either of those) and maxConcurrent.
func (c *collector) parallel(n *yaml.Node, path string) *daguhav1.ParallelSpec {
	spec := &daguhav1.ParallelSpec{MaxConcurrent: DefaultMaxConcurrent}
	r := resolve(n)
	switch r.Kind {
	case yaml.ScalarNode, yaml.SequenceNode:
		if !c.parallelItems(spec, n, path) {
			return nil
		}
	case yaml.MappingNode:
		fields := c.fields(r, path, parallelKeys)
		items, ok := fields["items"]
		if !ok || isNull(resolve(items.value)) {
			c.add(n, path, "want items: a list of items, or a variable holding them such as ${ITEMS}")
			return nil
		}
		if !c.parallelItems(spec, items.value, join(path, items.key)) {
			return nil
		}
		if m, ok := fields["maxConcurrent"]; ok && !isNull(resolve(m.value)) {
			key := join(path, m.key)
			v, ok := c.integer(m.value, key, math.MaxUint32)
			switch {
			case !ok:
				return nil
			case v == 0:
				c.add(m.value, key, "must be at least 1")
				return nil
			}
			spec.MaxConcurrent = uint32(v)
		}
	default:
		c.add(n, path, "want a list of items, a variable holding them such as ${ITEMS}, or a map of items and maxConcurrent; got %s", describe(n))
		return nil
	}
	return spec
}

// parallelItems reads the items: a list, or a string naming where they
// are when the step runs.
func (c *collector) parallelItems(spec *daguhav1.ParallelSpec, n *yaml.Node, path string) bool {
	r := resolve(n)
	switch {
	case r.Kind == yaml.ScalarNode && r.ShortTag() == "!!str":
		from := strings.TrimSpace(r.Value)
		if from == "" {
			c.add(n, path, "want a list of items, or a variable holding them such as ${ITEMS}; got an empty string")
			return false
		}
		spec.ItemsFrom = from
		return true
	case r.Kind == yaml.SequenceNode:
		if err := valid.ParallelItems(len(r.Content)); err != nil {
			c.add(n, path, "%v", err)
			return false
		}
		ok := true
		for i, item := range r.Content {
			if v := c.parallelItem(item, index(path, i)); v != nil {
				spec.Items = append(spec.Items, v)
			} else {
				ok = false
			}
		}
		return ok
	default:
		c.add(n, path, "want a list of items, or a variable holding them such as ${ITEMS}; got %s", describe(n))
		return false
	}
}

// parallelItem reads one item: a string or a number (the child's params,
// as Dagu passes them), or a map of names to scalars (the child's named
// params).
func (c *collector) parallelItem(n *yaml.Node, path string) *daguhav1.ParallelItem {
	r := resolve(n)
	switch {
	case r.Kind == yaml.ScalarNode && !isNull(r) && r.ShortTag() != "!!bool":
		return &daguhav1.ParallelItem{Value: r.Value}
	case r.Kind == yaml.MappingNode:
		item := &daguhav1.ParallelItem{IsMap: true}
		lines := map[string]int{}
		ok := true
		for _, e := range c.entries(r, path) {
			key := join(path, e.key)
			if !isIdentifier(e.key) {
				c.add(e.keyAt, key, "a param name is letters, digits and underscores, not starting with a digit")
				ok = false
				continue
			}
			if first, dup := lines[e.key]; dup {
				c.add(e.keyAt, key, "given twice (first on line %d)", first)
				ok = false
				continue
			}
			lines[e.key] = e.keyAt.Line
			v := resolve(e.value)
			if v.Kind != yaml.ScalarNode || isNull(v) {
				c.add(e.value, key, "want a string, a number or true/false, got %s", describe(e.value))
				ok = false
				continue
			}
			item.Params = append(item.Params, &daguhav1.Param{Name: e.key, Value: v.Value})
		}
		if !ok {
			return nil
		}
		return item
	default:
		c.add(n, path, "an item is a string, a number or a map of params, got %s", describe(n))
		return nil
	}
}
