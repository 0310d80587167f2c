package dagfile

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/daguha/daguha/dispatch/valid"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's step forms and the keys that shape how a run's steps run: the
// one-line step, generated names, ids, shells, output files, continueOn
// and the DAG-level keys around them. doc.go says what each key means.

func init() {
	dagKeys.add("shell", "workingDir", "delaySec", "maxOutputSize", "maxCleanUpTimeSec", "dotenv",
		"logDir", "logOutput", "histRetentionDays", "labels", "skipIfSuccessful", "defaults", "maxActiveSteps")
	stepKeys.add("id", "shell", "shellPackages", "stdout", "stderr", "logOutput", "signalOnStop", "workingDir")
}

// add puts more keys in a table.
func (t keyTable) add(camel ...string) {
	for _, k := range camel {
		t[k] = k
		t[snakeCase(k)] = k
	}
}

var continueOnKeys = newKeyTable("failure", "skipped", "exitCode", "output", "markSuccess")

// defaultsKeys are the keys of Dagu's defaults: values every step takes
// unless it sets the key itself (env and preconditions add to the step's).
var defaultsKeys = newKeyTable("continueOn", "retryPolicy", "repeatPolicy", "timeoutSec", "signalOnStop",
	"env", "preconditions", "mailOnError")

// additiveDefaults are the defaults that come before the step's own
// entries instead of standing in for them.
var additiveDefaults = map[string]bool{"env": true, "preconditions": true}

// oneLineStep reads Dagu's one-line step (- echo hello): a step with that
// command and a generated name.
func (c *collector) oneLineStep(n *yaml.Node, path string) (*daguhav1.StepSpec, *stepInfo) {
	key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "command", Line: n.Line, Column: n.Column}
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column, Content: []*yaml.Node{key, n}}
	return c.step(m, path)
}

// withDefaults is a step's map with the DAG's defaults added: each default
// key the step does not set itself, and the entries of additive ones
// before the step's.
func (c *collector) withDefaults(step *yaml.Node) *yaml.Node {
	if c.defaults == nil {
		return step
	}
	stepEntries := map[string]*yaml.Node{}
	for _, e := range c.entriesQuiet(step) {
		if name, ok := stepKeys[e.key]; ok {
			stepEntries[name] = e.value
		}
	}
	merged := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: step.Line, Column: step.Column}
	var extra []*yaml.Node
	replaced := map[string]*yaml.Node{}
	for _, d := range c.defaults {
		own, set := stepEntries[d.name]
		switch {
		case !set:
			extra = append(extra, d.keyAt, d.value)
		case additiveDefaults[d.name] && !isNull(resolve(own)):
			replaced[d.name] = combineLists(d.value, own)
		}
	}
	for i := 0; i+1 < len(step.Content); i += 2 {
		k, v := step.Content[i], step.Content[i+1]
		if name, ok := stepKeys[k.Value]; ok && replaced[name] != nil {
			v = replaced[name]
		}
		merged.Content = append(merged.Content, k, v)
	}
	merged.Content = append(merged.Content, extra...)
	return merged
}

// entriesQuiet lists a map's entries without reporting its problems (the
// step's own reading reports them).
func (c *collector) entriesQuiet(n *yaml.Node) []entry {
	quiet := &collector{path: c.path}
	return quiet.entries(n, "")
}

// combineLists is a list of the items of a then b, each a list or one
// item; a map of several entries (env: {A: 1, B: 2}) becomes one item per
// entry, so order is kept.
func combineLists(a, b *yaml.Node) *yaml.Node {
	out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: b.Line, Column: b.Column}
	for _, n := range []*yaml.Node{a, b} {
		r := resolve(n)
		switch {
		case isNull(r):
		case r.Kind == yaml.SequenceNode:
			out.Content = append(out.Content, r.Content...)
		case r.Kind == yaml.MappingNode && len(r.Content) > 2:
			for i := 0; i+1 < len(r.Content); i += 2 {
				out.Content = append(out.Content, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map",
					Line: r.Content[i].Line, Column: r.Content[i].Column, Content: r.Content[i : i+2]})
			}
		default:
			out.Content = append(out.Content, n)
		}
	}
	return out
}

// defaultEntry is one key of a DAG's defaults.
type defaultEntry struct {
	name  string // camelCase
	keyAt *yaml.Node
	value *yaml.Node
}

// readDefaults reads a DAG's defaults for the steps read after it.
func (c *collector) readDefaults(e entry) {
	r := resolve(e.value)
	if isNull(r) {
		return
	}
	if r.Kind != yaml.MappingNode {
		c.add(e.value, e.key, "want a map of step keys such as retryPolicy and timeoutSec, got %s", describe(e.value))
		return
	}
	fields := c.fields(r, e.key, defaultsKeys)
	for _, d := range c.entriesQuiet(r) {
		name, ok := defaultsKeys[d.key]
		if !ok || fields[name].keyAt != d.keyAt {
			continue
		}
		c.defaults = append(c.defaults, defaultEntry{name: name, keyAt: d.keyAt, value: d.value})
	}
	c.defaultsFrom, c.defaultsTo = r.Line, lastLine(r)
	c.defaultsNodes = countNodes(r)
}

// maxDefaultNodes bounds what defaults add to a DAG's steps together
// (their nodes times the steps): a small file must not make a huge DAG.
const maxDefaultNodes = 1 << 18

// countNodes counts the nodes of a value as read, aliases followed (the
// document's aliases were checked not to loop), up to maxDefaultNodes+1.
func countNodes(n *yaml.Node) int {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return 1 + countNodes(n.Alias)
	}
	total := 1
	for _, child := range n.Content {
		if total += countNodes(child); total > maxDefaultNodes {
			return maxDefaultNodes + 1
		}
	}
	return total
}

// checkDefaultsSize refuses defaults that, copied into every one of steps
// steps, would make the DAG far larger than it is written.
func (c *collector) checkDefaultsSize(steps int) {
	if c.defaults == nil || c.defaultsNodes*steps <= maxDefaultNodes {
		return
	}
	c.addLine(c.defaultsFrom, "defaults", "defaults of %d YAML nodes for %d steps would make %d nodes, more than %d: give the steps these keys themselves",
		c.defaultsNodes, steps, c.defaultsNodes*steps, maxDefaultNodes)
	c.defaults = nil
}

// lastLine is the last line a node's text reaches.
func lastLine(n *yaml.Node) int {
	line := n.Line
	for _, child := range n.Content {
		line = max(line, lastLine(child))
	}
	if n.Kind == yaml.ScalarNode {
		line += strings.Count(strings.TrimRight(n.Value, "\n"), "\n")
	}
	return line
}

// dropRepeatedDefaultProblems keeps one report of each problem in the
// defaults' lines: every step that takes a bad default would report it.
func (c *collector) dropRepeatedDefaultProblems() {
	if c.defaults == nil {
		return
	}
	seen := map[string]bool{}
	kept := c.problems[:0]
	for _, p := range c.problems {
		if p.Line >= c.defaultsFrom && p.Line <= c.defaultsTo {
			// The key path names the step; the problem is the default's.
			last := p.Key
			if i := strings.LastIndex(last, "."); i >= 0 {
				last = last[i+1:]
			}
			id := fmt.Sprintf("%d\x00%s\x00%s", p.Line, last, p.Message)
			if seen[id] {
				continue
			}
			seen[id] = true
		}
		kept = append(kept, p)
	}
	c.problems = kept
}

// stepIDPattern is what Dagu 1.x takes as a step id. Current Dagu no
// longer allows '-'; daguha does, so that 1.x files load.
var stepIDPattern = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]*$`)

// maxStepIDBytes is Dagu's limit on a step id.
const maxStepIDBytes = 40

// reservedStepIDs cannot be ids: they name the parts of a step reference.
var reservedStepIDs = map[string]bool{"env": true, "params": true, "args": true, "stdout": true,
	"stderr": true, "output": true, "outputs": true}

// stepForms reads the step keys of this file: id, shell, shellPackages,
// stdout, stderr, logOutput, signalOnStop and workingDir.
func (c *collector) stepForms(step *daguhav1.StepSpec, info *stepInfo, fields map[string]entry, path string) {
	if e, ok := fields["id"]; ok {
		key := join(path, e.key)
		if v, ok := c.text(e.value, key); ok && v != "" {
			switch {
			case !stepIDPattern.MatchString(v):
				c.add(e.value, key, "a step id is letters, digits, '_' and '-', starting with a letter (as in Dagu), got %q", v)
			case len(v) > maxStepIDBytes:
				c.add(e.value, key, "a step id is at most %d bytes, got %d", maxStepIDBytes, len(v))
			case reservedStepIDs[strings.ToLower(v)]:
				c.add(e.value, key, "%q is a reserved word and cannot be a step id", v)
			default:
				step.Id, info.idAt = v, e.value
			}
		}
	}
	if e, ok := fields["workingDir"]; ok {
		key := join(path, e.key)
		if d, dup := fields["dir"]; dup {
			c.add(e.keyAt, key, "dir is already given (line %d): %s is another name for it", d.keyAt.Line, e.key)
		} else {
			step.Dir, _ = c.text(e.value, key)
		}
	}
	if e, ok := fields["shell"]; ok {
		step.Shell = c.shell(e, join(path, e.key))
	}
	if e, ok := fields["shellPackages"]; ok {
		key := join(path, e.key)
		packages, at := c.texts(e.value, key)
		shell := step.Shell
		if len(shell) == 0 {
			shell = c.dagShell
		}
		if len(packages) > 0 && (len(shell) == 0 || baseName(shell[0]) != "nix-shell") {
			c.add(e.keyAt, key, "shellPackages are packages nix-shell provides: give shell: nix-shell (here or at the top level)")
		}
		for i, p := range packages {
			if p == "" {
				c.add(at[i], key, "an empty package name")
				continue
			}
			step.ShellPackages = append(step.ShellPackages, p)
		}
	}
	for _, name := range []string{"stdout", "stderr"} {
		if e, ok := fields[name]; ok {
			v, _ := c.text(e.value, join(path, e.key))
			v = strings.TrimSpace(v)
			if name == "stdout" {
				step.Stdout = v
			} else {
				step.Stderr = v
			}
		}
	}
	if step.Stdout != "" && step.Stdout == step.Stderr {
		e := fields["stderr"]
		c.add(e.value, join(path, e.key), "stdout and stderr cannot be the same file %q (as in Dagu); leave out stderr: the step log keeps both", step.Stdout)
	}
	if e, ok := fields["logOutput"]; ok {
		c.logOutput(e, join(path, e.key))
	}
	if e, ok := fields["signalOnStop"]; ok {
		key := join(path, e.key)
		if v, ok := c.text(e.value, key); ok && v != "" {
			if name, known := SignalName(v); known {
				step.SignalOnStop = name
			} else {
				c.add(e.value, key, "unknown signal %q: want a name such as SIGINT, SIGTERM or SIGKILL", v)
			}
		}
	}
	if e, ok := fields["type"]; ok {
		info.stepType, _ = c.text(e.value, join(path, e.key))
	}
}

// logOutput checks Dagu's logOutput: separate or merged. daguha keeps one
// log per step with both streams in the order written, whichever is given.
func (c *collector) logOutput(e entry, key string) {
	if v, ok := c.text(e.value, key); ok && v != "" && v != "separate" && v != "merged" {
		c.add(e.value, key, "want separate or merged, got %q", v)
	}
}

// shell reads a shell: "bash -e" (split at white space, quotes kept
// together) or a list [bash, -e].
func (c *collector) shell(e entry, key string) []string {
	r := resolve(e.value)
	var argv []string
	switch {
	case isNull(r):
		return nil
	case r.Kind == yaml.SequenceNode:
		words, at := c.texts(e.value, key)
		for i, w := range words {
			if w == "" {
				c.add(at[i], key, "an empty word")
				continue
			}
			argv = append(argv, w)
		}
	default:
		v, ok := c.text(e.value, key)
		if !ok {
			return nil
		}
		words, err := splitWords(v)
		if err != nil {
			c.add(e.value, key, "%v", err)
			return nil
		}
		argv = words
	}
	if len(argv) == 0 {
		c.add(e.value, key, "must not be empty")
	}
	return argv
}

// splitWords splits a shell such as `bash -o "pipefail"` into words:
// white space separates them; '...' and "..." keep white space in one.
func splitWords(s string) ([]string, error) {
	var words []string
	var word strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '\'' || ch == '"':
			end := strings.IndexByte(s[i+1:], ch)
			if end < 0 {
				return nil, fmt.Errorf("the %c quote at offset %d is not closed", ch, i)
			}
			word.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case isSpace(ch):
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}

// baseName is the last element of a path.
func baseName(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// continueOn reads Dagu's continueOn: a map (failure, skipped, exitCode,
// output, markSuccess) or one of the words failed (or failure) and
// skipped.
func (c *collector) continueOn(step *daguhav1.StepSpec, e entry, key string) {
	r := resolve(e.value)
	if isNull(r) {
		return
	}
	on := &daguhav1.ContinueOn{}
	if r.Kind == yaml.ScalarNode {
		switch r.Value {
		case "failed", "failure":
			step.ContinueOnFailure = true
		case "skipped":
			on.Skipped = true
			step.ContinueOn = on
		default:
			c.add(e.value, key, "want failed, skipped or a map such as {failure: true}, got %q", r.Value)
		}
		return
	}
	if r.Kind != yaml.MappingNode {
		c.add(e.value, key, "want a map such as {failure: true}, got %s", describe(e.value))
		return
	}
	fields := c.fields(r, key, continueOnKeys)
	if f, ok := fields["failure"]; ok {
		step.ContinueOnFailure, _ = c.boolean(f.value, join(key, f.key))
	}
	if f, ok := fields["skipped"]; ok {
		on.Skipped, _ = c.boolean(f.value, join(key, f.key))
	}
	if f, ok := fields["markSuccess"]; ok {
		on.MarkSuccess, _ = c.boolean(f.value, join(key, f.key))
	}
	if f, ok := fields["exitCode"]; ok {
		on.ExitCodes = c.exitCodes(f.value, join(key, f.key))
	}
	if f, ok := fields["output"]; ok {
		k := join(key, f.key)
		patterns, at := c.texts(f.value, k)
		for i, p := range patterns {
			if rest, isRegexp := strings.CutPrefix(p, "re:"); isRegexp {
				if _, err := regexp.Compile(rest); err != nil {
					c.add(at[i], k, "bad regular expression: %v", err)
					continue
				}
			}
			on.Output = append(on.Output, p)
		}
	}
	if on.Skipped || on.MarkSuccess || len(on.ExitCodes) > 0 || len(on.Output) > 0 {
		step.ContinueOn = on
	}
}

// dagForms reads the DAG-level keys of this file. It runs before the
// steps are read: the DAG's shell and defaults apply to them.
func (c *collector) dagForms(dag *daguhav1.DagSpec, fields map[string]entry) {
	c.defaults, c.dagShell = nil, nil
	if e, ok := fields["shell"]; ok {
		dag.Shell = c.shell(e, e.key)
		c.dagShell = dag.Shell
	}
	if e, ok := fields["workingDir"]; ok {
		v, _ := c.text(e.value, e.key)
		dag.WorkingDir = strings.TrimSpace(v)
	}
	if e, ok := fields["delaySec"]; ok {
		dag.DelaySec, _ = c.integer(e.value, e.key, maxSeconds)
	}
	if e, ok := fields["maxOutputSize"]; ok {
		v, ok := c.integer(e.value, e.key, math64(valid.MaxOutputValueBytes))
		if !ok && resolve(e.value).ShortTag() == "!!int" {
			// Say why the limit is there.
			c.problems[len(c.problems)-1].Message += " (a step's output travels in the replicated state)"
		}
		dag.MaxOutputSize = v
	}
	if e, ok := fields["maxActiveSteps"]; ok {
		v, _ := c.integer(e.value, e.key, math64(1<<31-1))
		dag.MaxActiveSteps = uint32(v)
	}
	if e, ok := fields["maxCleanUpTimeSec"]; ok {
		dag.MaxCleanUpTimeSec, _ = c.integer(e.value, e.key, maxSeconds)
	}
	if e, ok := fields["dotenv"]; ok {
		files, at := c.texts(e.value, e.key)
		for i, f := range files {
			if strings.TrimSpace(f) == "" {
				c.add(at[i], e.key, "an empty file name")
				continue
			}
			dag.Dotenv = append(dag.Dotenv, f)
		}
	}
	if e, ok := fields["logDir"]; ok {
		// Accepted and not used: a step's log is kept where its worker
		// keeps step logs (its -step-log-dir).
		c.text(e.value, e.key)
	}
	if e, ok := fields["logOutput"]; ok {
		c.logOutput(e, e.key)
	}
	if e, ok := fields["histRetentionDays"]; ok {
		// Accepted and not used: the cluster keeps every DAG's runs for
		// the same time (its run retention).
		c.integer(e.value, e.key, math64(1<<31-1))
	}
	for _, name := range []string{"labels", "tags"} {
		if e, ok := fields[name]; ok {
			dag.Labels = append(dag.Labels, c.labels(e.value, e.key)...)
		}
	}
	if e, ok := fields["skipIfSuccessful"]; ok {
		dag.SkipIfSuccessful, _ = c.boolean(e.value, e.key)
	}
	if e, ok := fields["defaults"]; ok {
		c.readDefaults(e)
	}
}

func math64(n int) int64 { return int64(n) }

// labels reads Dagu's labels (or tags): "a, b" or "env=prod team=x", a map,
// or a list of strings and one-entry maps. Each is kept as "name" or
// "name=value", once.
func (c *collector) labels(n *yaml.Node, key string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(label string) {
		if label = strings.TrimSpace(label); label != "" && !seen[label] {
			seen[label] = true
			out = append(out, label)
		}
	}
	pairs := func(m *yaml.Node, k string) {
		for _, e := range c.entries(m, k) {
			if v, ok := c.text(e.value, join(k, e.key)); ok {
				add(e.key + "=" + v)
			}
		}
	}
	r := resolve(n)
	switch {
	case isNull(r):
	case r.Kind == yaml.ScalarNode:
		sep := ","
		if !strings.Contains(r.Value, ",") {
			sep = " "
		}
		for _, l := range strings.Split(r.Value, sep) {
			add(l)
		}
	case r.Kind == yaml.MappingNode:
		pairs(r, key)
	default:
		for i, item := range r.Content {
			k := index(key, i)
			if ri := resolve(item); ri != nil && ri.Kind == yaml.MappingNode {
				pairs(ri, k)
			} else if v, ok := c.text(item, k); ok {
				add(v)
			}
		}
	}
	return out
}

// nameSteps gives each step without a name the one Dagu gives it: its id,
// else a prefix for what it does and its place in the list ("cmd_1",
// "script_2", "dag_3"), the number counted up past the names of the steps
// before it. It then checks ids against names and takes ids in depends
// for the steps' names, as Dagu does.
func (c *collector) nameSteps(steps []*daguhav1.StepSpec, infos []*stepInfo) {
	names := map[string]bool{}
	for i, step := range steps {
		info := infos[i]
		if info.unnamed {
			info.nameAt, info.generated = info.at, true
			if step.Id != "" {
				step.Name = step.Id
			} else {
				prefix := stepPrefix(step, info)
				for n := info.index + 1; ; n++ {
					if name := prefix + "_" + strconv.Itoa(n); !names[name] {
						step.Name = name
						break
					}
				}
			}
		}
		if step.Name != "" {
			names[step.Name] = true
		}
	}
	byName := map[string]int{}
	for i, step := range steps {
		if _, dup := byName[step.Name]; !dup && step.Name != "" {
			byName[step.Name] = i
		}
	}
	ids := map[string]int{}
	for i, step := range steps {
		if step.Id == "" {
			continue
		}
		at := infos[i].idAt
		if first, dup := ids[step.Id]; dup {
			c.add(at, join(infos[i].path, "id"), "step id %q is already used by %s (line %d)", step.Id, infos[first].path, infos[first].idAt.Line)
			continue
		}
		ids[step.Id] = i
		if j, named := byName[step.Id]; named && j != i && steps[j].Id != step.Id {
			c.add(at, join(infos[i].path, "id"), "step id %q is the name of %s", step.Id, infos[j].path)
		}
	}
	for _, step := range steps {
		for k, dep := range step.Depends {
			if j, ok := ids[dep]; ok {
				step.Depends[k] = steps[j].Name
			}
		}
	}
}

// stepPrefix is the start of a generated step name, as in Dagu.
func stepPrefix(step *daguhav1.StepSpec, info *stepInfo) string {
	switch {
	case info.stepType != "":
		return info.stepType
	case step.ChildDag != "":
		return "dag"
	case step.Script != "" || strings.Contains(strings.TrimSpace(step.Command), "\n"):
		return "script"
	case step.Command != "" || len(step.Commands) > 0:
		return "cmd"
	case len(step.OutputEntries) > 0:
		return "noop"
	}
	return "step"
}

// signals are the signals a step may be stopped with, by name.
var signals = []string{"SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE",
	"SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM"}

// SignalName is the name of a signal as written in signalOnStop (SIGINT,
// INT, sigint or its number 2), and whether it is one a step may be
// stopped with: the signals 1 to 15 of Linux.
func SignalName(s string) (string, bool) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if n, err := strconv.Atoi(s); err == nil {
		if n >= 1 && n <= len(signals) {
			return signals[n-1], true
		}
		return "", false
	}
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	for _, name := range signals {
		if name == s {
			return name, true
		}
	}
	return "", false
}

// SignalNumber is the number of a signal SignalName returned.
func SignalNumber(name string) int {
	for i, n := range signals {
		if n == name {
			return i + 1
		}
	}
	return 0
}
