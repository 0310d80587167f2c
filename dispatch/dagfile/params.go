package dagfile

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// ParseParams reads Dagu's params string: values separated by white
// space, each either NAME=value (a named param; NAME is letters, digits
// and underscores, not starting with a digit) or a bare value (positional,
// with an empty Name). A value may be quoted: "a b" (where \" and \\
// stand for " and \) or 'a b' (taken as written). A `command` in
// backquotes is kept with its backquotes, for the run to substitute. A
// quoted value is always positional: "A=b" is the value A=b.
func ParseParams(s string) ([]*daguhav1.Param, error) {
	var params []*daguhav1.Param
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			return params, nil
		}
		name := ""
		if j := identEnd(s, i); j > i && j < len(s) && s[j] == '=' {
			name, i = s[i:j], j+1
		}
		value, next, err := paramValue(s, i)
		if err != nil {
			return nil, err
		}
		params = append(params, &daguhav1.Param{Name: name, Value: value})
		i = next
	}
}

// paramValue reads one value starting at i and returns it and where the
// next one may start.
func paramValue(s string, i int) (string, int, error) {
	if i >= len(s) || isSpace(s[i]) {
		return "", i, nil
	}
	quote := s[i]
	if quote != '"' && quote != '\'' && quote != '`' {
		j := i
		for j < len(s) && !isSpace(s[j]) {
			j++
		}
		return s[i:j], j, nil
	}
	var b strings.Builder
	j := i + 1
	for ; j < len(s) && s[j] != quote; j++ {
		if quote == '"' && s[j] == '\\' && j+1 < len(s) && (s[j+1] == '"' || s[j+1] == '\\') {
			j++
		}
		b.WriteByte(s[j])
	}
	if j >= len(s) {
		return "", 0, fmt.Errorf("the %c quote at offset %d is not closed", quote, i)
	}
	j++ // the closing quote
	if j < len(s) && !isSpace(s[j]) {
		return "", 0, fmt.Errorf("a closing %c quote must be followed by a space (offset %d)", quote, j-1)
	}
	if quote == '`' {
		return s[i:j], j, nil
	}
	return b.String(), j, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// identEnd returns where an identifier starting at i ends (i if there is
// none).
func identEnd(s string, i int) int {
	j := i
	for j < len(s) {
		c := s[j]
		letter := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		digit := c >= '0' && c <= '9'
		if !letter && !(digit && j > i) {
			break
		}
		j++
	}
	return j
}

func isIdentifier(s string) bool { return s != "" && identEnd(s, 0) == len(s) }

// FormatParams writes params in the form ParseParams reads, quoting values
// that need it, so that ParseParams(FormatParams(p)) gives p back.
func FormatParams(params []*daguhav1.Param) string {
	parts := make([]string, 0, len(params))
	for _, p := range params {
		v := p.GetValue()
		quote := v == "" || strings.ContainsAny(v, " \t\n\r\v\f\"") || v[0] == '\'' || v[0] == '`'
		if p.GetName() == "" {
			// A bare A=b would read back as a named param.
			if j := identEnd(v, 0); j > 0 && j < len(v) && v[j] == '=' {
				quote = true
			}
		}
		if quote {
			v = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
		}
		if p.GetName() != "" {
			v = p.GetName() + "=" + v
		}
		parts = append(parts, v)
	}
	return strings.Join(parts, " ")
}

// MergeParams applies the params given for a run to a DAG's defaults: the
// given positional values replace the default positional ones in order
// (extra ones are appended); a given named value replaces the default of
// that name or, if there is none, is appended. defaults is not changed.
func MergeParams(defaults []*daguhav1.Param, given string) ([]*daguhav1.Param, error) {
	extra, err := ParseParams(given)
	if err != nil {
		return nil, err
	}
	merged := make([]*daguhav1.Param, len(defaults))
	var positional []int
	for i, p := range defaults {
		merged[i] = &daguhav1.Param{Name: p.GetName(), Value: p.GetValue()}
		if p.GetName() == "" {
			positional = append(positional, i)
		}
	}
	nextPositional := 0
	for _, p := range extra {
		if p.Name == "" {
			if nextPositional < len(positional) {
				merged[positional[nextPositional]].Value = p.Value
				nextPositional++
				continue
			}
			merged = append(merged, p)
			continue
		}
		replaced := false
		for _, m := range merged {
			if m.Name == p.Name {
				m.Value = p.Value
				replaced = true
			}
		}
		if !replaced {
			merged = append(merged, p)
		}
	}
	return merged, nil
}

// params reads a DAG's params: a params string, a list of "NAME=value"
// strings (a string without NAME= is a positional value), a list of
// {NAME: value} maps, or a map. A named param may be given once.
func (c *collector) params(n *yaml.Node, path string) []*daguhav1.Param {
	var out []*daguhav1.Param
	seen := map[string]int{}
	add := func(p *daguhav1.Param, at *yaml.Node, key string) {
		if p.Name != "" {
			if line, dup := seen[p.Name]; dup {
				c.add(at, key, "param %q is given twice (first on line %d)", p.Name, line)
				return
			}
			seen[p.Name] = at.Line
		}
		out = append(out, p)
	}
	named := func(m *yaml.Node, key string) {
		for _, e := range c.entries(m, key) {
			k := join(key, e.key)
			if !isIdentifier(e.key) {
				c.add(e.keyAt, k, "a param name is letters, digits and underscores, not starting with a digit")
				continue
			}
			if v, ok := c.text(e.value, k); ok {
				add(&daguhav1.Param{Name: e.key, Value: v}, e.keyAt, k)
			}
		}
	}
	r := resolve(n)
	switch {
	case isNull(r):
	case r.Kind == yaml.ScalarNode:
		parsed, err := ParseParams(r.Value)
		if err != nil {
			c.add(n, path, "%v", err)
			return nil
		}
		for _, p := range parsed {
			add(p, n, path)
		}
	case r.Kind == yaml.MappingNode && isExternalSchema(r):
		c.add(n, path, "params checked against a schema file are not supported (the cluster has no DAG directory to read it from): write the schema inline, as type: object with properties")
	case r.Kind == yaml.MappingNode && isParamSchema(r):
		c.paramSchema(r, path, add)
	case r.Kind == yaml.MappingNode:
		named(r, path)
	case r.Kind == yaml.SequenceNode:
		for i, item := range r.Content {
			key := index(path, i)
			ri := resolve(item)
			switch {
			case ri != nil && ri.Kind == yaml.MappingNode && isRichParam(ri):
				c.richParam(ri, key, add)
			case ri != nil && ri.Kind == yaml.MappingNode:
				named(ri, key)
			case ri != nil && ri.Kind == yaml.ScalarNode && !isNull(ri):
				name, value, ok := strings.Cut(ri.Value, "=")
				if !ok || !isIdentifier(name) {
					name, value = "", ri.Value
				}
				add(&daguhav1.Param{Name: name, Value: value}, item, key)
			default:
				c.add(item, key, "want NAME=value or {NAME: value}, got %s", describe(item))
			}
		}
	}
	return out
}

// childParams reads the params of a run/call step into Dagu's params
// string: a string is checked and kept as written; a map or a list is
// written out as NAME=value pairs.
func (c *collector) childParams(n *yaml.Node, path string) string {
	r := resolve(n)
	if r != nil && r.Kind == yaml.ScalarNode && !isNull(r) {
		if _, err := ParseParams(r.Value); err != nil {
			c.add(n, path, "%v", err)
			return ""
		}
		return strings.TrimSpace(r.Value)
	}
	return FormatParams(c.params(n, path))
}

// env reads an environment: a list of "NAME=value" strings, a list of
// {NAME: value} maps, or a map, in the order written.
func (c *collector) env(n *yaml.Node, path string) []*daguhav1.EnvVar {
	var out []*daguhav1.EnvVar
	named := func(m *yaml.Node, key string) {
		for _, e := range c.entries(m, key) {
			k := join(key, e.key)
			if !isIdentifier(e.key) {
				c.add(e.keyAt, k, "an environment variable name is letters, digits and underscores, not starting with a digit")
				continue
			}
			if v, ok := c.text(e.value, k); ok {
				out = append(out, &daguhav1.EnvVar{Name: e.key, Value: v})
			}
		}
	}
	r := resolve(n)
	switch {
	case isNull(r):
	case r.Kind == yaml.MappingNode:
		named(r, path)
	case r.Kind == yaml.SequenceNode:
		for i, item := range r.Content {
			key := index(path, i)
			ri := resolve(item)
			switch {
			case ri != nil && ri.Kind == yaml.MappingNode:
				named(ri, key)
			case ri != nil && ri.Kind == yaml.ScalarNode && !isNull(ri):
				name, value, ok := strings.Cut(ri.Value, "=")
				name = strings.TrimSpace(name)
				if !ok || !isIdentifier(name) {
					c.add(item, key, "want NAME=value with NAME letters, digits and underscores, got %q", ri.Value)
					continue
				}
				out = append(out, &daguhav1.EnvVar{Name: name, Value: value})
			default:
				c.add(item, key, "want NAME=value or {NAME: value}, got %s", describe(item))
			}
		}
	default:
		c.add(n, path, "want a list of NAME=value or a map, got %s", describe(n))
	}
	return out
}
