package dagfile

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// The keys that decide whether and how often a step runs, and what runs
// when a run ends: Dagu's preconditions, repeatPolicy, retryPolicy and
// handlerOn.

var conditionKeys = newKeyTable("condition", "expected", "command", "negate")

var retryKeys = newKeyTable("limit", "intervalSec", "exitCode", "backoff", "maxIntervalSec")

var repeatKeys = newKeyTable("repeat", "intervalSec", "limit", "condition", "expected", "exitCode",
	"backoff", "maxIntervalSec")

// handlerKeys are handlerOn's keys; cancel and abort (Dagu 1.x's and
// current Dagu's name) are the same handler.
var handlerKeys = newKeyTable("success", "failure", "cancel", "abort", "exit", "init", "wait")

// HandlerStepNames are the step names Dagu gives the handlers, by their
// handlerOn key.
var HandlerStepNames = map[string]string{
	"success": "onSuccess", "failure": "onFailure", "cancel": "onCancel", "abort": "onAbort",
	"exit": "onExit", "init": "onInit",
}

// maxExitCode bounds the exit codes a policy may list (a process's exit
// status is 0-255; -1 stands for a process killed by a signal).
const maxExitCode = 255

// preconditions reads a DAG's or a step's preconditions: both the
// preconditions and the precondition key, in that order.
func (c *collector) preconditions(fields map[string]entry, path string) []*daguhav1.Condition {
	var out []*daguhav1.Condition
	for _, name := range []string{"preconditions", "precondition"} {
		if e, ok := fields[name]; ok {
			out = append(out, c.conditions(e.value, join(path, e.key))...)
		}
	}
	return out
}

// conditions reads a string (a command), a map {condition, expected,
// negate} or a list of them.
func (c *collector) conditions(n *yaml.Node, path string) []*daguhav1.Condition {
	r := resolve(n)
	switch {
	case isNull(r):
		return nil
	case r.Kind == yaml.SequenceNode:
		var out []*daguhav1.Condition
		for i, item := range r.Content {
			if ir := resolve(item); ir != nil && ir.Kind == yaml.SequenceNode {
				c.add(item, index(path, i), "want a command or a map such as {condition: ..., expected: ...}, got a list")
				continue
			}
			out = append(out, c.conditions(item, index(path, i))...)
		}
		return out
	case r.Kind == yaml.ScalarNode:
		if strings.TrimSpace(r.Value) == "" {
			c.add(n, path, "an empty condition")
			return nil
		}
		if !c.conditionText(n, path, r.Value) {
			return nil
		}
		return []*daguhav1.Condition{{Condition: r.Value}}
	case r.Kind == yaml.MappingNode:
		fields := c.fields(r, path, conditionKeys)
		cond := &daguhav1.Condition{}
		ok := true
		condition, hasCondition := fields["condition"]
		if command, hasCommand := fields["command"]; hasCommand {
			if hasCondition {
				c.add(command.keyAt, join(path, command.key), "condition is already given; command is another name for it")
				ok = false
			} else {
				condition, hasCondition = command, true
			}
		}
		if !hasCondition {
			c.add(n, join(path, "condition"), "a condition needs condition (a command, or a text with expected)")
			ok = false
		} else if v, good := c.text(condition.value, join(path, condition.key)); good {
			if strings.TrimSpace(v) == "" {
				c.add(condition.value, join(path, condition.key), "an empty condition")
				ok = false
			} else if c.conditionText(condition.value, join(path, condition.key), v) {
				cond.Condition = v
			} else {
				ok = false
			}
		} else {
			ok = false
		}
		if e, has := fields["expected"]; has {
			key := join(path, e.key)
			if v, good := c.text(e.value, key); good && c.expected(e.value, key, v) {
				cond.Expected = v
			} else {
				ok = false
			}
		}
		if e, has := fields["negate"]; has {
			v, good := c.boolean(e.value, join(path, e.key))
			cond.Negate, ok = v, ok && good
		}
		if !ok {
			return nil
		}
		return []*daguhav1.Condition{cond}
	default:
		c.add(n, path, "want a command or a map such as {condition: ..., expected: ...}, got %s", describe(n))
		return nil
	}
}

// conditionText checks the text of a condition: a command or a text the
// shell expands, so as long as a command may be.
func (c *collector) conditionText(n *yaml.Node, path, v string) bool {
	if len(v) > maxConditionBytes {
		c.add(n, path, "must be at most %d bytes, got %d", maxConditionBytes, len(v))
		return false
	}
	return true
}

// maxConditionBytes bounds a condition's text (and an expected value).
const maxConditionBytes = 64 << 10

// expected checks an expected value: "re:" must be followed by a regular
// expression Go reads.
func (c *collector) expected(n *yaml.Node, path, v string) bool {
	if len(v) > maxConditionBytes {
		c.add(n, path, "must be at most %d bytes, got %d", maxConditionBytes, len(v))
		return false
	}
	if pattern, ok := strings.CutPrefix(v, "re:"); ok {
		if _, err := regexp.Compile(pattern); err != nil {
			c.add(n, path, "bad regular expression after re:: %v", err)
			return false
		}
	}
	return true
}

// exitCodes reads an exit code or a list of them.
func (c *collector) exitCodes(n *yaml.Node, path string) []int32 {
	r := resolve(n)
	if isNull(r) {
		return nil
	}
	items := []*yaml.Node{n}
	list := r.Kind == yaml.SequenceNode
	if list {
		items = r.Content
	}
	var out []int32
	for i, item := range items {
		key := path
		if list {
			key = index(path, i)
		}
		ir := resolve(item)
		var v int64
		bad := ir == nil || ir.Kind != yaml.ScalarNode
		if !bad {
			var err error
			v, err = strconv.ParseInt(strings.TrimSpace(ir.Value), 10, 32)
			bad = err != nil || (ir.ShortTag() != "!!int" && ir.ShortTag() != "!!str")
		}
		if bad {
			c.add(item, key, "want an exit code (a whole number) or a list of them, got %s", describe(item))
			continue
		}
		if v < -1 || v > maxExitCode {
			c.add(item, key, "an exit code is -1 to %d, got %d", maxExitCode, v)
			continue
		}
		out = append(out, int32(v))
	}
	return out
}

// backoff reads a backoff: true (a factor of 2), false or 0 (none), or a
// factor greater than 1.
func (c *collector) backoff(n *yaml.Node, path string) float64 {
	r := resolve(n)
	if isNull(r) {
		return 0
	}
	if r.Kind == yaml.ScalarNode && r.ShortTag() == "!!bool" {
		var on bool
		if r.Decode(&on) == nil {
			if on {
				return 2
			}
			return 0
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(r.Value), 64)
	if r.Kind != yaml.ScalarNode || err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		c.add(n, path, "want true, false or a factor greater than 1, got %s", describe(n))
		return 0
	}
	if v != 0 && (v <= 1 || v > maxBackoff) {
		c.add(n, path, "a backoff factor must be greater than 1 and at most %d (or 0 for none), got %v", maxBackoff, v)
		return 0
	}
	return v
}

// maxBackoff bounds a backoff factor: the waits are capped anyway, and a
// huge factor only overflows.
const maxBackoff = 1000

func (c *collector) retryPolicy(e entry, key string) *daguhav1.RetryPolicy {
	r := resolve(e.value)
	if isNull(r) {
		return nil
	}
	if r.Kind != yaml.MappingNode {
		c.add(e.value, key, "want a map such as {limit: 3, intervalSec: 10}, got %s", describe(e.value))
		return nil
	}
	policy := &daguhav1.RetryPolicy{}
	fields := c.fields(r, key, retryKeys)
	if l, ok := fields["limit"]; ok {
		v, _ := c.integer(l.value, join(key, l.key), math.MaxUint32)
		policy.Limit = uint32(v)
	}
	if i, ok := fields["intervalSec"]; ok {
		policy.IntervalSec, _ = c.integer(i.value, join(key, i.key), maxSeconds)
	}
	if x, ok := fields["exitCode"]; ok {
		policy.ExitCodes = c.exitCodes(x.value, join(key, x.key))
	}
	if b, ok := fields["backoff"]; ok {
		policy.Backoff = c.backoff(b.value, join(key, b.key))
	}
	if m, ok := fields["maxIntervalSec"]; ok {
		policy.MaxIntervalSec, _ = c.integer(m.value, join(key, m.key), maxSeconds)
	}
	return policy
}

// dagRetryPolicy reads a DAG's retryPolicy: as a step's, without
// exitCode (a run has no exit code).
func (c *collector) dagRetryPolicy(e entry) *daguhav1.RetryPolicy {
	policy := c.retryPolicy(e, e.key)
	if r := resolve(e.value); policy != nil && r.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(r.Content); i += 2 {
			if k := r.Content[i].Value; retryKeys[k] == "exitCode" {
				c.add(r.Content[i], join(e.key, k), "exitCode is for a step's retryPolicy: a run is retried whenever it fails")
				policy.ExitCodes = nil
			}
		}
	}
	return policy
}

// repeatPolicy reads a step's repeatPolicy. The mode is repeat's when it
// is while or until; else, as Dagu 1.x reads it, a condition with
// expected repeats until it matches, a condition alone or exit codes
// repeat while they hold, and repeat: true alone repeats while the step
// succeeds. nil when nothing asks for a repeat.
func (c *collector) repeatPolicy(e entry, key string) *daguhav1.RepeatPolicy {
	r := resolve(e.value)
	if isNull(r) {
		return nil
	}
	if r.Kind != yaml.MappingNode {
		c.add(e.value, key, "want a map such as {repeat: while, condition: ..., intervalSec: 10}, got %s", describe(e.value))
		return nil
	}
	fields := c.fields(r, key, repeatKeys)
	policy := &daguhav1.RepeatPolicy{}
	mode, explicit, on := "", false, false
	if m, ok := fields["repeat"]; ok {
		mk := join(key, m.key)
		mr := resolve(m.value)
		switch {
		case isNull(mr):
		case mr.Kind == yaml.ScalarNode && mr.ShortTag() == "!!bool":
			on, _ = c.boolean(m.value, mk)
		case mr.Kind == yaml.ScalarNode && (mr.Value == "while" || mr.Value == "until"):
			mode, explicit = mr.Value, true
		default:
			c.add(m.value, mk, "want true, false, while or until, got %s", describe(m.value))
		}
	}
	if cond, ok := fields["condition"]; ok {
		ck := join(key, cond.key)
		if v, good := c.text(cond.value, ck); good && v != "" && c.conditionText(cond.value, ck, v) {
			policy.Condition = &daguhav1.Condition{Condition: v}
		}
	}
	if x, ok := fields["expected"]; ok {
		xk := join(key, x.key)
		if v, good := c.text(x.value, xk); good && c.expected(x.value, xk, v) && v != "" {
			if policy.Condition == nil {
				if _, has := fields["condition"]; !has {
					c.add(x.keyAt, xk, "expected needs a condition to compare with")
				}
			} else {
				policy.Condition.Expected = v
			}
		}
	}
	if x, ok := fields["exitCode"]; ok {
		policy.ExitCodes = c.exitCodes(x.value, join(key, x.key))
	}
	if i, ok := fields["intervalSec"]; ok {
		policy.IntervalSec, _ = c.integer(i.value, join(key, i.key), maxSeconds)
	}
	if l, ok := fields["limit"]; ok {
		v, _ := c.integer(l.value, join(key, l.key), math.MaxUint32)
		policy.Limit = uint32(v)
	}
	if b, ok := fields["backoff"]; ok {
		policy.Backoff = c.backoff(b.value, join(key, b.key))
	}
	if m, ok := fields["maxIntervalSec"]; ok {
		policy.MaxIntervalSec, _ = c.integer(m.value, join(key, m.key), maxSeconds)
	}
	switch {
	case explicit:
		if policy.Condition == nil && len(policy.ExitCodes) == 0 {
			c.add(e.keyAt, key, "repeat: %s needs a condition or an exitCode to test", mode)
			return nil
		}
	case policy.Condition != nil && policy.Condition.Expected != "":
		mode = "until"
	case policy.Condition != nil || len(policy.ExitCodes) > 0 || on:
		mode = "while"
	default:
		return nil
	}
	policy.Mode = mode
	return policy
}

// handlers reads handlerOn: each handler is a step (without depends),
// named as Dagu names it (onSuccess, onFailure, onCancel or onAbort,
// onExit, onInit) whatever name it is given.
func (c *collector) handlers(e entry) (*daguhav1.HandlerOn, []handlerInfo) {
	r := resolve(e.value)
	if isNull(r) {
		return nil, nil
	}
	if r.Kind != yaml.MappingNode {
		c.add(e.value, e.key, "want a map of success, failure, cancel, exit or init to a step, got %s", describe(e.value))
		return nil, nil
	}
	fields := c.handlerFields(r, e.key)
	if w, ok := fields["wait"]; ok {
		c.add(w.keyAt, join(e.key, w.key), "the wait handler is not supported: daguha has no approval steps")
	}
	if a, ok := fields["abort"]; ok {
		if cancel, dup := fields["cancel"]; dup {
			c.add(a.keyAt, join(e.key, a.key), "cancel is already given (line %d): abort is another name for it", cancel.keyAt.Line)
			delete(fields, "abort")
		}
	}
	on := &daguhav1.HandlerOn{}
	var read []handlerInfo
	for _, kind := range []string{"success", "failure", "cancel", "abort", "exit", "init"} {
		h, ok := fields[kind]
		if !ok || isNull(resolve(h.value)) {
			continue
		}
		step, info := c.handler(h, join(e.key, h.key), HandlerStepNames[kind])
		if step == nil {
			continue
		}
		read = append(read, handlerInfo{step: step, info: info, keyAt: h.keyAt})
		switch kind {
		case "success":
			on.Success = step
		case "failure":
			on.Failure = step
		case "cancel", "abort":
			on.Cancel = step
		case "exit":
			on.Exit = step
		case "init":
			on.Init = step
		}
	}
	if len(read) == 0 {
		return nil, nil
	}
	return on, read
}

// handlerFields reads handlerOn's keys as fields does. Dagu 1.x also
// reads them capitalised (Exit), as its own test files write them.
func (c *collector) handlerFields(n *yaml.Node, path string) map[string]entry {
	out := map[string]entry{}
	for _, e := range c.entries(n, path) {
		name, ok := handlerKeys[e.key]
		if !ok && e.key != "" {
			name, ok = handlerKeys[strings.ToLower(e.key[:1])+e.key[1:]]
		}
		if !ok {
			msg := fmt.Sprintf("unknown key %q", e.key)
			if s := suggest(e.key, handlerKeys); s != "" {
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

// handlerInfo is a handler as read, for the checks that need the steps.
type handlerInfo struct {
	step  *daguhav1.StepSpec
	info  *stepInfo
	keyAt *yaml.Node
}

// handler reads one handler's step, named name.
func (c *collector) handler(h entry, path, name string) (*daguhav1.StepSpec, *stepInfo) {
	r := resolve(h.value)
	if r == nil || r.Kind != yaml.MappingNode {
		c.add(h.value, path, "a handler is a step: a map with a command, a script or run, got %s", describe(h.value))
		return nil, nil
	}
	// The step reader wants a name: the handler's own, in place of any
	// written (Dagu names handlers itself).
	named := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: h.keyAt.Line, Column: h.keyAt.Column}
	named.Content = append(named.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "name", Line: h.keyAt.Line, Column: h.keyAt.Column},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name, Line: h.keyAt.Line, Column: h.keyAt.Column})
	for i := 0; i+1 < len(r.Content); i += 2 {
		if r.Content[i].Value == "name" {
			continue
		}
		if r.Content[i].Value == "depends" {
			c.add(r.Content[i], join(path, "depends"), "a handler runs when the run ends: it has no depends")
			continue
		}
		named.Content = append(named.Content, r.Content[i], r.Content[i+1])
	}
	return c.step(named, path)
}

// checkHandlerNames reports steps named like one of the DAG's handlers:
// their states would be one.
func (c *collector) checkHandlerNames(steps []*daguhav1.StepSpec, infos []*stepInfo, handlers []handlerInfo) {
	for i, step := range steps {
		for _, h := range handlers {
			if h.step.Name == step.Name && infos[i].nameAt != nil {
				c.add(infos[i].nameAt, join(infos[i].path, "name"), "step name %q is the name of the handler on line %d", step.Name, h.keyAt.Line)
			}
		}
	}
}

// HandlerSteps are the handler steps of a DAG, in the order they may run:
// init, then success, failure and cancel, then exit.
func HandlerSteps(dag *daguhav1.DagSpec) []*daguhav1.StepSpec {
	on := dag.GetHandlerOn()
	var out []*daguhav1.StepSpec
	for _, s := range []*daguhav1.StepSpec{on.GetInit(), on.GetSuccess(), on.GetFailure(), on.GetCancel(), on.GetExit()} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// FindStep is the step of dag named name: one of its steps, or a handler.
func FindStep(dag *daguhav1.DagSpec, name string) *daguhav1.StepSpec {
	for _, s := range dag.GetSteps() {
		if s.GetName() == name {
			return s
		}
	}
	for _, s := range HandlerSteps(dag) {
		if s.GetName() == name {
			return s
		}
	}
	return nil
}
