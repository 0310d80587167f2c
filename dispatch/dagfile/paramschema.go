package dagfile

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's typed params: a DAG's params written as a JSON schema (type:
// object, properties, required) or as a list of rich entries ({name: X,
// type: integer, default: 3}). Each named param gets its default and a
// ParamRule that CheckParams holds a run's params to.

// schemaKeys are the keys of a params schema daguha reads.
var schemaKeys = newKeyTable("type", "properties", "required", "title", "description", "additionalProperties", "$schema")

// propertyKeys are the keys of one property of a params schema.
var propertyKeys = newKeyTable("type", "default", "description", "title", "enum", "minimum", "maximum",
	"minLength", "maxLength", "pattern")

// richParamKeys are the keys of Dagu's rich param entries.
var richParamKeys = newKeyTable("name", "type", "default", "description", "required", "enum", "minimum", "maximum",
	"minLength", "maxLength", "pattern")

// isParamSchema tells whether a params map is Dagu's inline JSON schema:
// type: object with properties.
func isParamSchema(m *yaml.Node) bool {
	var typ, props bool
	for i := 0; i+1 < len(m.Content); i += 2 {
		switch m.Content[i].Value {
		case "type":
			v := resolve(m.Content[i+1])
			typ = v.Kind == yaml.ScalarNode && v.Value == "object"
		case "properties":
			props = true
		}
	}
	return typ && props
}

// isExternalSchema tells whether a params map is Dagu's schema-file form
// ({schema: file, values: {...}}), which daguha does not read.
func isExternalSchema(m *yaml.Node) bool {
	var schema *yaml.Node
	values := false
	for i := 0; i+1 < len(m.Content); i += 2 {
		switch m.Content[i].Value {
		case "schema":
			schema = resolve(m.Content[i+1])
		case "values":
			values = true
		}
	}
	if schema == nil {
		return false
	}
	if values || schema.Kind == yaml.MappingNode {
		return true
	}
	return schema.Kind == yaml.ScalarNode && schema.ShortTag() == "!!str" &&
		(strings.Contains(schema.Value, "://") || strings.ContainsAny(schema.Value, `./\`))
}

// paramSchema reads a params schema: its properties in the order written,
// each a param (with its default, if any) and a rule.
func (c *collector) paramSchema(m *yaml.Node, path string, add func(*daguhav1.Param, *yaml.Node, string)) {
	fields := c.fields(m, path, schemaKeys)
	required := map[string]*yaml.Node{}
	if e, ok := fields["required"]; ok {
		names, at := c.texts(e.value, join(path, e.key))
		for i, name := range names {
			required[name] = at[i]
		}
	}
	if e, ok := fields["additionalProperties"]; ok {
		// Params not in properties are taken either way.
		c.boolean(e.value, join(path, e.key))
	}
	e := fields["properties"]
	props := resolve(e.value)
	key := join(path, e.key)
	if props.Kind != yaml.MappingNode {
		c.add(e.value, key, "want a map of param name: schema, got %s", describe(e.value))
		return
	}
	seen := map[string]bool{}
	for _, p := range c.entries(props, key) {
		k := join(key, p.key)
		if !isIdentifier(p.key) {
			c.add(p.keyAt, k, "a param name is letters, digits and underscores, not starting with a digit")
			continue
		}
		seen[p.key] = true
		r := resolve(p.value)
		if isNull(r) {
			r = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: p.keyAt.Line}
		}
		if r.Kind != yaml.MappingNode {
			c.add(p.value, k, "want a schema such as {type: string, default: x}, got %s", describe(p.value))
			continue
		}
		rule, def := c.paramRule(p.key, c.fields(r, k, propertyKeys), k)
		_, rule.Required = required[p.key]
		c.paramRules = append(c.paramRules, rule)
		if def != nil {
			add(def, p.keyAt, k)
		}
	}
	for name, at := range required {
		if !seen[name] {
			c.add(at, join(path, "required"), "%q is not one of the properties", name)
		}
	}
}

// richParam reads one of Dagu's rich param entries.
func (c *collector) richParam(m *yaml.Node, path string, add func(*daguhav1.Param, *yaml.Node, string)) {
	fields := c.fields(m, path, richParamKeys)
	name, _ := c.text(fields["name"].value, join(path, "name"))
	if !isIdentifier(name) {
		c.add(fields["name"].value, join(path, "name"), "a param name is letters, digits and underscores, not starting with a digit")
		return
	}
	rule, def := c.paramRule(name, fields, path)
	if e, ok := fields["required"]; ok {
		rule.Required, _ = c.boolean(e.value, join(path, e.key))
	}
	c.paramRules = append(c.paramRules, rule)
	if def != nil {
		add(def, fields["name"].keyAt, path)
	}
}

// isRichParam tells whether a params list item is a rich entry: a map
// with a name and something more.
func isRichParam(m *yaml.Node) bool {
	if len(m.Content) < 4 {
		return false
	}
	for i := 0; i < len(m.Content); i += 2 {
		if m.Content[i].Value == "name" {
			return true
		}
	}
	return false
}

// paramRule reads the checks of one param, and its default.
func (c *collector) paramRule(name string, fields map[string]entry, path string) (*daguhav1.ParamRule, *daguhav1.Param) {
	rule := &daguhav1.ParamRule{Name: name, MinLength: -1, MaxLength: -1}
	text := func(field string) (string, *yaml.Node) {
		if e, ok := fields[field]; ok {
			v, _ := c.text(e.value, join(path, e.key))
			return v, e.value
		}
		return "", nil
	}
	typ, typAt := text("type")
	switch typ {
	case "", "string", "integer", "number", "boolean":
		rule.Type = typ
	default:
		c.add(typAt, join(path, "type"), "want string, integer, number or boolean (a param's value is text), got %q", typ)
	}
	rule.Description, _ = text("description")
	if rule.Description == "" {
		rule.Description, _ = text("title")
	}
	if e, ok := fields["enum"]; ok {
		values, at := c.texts(e.value, join(path, e.key))
		rule.Enum = values
		if len(values) == 0 {
			c.add(e.value, join(path, e.key), "must not be empty")
		}
		_ = at
	}
	number := func(field string) (float64, bool) {
		v, at := text(field)
		if at == nil {
			return 0, false
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(f) {
			c.add(at, join(path, field), "want a number, got %q", v)
			return 0, false
		}
		return f, true
	}
	rule.Minimum, rule.HasMinimum = number("minimum")
	rule.Maximum, rule.HasMaximum = number("maximum")
	for _, field := range []string{"minLength", "maxLength"} {
		if e, ok := fields[field]; ok {
			v, ok := c.integer(e.value, join(path, e.key), math.MaxInt32)
			if !ok {
				continue
			}
			if field == "minLength" {
				rule.MinLength = v
			} else {
				rule.MaxLength = v
			}
		}
	}
	if v, at := text("pattern"); at != nil {
		if _, err := regexp.Compile(v); err != nil {
			c.add(at, join(path, "pattern"), "bad regular expression: %v", err)
		} else {
			rule.Pattern = v
		}
	}
	var def *daguhav1.Param
	if v, at := text("default"); at != nil && !isNull(resolve(at)) {
		def = &daguhav1.Param{Name: name, Value: v}
		if err := checkParam(rule, v); err != nil {
			c.add(at, join(path, "default"), "the default does not pass its own checks: %v", err)
		}
	}
	return rule, def
}

// CheckParams holds a run's params (defaults merged with what was given)
// to a DAG's param rules, and reports every param that fails.
func CheckParams(rules []*daguhav1.ParamRule, params []*daguhav1.Param) error {
	values := map[string]string{}
	for _, p := range params {
		if p.GetName() != "" {
			values[p.GetName()] = p.GetValue()
		}
	}
	var errs []error
	for _, rule := range rules {
		v, given := values[rule.GetName()]
		if !given {
			if rule.GetRequired() {
				errs = append(errs, fmt.Errorf("param %s is required", rule.GetName()))
			}
			continue
		}
		if err := checkParam(rule, v); err != nil {
			errs = append(errs, fmt.Errorf("param %s: %w", rule.GetName(), err))
		}
	}
	return errors.Join(errs...)
}

// checkParam holds one value to its rule.
func checkParam(rule *daguhav1.ParamRule, v string) error {
	var number float64
	isNumber := false
	switch rule.GetType() {
	case "integer":
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("want an integer, got %q", v)
		}
		number, isNumber = float64(n), true
	case "number":
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(f) {
			return fmt.Errorf("want a number, got %q", v)
		}
		number, isNumber = f, true
	case "boolean":
		if _, err := strconv.ParseBool(strings.TrimSpace(v)); err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
	}
	if enum := rule.GetEnum(); len(enum) > 0 {
		found := false
		for _, e := range enum {
			found = found || e == v
		}
		if !found {
			return fmt.Errorf("want one of %s, got %q", strings.Join(enum, ", "), v)
		}
	}
	if !isNumber && (rule.GetHasMinimum() || rule.GetHasMaximum()) {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return fmt.Errorf("want a number, got %q", v)
		}
		number, isNumber = f, true
	}
	if rule.GetHasMinimum() && number < rule.GetMinimum() {
		return fmt.Errorf("must be at least %v, got %s", rule.GetMinimum(), v)
	}
	if rule.GetHasMaximum() && number > rule.GetMaximum() {
		return fmt.Errorf("must be at most %v, got %s", rule.GetMaximum(), v)
	}
	length := int64(utf8.RuneCountInString(v))
	if min := rule.GetMinLength(); min > 0 && length < min {
		return fmt.Errorf("must be at least %d characters, got %d", min, length)
	}
	if max := rule.GetMaxLength(); max >= 0 && length > max {
		return fmt.Errorf("must be at most %d characters, got %d", max, length)
	}
	if p := rule.GetPattern(); p != "" {
		re, err := regexp.Compile(p)
		if err != nil {
			return fmt.Errorf("bad pattern: %w", err)
		}
		if !re.MatchString(v) {
			return fmt.Errorf("must match %s, got %q", p, v)
		}
	}
	return nil
}

// ResolveParams is a run's params as its steps see them: the params given
// for it (Dagu's params string) merged over the DAG's defaults, held to
// the DAG's param rules.
func ResolveParams(dag *daguhav1.DagSpec, given string) ([]*daguhav1.Param, error) {
	params, err := MergeParams(dag.GetParams(), given)
	if err != nil {
		return nil, err
	}
	if err := CheckParams(dag.GetParamRules(), params); err != nil {
		return nil, err
	}
	return params, nil
}
