package dagfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	"github.com/daguha/daguha/dispatch/valid"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// File is one parsed DAG file: Dags[0] is the main DAG, the others its
// local DAGs (Dagu's `---` documents).
type File struct {
	Path   string
	Source []byte
	Dags   []*daguhav1.DagSpec

	// The run/call steps of every DAG, for CheckChildren.
	children []childRef
}

// childRef is one run/call step: which DAG of the file it is in, where,
// and the DAG it starts.
type childRef struct {
	dag  int
	key  string
	line int
	name string
}

// maxSeconds is the longest timeout or interval accepted: the longest a
// time.Duration can hold, so that nobody downstream overflows.
const maxSeconds = int64(math.MaxInt64 / int64(time.Second))

var dagKeys = newKeyTable("name", "description", "params", "env", "schedule", "workerSelector",
	"maxActiveRuns", "timeoutSec", "catchup", "catchupWindow", "steps", "command",
	"tags", "group", "type", "queue", "preconditions", "precondition", "handlerOn", "retryPolicy",
	"smtp", "mailOn", "errorMail", "infoMail")

var stepKeys = newKeyTable("name", "description", "command", "script", "dir", "env", "depends",
	"output", "retryPolicy", "timeoutSec", "continueOn", "run", "call", "params", "workerSelector",
	"tags", "group", "type", "parallel", "preconditions", "precondition", "repeatPolicy",
	"mailOnError")

// Parse reads a DAG file. When the file is not valid YAML, or is YAML but
// not a valid DAG file, the error is Problems listing everything wrong,
// each with the file, the line and the key.
func Parse(path string, data []byte) (*File, error) {
	f, c := parse(path, data)
	if err := c.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// Check is Parse followed by CheckChildren, reporting the problems of both
// together: a file with other problems still has its unknown child DAGs
// named, so a push shows everything wrong at once.
func Check(path string, data []byte, known func(name string) bool) (*File, error) {
	f, c := parse(path, data)
	if f != nil {
		var children Problems
		if errors.As(f.CheckChildren(known), &children) {
			c.problems = append(c.problems, children...)
		}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// parse reads what it can of a file: the DAGs that parsed, and every
// problem met on the way.
func parse(path string, data []byte) (*File, *collector) {
	c := &collector{path: path}
	// A file longer than a DAG may be as stored is refused unread.
	if err := valid.DagSize(len(data)); err != nil {
		c.addLine(1, "", "%v", err)
		return nil, c
	}
	if !utf8.Valid(data) {
		c.addLine(1, "", "the file is not UTF-8 text")
		return nil, c
	}
	roots := c.documents(data)
	if len(roots) == 0 && len(c.problems) == 0 {
		c.addLine(1, "", "empty file: want a DAG, a map with a name and steps")
	}
	f := &File{Path: path, Source: bytes.Clone(data)}
	nameLines := map[string]int{}
	for i, root := range roots {
		dag, nameAt := c.dag(root, i == 0, f)
		if dag == nil {
			continue
		}
		if dag.Name != "" {
			line := 1
			if nameAt != nil {
				line = nameAt.Line
			}
			if first, dup := nameLines[dag.Name]; dup {
				c.addLine(line, "name", "DAG name %q is already used in this file (line %d)", dag.Name, first)
			} else {
				nameLines[dag.Name] = line
			}
		}
		f.Dags = append(f.Dags, dag)
	}
	c.checkRunCycles(f)
	if len(c.problems) == 0 && len(f.Dags) > 0 {
		// What a run carries must fit in a message to a worker.
		if err := valid.DagSize(proto.Size(f.Stored())); err != nil {
			c.addLine(1, "", "%v, as stored with its text and local DAGs", err)
		}
	}
	return f, c
}

// documents decodes every YAML document of the file and returns the
// non-empty ones.
func (c *collector) documents(data []byte) (roots []*yaml.Node) {
	defer func() {
		// The YAML decoder is outside input's first reader: a bug in it
		// must make a problem, not a crashed server.
		if r := recover(); r != nil {
			c.addLine(1, "", "invalid YAML (%v)", r)
		}
	}()
	decoder := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := decoder.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return roots
		}
		if err != nil {
			c.syntax(err, data)
			return roots
		}
		if len(doc.Content) == 0 || isNull(resolve(doc.Content[0])) {
			continue // an empty document, as a trailing --- makes
		}
		if !c.checkAliases(doc.Content[0]) {
			continue
		}
		roots = append(roots, doc.Content[0])
	}
}

// checkAliases refuses a document whose aliases refer to a node they are
// inside, or make it much larger than it is written (a small file must not
// make the reader below walk a billion nodes).
func (c *collector) checkAliases(root *yaml.Node) bool {
	sizes := map[*yaml.Node]int{}
	open := map[*yaml.Node]bool{}
	var cyclic *yaml.Node
	written := 0
	var size func(n *yaml.Node, viaAlias bool) int
	size = func(n *yaml.Node, viaAlias bool) int {
		if n == nil || cyclic != nil {
			return 0
		}
		if n.Kind == yaml.AliasNode {
			if !viaAlias {
				written++
			}
			if open[n.Alias] {
				cyclic = n
				return 0
			}
			return 1 + size(n.Alias, true)
		}
		if s, done := sizes[n]; done {
			return s
		}
		if !viaAlias {
			written++
		}
		open[n] = true
		total := 1
		for _, child := range n.Content {
			total += size(child, viaAlias)
			if total > maxExpandedNodes {
				total = maxExpandedNodes + 1
			}
		}
		open[n] = false
		sizes[n] = total
		return total
	}
	expanded := size(root, false)
	if cyclic != nil {
		c.add(cyclic, "", "alias *%s refers to a node it is inside", cyclic.Value)
		return false
	}
	if expanded > 10*written+10000 {
		c.add(root, "", "aliases make this document far larger than it is written (%d nodes for %d written)", expanded, written)
		return false
	}
	return true
}

// maxExpandedNodes caps the count checkAliases makes, so it cannot
// overflow.
const maxExpandedNodes = 1 << 30

var (
	yamlLine      = regexp.MustCompile(`^line (\d+): `)
	unknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)
)

// yamlParserProblems are the messages of yaml.v3's parser (as opposed to
// its scanner): it reports their line counting from 0.
var yamlParserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// syntax reports a YAML syntax error at the line the decoder names. For
// its parser's errors that is the start of the block or flow collection
// being read when the error was found; with no line, it is line 1.
func (c *collector) syntax(err error, data []byte) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		msg = msg[len(m[0]):]
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			line = n
			if yamlParserProblems[msg] {
				line++
			}
		}
	} else if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		// The decoder names no line: find the alias.
		if at := bytes.Index(data, []byte("*"+m[1])); at >= 0 {
			line = 1 + bytes.Count(data[:at], []byte("\n"))
		}
	}
	// An error at the end of the input may be placed on the line after
	// the last.
	if lines := bytes.Count(bytes.TrimRight(data, " \t\r\n"), []byte("\n")) + 1; line > lines {
		line = lines
	}
	c.addLine(line, "", "invalid YAML: %s", msg)
}

// stepInfo remembers where a step's parts are written, for the checks
// that need all the steps.
type stepInfo struct {
	at          *yaml.Node
	path        string
	nameAt      *yaml.Node
	dependsKey  *yaml.Node
	dependsPath string
	dependsAt   []*yaml.Node // parallel to the step's Depends
	childKey    *yaml.Node
	childPath   string
	// index is the step's place in the list; unnamed: it has no name key
	// and gets one as Dagu gives it (nameSteps).
	index   int
	unnamed bool
	// generated: the name is nameSteps'.
	generated bool
	idAt      *yaml.Node
	stepType  string
}

// dag reads one document. It returns nil when the document is not a map.
func (c *collector) dag(root *yaml.Node, first bool, f *File) (*daguhav1.DagSpec, *yaml.Node) {
	if r := resolve(root); r == nil || r.Kind != yaml.MappingNode {
		c.add(root, "", "a DAG must be a map with keys such as name and steps, got %s", describe(root))
		return nil, nil
	}
	fields := c.fields(root, "", dagKeys)
	dag := &daguhav1.DagSpec{SourceFile: f.Path}

	var nameAt *yaml.Node
	if e, ok := fields["name"]; ok {
		if v, ok := c.text(e.value, e.key); ok {
			if err := valid.DagName(v); err != nil {
				c.add(e.value, e.key, "%v", err)
			} else {
				dag.Name, nameAt = v, e.value
			}
		}
	} else if first {
		base := filepath.Base(f.Path)
		lower := strings.ToLower(base)
		for _, ext := range []string{".yaml", ".yml"} {
			if strings.HasSuffix(lower, ext) {
				base = base[:len(base)-len(ext)]
				break
			}
		}
		if err := valid.DagName(base); err != nil {
			c.add(root, "name", "no name is given, and the file name cannot be one: %v", err)
		} else {
			dag.Name = base
		}
	} else {
		c.add(root, "name", "a DAG after the first in a file needs a name")
	}

	if e, ok := fields["description"]; ok {
		dag.Description, _ = c.text(e.value, e.key)
	}
	if e, ok := fields["params"]; ok {
		c.paramRules = nil
		dag.Params = c.params(e.value, e.key)
		dag.ParamRules, c.paramRules = c.paramRules, nil
	}
	if e, ok := fields["env"]; ok {
		dag.Env = c.env(e.value, e.key)
	}
	if e, ok := fields["schedule"]; ok {
		c.schedules(dag, e)
	}
	if e, ok := fields["workerSelector"]; ok {
		dag.WorkerSelector = c.selector(e.value, e.key)
	}
	if e, ok := fields["maxActiveRuns"]; ok {
		// Dagu's -1: never held back by the DAG's own limit (daguha's 0).
		if r := resolve(e.value); r == nil || r.Kind != yaml.ScalarNode || strings.TrimSpace(r.Value) != "-1" {
			v, _ := c.integer(e.value, e.key, math.MaxUint32)
			dag.MaxActiveRuns = uint32(v)
		}
	}
	if e, ok := fields["queue"]; ok {
		if v, ok := c.text(e.value, e.key); ok {
			if err := valid.QueueName(v); err != nil {
				c.add(e.value, e.key, "%v", err)
			} else {
				dag.Queue = v
			}
		}
	}
	if e, ok := fields["timeoutSec"]; ok {
		dag.TimeoutSec, _ = c.integer(e.value, e.key, maxSeconds)
	}
	if e, ok := fields["catchup"]; ok {
		if v, ok := c.text(e.value, e.key); ok {
			switch v {
			case "latest", "all", "none":
				dag.Catchup = v
			default:
				c.add(e.value, e.key, "want latest, all or none, got %q", v)
			}
		}
	}
	if e, ok := fields["catchupWindow"]; ok {
		dag.CatchupWindowSec = c.window(e)
	}
	// As in current Dagu, steps form a chain unless the DAG says graph;
	// but see below for a DAG that does not say and writes depends.
	chain := true
	typed := false
	if e, ok := fields["type"]; ok {
		typed = true
		if v, ok := c.text(e.value, e.key); ok {
			switch v {
			case "graph":
				chain = false
			case "", "chain":
			default:
				c.add(e.value, e.key, "want graph or chain, got %q", v)
			}
		}
	}
	// group only sorts DAGs in Dagu's UI.
	c.dagForms(dag, fields)
	c.dagContainer(dag, fields)
	dag.Preconditions = c.preconditions(fields, "")
	if e, ok := fields["retryPolicy"]; ok {
		dag.RetryPolicy = c.dagRetryPolicy(e)
	}
	var handlers []handlerInfo
	if e, ok := fields["handlerOn"]; ok {
		dag.HandlerOn, handlers = c.handlers(e)
	}
	c.dagMail(dag, fields)

	var infos []*stepInfo
	if e, ok := fields["steps"]; ok {
		dag.Steps, infos = c.steps(e)
	} else if e, ok := fields["command"]; ok {
		// A DAG written as just a command: one step, named after the DAG;
		// a list is several commands run in turn, as a step's.
		if commands := c.commands(e.value, e.key); len(commands) > 0 {
			name := dag.Name
			if name == "" {
				name = "main"
			}
			step := &daguhav1.StepSpec{Name: name}
			if len(commands) == 1 {
				step.Command = commands[0]
			} else {
				step.Commands = commands
			}
			dag.Steps = []*daguhav1.StepSpec{step}
			infos = []*stepInfo{{at: e.keyAt, path: "steps[0]", nameAt: e.keyAt}}
		}
	} else {
		c.add(root, "steps", "a DAG needs steps")
	}
	// With steps, a top-level command says nothing more (the seed's own
	// example writes both): it is accepted and not used.
	c.nameSteps(dag.Steps, infos)

	// A DAG that writes no type but gives steps depends is a graph: in
	// current Dagu a chain refuses depends, so such a file was written for
	// Dagu 1.x, whose default was graph (a chain around its depends could
	// even make a cycle).
	if !typed {
		for _, info := range infos {
			if info.dependsKey != nil {
				chain = false
				break
			}
		}
	}
	if chain {
		for i := 1; i < len(dag.Steps); i++ {
			if infos[i].dependsKey == nil && dag.Steps[i-1].Name != "" {
				dag.Steps[i].Depends = []string{dag.Steps[i-1].Name}
				infos[i].dependsAt = []*yaml.Node{infos[i].at}
				infos[i].dependsKey = infos[i].at
				infos[i].dependsPath = join(infos[i].path, "depends")
			}
		}
	}
	c.checkSteps(dag.Steps, infos)
	c.dropRepeatedDefaultProblems()
	c.checkHandlerNames(dag.Steps, infos, handlers)
	for i, info := range infos {
		if info.childKey != nil {
			f.children = append(f.children, childRef{dag: len(f.Dags), key: info.childPath, line: info.childKey.Line, name: dag.Steps[i].ChildDag})
		}
	}
	for _, h := range handlers {
		if h.info.childKey != nil {
			f.children = append(f.children, childRef{dag: len(f.Dags), key: h.info.childPath, line: h.info.childKey.Line, name: h.step.ChildDag})
		}
	}
	return dag, nameAt
}

// scheduleMapKeys are Dagu's schedule map: start, stop and restart slots.
var scheduleMapKeys = newKeyTable("start", "stop", "restart")

func (c *collector) schedules(dag *daguhav1.DagSpec, e entry) {
	if r := resolve(e.value); r != nil && r.Kind == yaml.MappingNode {
		fields := c.fields(e.value, e.key, scheduleMapKeys)
		for _, kind := range []struct {
			key  string
			into *[]string
		}{{"start", &dag.Schedule}, {"stop", &dag.StopSchedule}, {"restart", &dag.RestartSchedule}} {
			if f, ok := fields[kind.key]; ok {
				*kind.into = c.cronList(f.value, join(e.key, f.key))
			}
		}
		return
	}
	dag.Schedule = c.cronList(e.value, e.key)
}

// cronList reads one cron expression or a list of them, each checked and
// stored normalized.
func (c *collector) cronList(n *yaml.Node, path string) []string {
	var out []string
	specs, at := c.texts(n, path)
	list := resolve(n).Kind == yaml.SequenceNode
	for i, spec := range specs {
		key := path
		if list {
			key = index(path, i)
		}
		if _, err := ParseSchedule(spec); err != nil {
			c.add(at[i], key, "bad cron expression: %v", err)
			continue
		}
		out = append(out, normalizeSchedule(spec))
	}
	return out
}

// window reads catchupWindow: a Go duration such as "6h", kept in whole
// seconds.
func (c *collector) window(e entry) int64 {
	v, ok := c.text(e.value, e.key)
	if !ok || v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		c.add(e.value, e.key, "want a duration such as 6h or 90m, got %q", v)
		return 0
	}
	if d < 0 {
		c.add(e.value, e.key, "must not be negative, got %s", v)
		return 0
	}
	return int64(d / time.Second)
}

func (c *collector) steps(e entry) ([]*daguhav1.StepSpec, []*stepInfo) {
	list := resolve(e.value)
	if list == nil || list.Kind != yaml.SequenceNode {
		c.add(e.value, e.key, "want a list of steps, got %s", describe(e.value))
		return nil, nil
	}
	// Too many steps are refused before any is read: a pushed file of
	// 100,000 steps costs nothing more than its YAML.
	if err := valid.StepCount(len(list.Content)); err != nil {
		c.add(e.value, e.key, "%v", err)
		return nil, nil
	}
	c.checkDefaultsSize(len(list.Content))
	var steps []*daguhav1.StepSpec
	var infos []*stepInfo
	for i, item := range list.Content {
		if step, info := c.step(item, index(e.key, i)); step != nil {
			info.index = i
			steps = append(steps, step)
			infos = append(infos, info)
		}
	}
	return steps, infos
}

// step reads one step; nil when it is not a map.
func (c *collector) step(n *yaml.Node, path string) (*daguhav1.StepSpec, *stepInfo) {
	r := resolve(n)
	if r != nil && r.Kind == yaml.ScalarNode && !isNull(r) {
		return c.oneLineStep(n, path)
	}
	if r == nil || r.Kind != yaml.MappingNode {
		c.add(n, path, "a step must be a map with a command (or a one-line command), got %s", describe(n))
		return nil, nil
	}
	fields := c.fields(c.withDefaults(r), path, stepKeys)
	step := &daguhav1.StepSpec{}
	info := &stepInfo{at: n, path: path}

	if e, ok := fields["name"]; ok {
		key := join(path, e.key)
		if v, ok := c.text(e.value, key); ok {
			if err := valid.StepName(v); err != nil {
				c.add(e.value, key, "%v", err)
			} else {
				step.Name, info.nameAt = v, e.value
			}
		}
	} else {
		// Named after the steps are read, as Dagu names it (nameSteps).
		info.unnamed = true
	}
	if e, ok := fields["description"]; ok {
		step.Description, _ = c.text(e.value, join(path, e.key))
	}
	if e, ok := fields["dir"]; ok {
		step.Dir, _ = c.text(e.value, join(path, e.key))
	}
	if e, ok := fields["env"]; ok {
		step.Env = c.env(e.value, join(path, e.key))
	}
	if e, ok := fields["timeoutSec"]; ok {
		step.TimeoutSec, _ = c.integer(e.value, join(path, e.key), maxSeconds)
	}
	if e, ok := fields["output"]; ok {
		key := join(path, e.key)
		if r := resolve(e.value); r != nil && r.Kind == yaml.MappingNode {
			step.OutputEntries = c.outputEntries(r, key)
		} else if v, ok := c.text(e.value, key); ok {
			// Dagu takes $NAME for NAME.
			v = strings.TrimPrefix(strings.TrimSpace(v), "$")
			if v == "" {
				// No output, as in Dagu.
			} else if err := valid.OutputName(v); err != nil {
				c.add(e.value, key, "%v", err)
			} else {
				step.Output = v
			}
		}
	}
	if e, ok := fields["depends"]; ok {
		key := join(path, e.key)
		info.dependsKey, info.dependsPath = e.keyAt, key
		names, at := c.texts(e.value, key)
		seen := map[string]bool{}
		for i, name := range names {
			switch {
			case name == "":
				c.add(at[i], key, "an empty step name")
			case !seen[name]:
				seen[name] = true
				step.Depends = append(step.Depends, name)
				info.dependsAt = append(info.dependsAt, at[i])
			}
		}
	}
	if e, ok := fields["retryPolicy"]; ok {
		step.RetryPolicy = c.retryPolicy(e, join(path, e.key))
	}
	if e, ok := fields["repeatPolicy"]; ok {
		step.RepeatPolicy = c.repeatPolicy(e, join(path, e.key))
	}
	step.Preconditions = c.preconditions(fields, path)
	if e, ok := fields["continueOn"]; ok {
		c.continueOn(step, e, join(path, e.key))
	}
	c.stepExecutor(step, fields, path)

	c.stepMail(step, fields, path)
	c.action(step, info, fields, path)
	c.stepParallel(step, info, fields, path)
	c.stepForms(step, info, fields, path)

	child := step.ChildDag != ""
	if e, ok := fields["params"]; ok {
		key := join(path, e.key)
		if child {
			step.ChildParams = c.childParams(e.value, key)
		} else if info.childKey == nil {
			c.add(e.keyAt, key, "params are for run/call steps, to pass to the child DAG")
		}
	}
	if e, ok := fields["workerSelector"]; ok {
		key := join(path, e.key)
		selector := c.selector(e.value, key)
		if child {
			step.WorkerSelector = selector
		} else if info.childKey == nil {
			c.add(e.keyAt, key, "on a step, workerSelector routes the child run of a run/call step; to route this DAG's runs, put it at the top level")
		}
	}
	return step, info
}

// action reads what the step does: a command (or several), a script
// (run by the shell, or by the command as its interpreter), or a child DAG
// (run or call). A step with none of them is a step that only publishes
// its output map (Dagu's noop step).
func (c *collector) action(step *daguhav1.StepSpec, info *stepInfo, fields map[string]entry, path string) {
	var given []entry
	for _, name := range []string{"command", "script", "run", "call"} {
		// A null one is not given: "command: null" takes away a command
		// that a merge key (<<) or defaults brought in.
		if e, ok := fields[name]; ok && !isNull(resolve(e.value)) {
			given = append(given, e)
		}
	}
	if len(given) == 0 {
		if len(step.OutputEntries) == 0 && step.Executor == "" {
			c.add(info.at, path, "a step needs one of command, script, run or call")
		}
		return
	}
	// In the order written, so the later one is the one reported.
	sort.SliceStable(given, func(i, j int) bool { return given[i].keyAt.Line < given[j].keyAt.Line })
	child := -1
	for i, e := range given {
		if e.key == "run" || e.key == "call" {
			child = i
			break
		}
	}
	switch {
	case child >= 0 && len(given) > 1:
		c.add(given[1].keyAt, join(path, given[1].key), "a step takes one of command, script, run or call; %s is already given", given[0].key)
		return
	case child >= 0:
		e := given[0]
		key := join(path, e.key)
		info.childKey, info.childPath = e.keyAt, key
		if v, ok := c.text(e.value, key); ok {
			if err := valid.DagName(v); err != nil {
				c.add(e.value, key, "%v", err)
			} else {
				step.ChildDag = v
			}
		}
		return
	}
	// command, script, or both: the command is then the script's
	// interpreter (command: python3 with script: |).
	var commandAt, scriptAt *entry
	for i := range given {
		if given[i].key == "command" {
			commandAt = &given[i]
		} else {
			scriptAt = &given[i]
		}
	}
	if scriptAt != nil {
		key := join(path, scriptAt.key)
		if v, ok := c.text(scriptAt.value, key); ok {
			step.Script = v
			if strings.TrimSpace(v) == "" {
				c.add(scriptAt.value, key, "must not be empty")
			} else if err := valid.Script(v); err != nil {
				c.add(scriptAt.value, key, "%v", err)
			}
		}
	}
	if commandAt != nil {
		key := join(path, commandAt.key)
		commands := c.commands(commandAt.value, key)
		switch {
		case len(commands) == 1:
			step.Command = commands[0]
		case len(commands) > 1 && scriptAt != nil:
			c.add(commandAt.value, key, "with script, command is the script's interpreter: one command line, not a list")
		case len(commands) > 1:
			step.Commands = commands
		}
	}
}

// commands reads a step's command: a command line, or Dagu's list of
// command lines, run one after another. An item YAML reads as a one-entry
// map (- echo a: b) is the text it was written as ("echo a: b"), as in
// Dagu; empty items are dropped.
func (c *collector) commands(n *yaml.Node, key string) []string {
	r := resolve(n)
	var items []*yaml.Node
	list := r.Kind == yaml.SequenceNode
	if list {
		items = r.Content
	} else {
		items = []*yaml.Node{n}
	}
	var out []string
	bad := false
	for i, item := range items {
		itemKey := key
		if list {
			itemKey = index(key, i)
		}
		v, ok := c.commandText(item, itemKey)
		if !ok {
			bad = true
			continue
		}
		if strings.TrimSpace(v) == "" {
			if !list {
				c.add(item, itemKey, "must not be empty")
			}
			continue
		}
		if err := valid.Command(v); err != nil {
			c.add(item, itemKey, "%v", err)
			bad = true
			continue
		}
		out = append(out, v)
	}
	if list && len(out) == 0 && !bad {
		c.add(n, key, "must not be empty")
	}
	return out
}

// commandText reads one command line; a one-entry map of scalars is the
// "key: value" text YAML took it for.
func (c *collector) commandText(n *yaml.Node, key string) (string, bool) {
	r := resolve(n)
	if r != nil && r.Kind == yaml.MappingNode && len(r.Content) == 2 {
		k, v := resolve(r.Content[0]), resolve(r.Content[1])
		if k.Kind == yaml.ScalarNode && v.Kind == yaml.ScalarNode {
			return k.Value + ": " + v.Value, true
		}
	}
	if r != nil && r.Kind != yaml.ScalarNode {
		c.add(n, key, "want a command line, got %s (quote a command that holds \": \")", describe(n))
		return "", false
	}
	return c.text(n, key)
}

// selector reads a workerSelector: label names to the exact values a
// worker's labels must have.
func (c *collector) selector(n *yaml.Node, path string) map[string]string {
	r := resolve(n)
	if isNull(r) {
		return nil
	}
	if r.Kind != yaml.MappingNode {
		c.add(n, path, "want a map of label: value, got %s", describe(n))
		return nil
	}
	selector := map[string]string{}
	lines := map[string]int{}
	entries := c.entries(r, path)
	if err := valid.LabelCount(len(entries)); err != nil {
		c.add(n, path, "%v", err)
		return nil
	}
	for _, e := range entries {
		key := join(path, e.key)
		if err := valid.LabelKey(e.key); err != nil {
			c.add(e.keyAt, key, "%v", err)
			continue
		}
		if first, dup := lines[e.key]; dup {
			c.add(e.keyAt, key, "given twice (first on line %d)", first)
			continue
		}
		lines[e.key] = e.keyAt.Line
		v, ok := c.text(e.value, key)
		if !ok {
			continue
		}
		if err := valid.LabelValue(e.key, v); err != nil {
			c.add(e.value, key, "%v", err)
			continue
		}
		selector[e.key] = v
	}
	if len(selector) == 0 {
		return nil
	}
	return selector
}

// checkSteps checks what needs all the steps of a DAG: unique names,
// dependencies on steps that exist, and no dependency cycle.
func (c *collector) checkSteps(steps []*daguhav1.StepSpec, infos []*stepInfo) {
	byName := map[string]int{}
	for i, step := range steps {
		if step.Name == "" {
			continue
		}
		if first, dup := byName[step.Name]; dup {
			msg := fmt.Sprintf("step name %q is already used by %s (line %d)", step.Name, infos[first].path, infos[first].nameAt.Line)
			if infos[i].generated || infos[first].generated {
				msg += "; a step without a name is named as Dagu names it: give one of them a name"
			}
			c.add(infos[i].nameAt, join(infos[i].path, "name"), "%s", msg)
			continue
		}
		byName[step.Name] = i
	}
	edges := make([][]int, len(steps))
	for i, step := range steps {
		for k, dep := range step.Depends {
			j, ok := byName[dep]
			if !ok {
				c.add(infos[i].dependsAt[k], infos[i].dependsPath, "unknown step %q", dep)
				continue
			}
			edges[i] = append(edges[i], j)
		}
	}
	for _, cycle := range cycles(edges) {
		names := make([]string, 0, len(cycle)+1)
		for _, i := range cycle {
			names = append(names, steps[i].Name)
		}
		names = append(names, steps[cycle[0]].Name)
		first := infos[cycle[0]]
		c.add(first.dependsKey, first.dependsPath, "dependency cycle: %s", strings.Join(names, " -> "))
	}
}

// checkRunCycles reports DAGs of the file that would start one another
// (or themselves) through run/call without end.
func (c *collector) checkRunCycles(f *File) {
	byName := map[string]int{}
	for i, dag := range f.Dags {
		if _, dup := byName[dag.Name]; !dup && dag.Name != "" {
			byName[dag.Name] = i
		}
	}
	edges := make([][]int, len(f.Dags))
	// via[i][j] is the first run/call step of DAG i that starts DAG j.
	via := make([]map[int]childRef, len(f.Dags))
	for _, ref := range f.children {
		j, ok := byName[ref.name]
		if !ok {
			continue
		}
		if via[ref.dag] == nil {
			via[ref.dag] = map[int]childRef{}
		}
		if _, seen := via[ref.dag][j]; !seen {
			via[ref.dag][j] = ref
			edges[ref.dag] = append(edges[ref.dag], j)
		}
	}
	for _, cycle := range cycles(edges) {
		names := make([]string, 0, len(cycle)+1)
		for _, i := range cycle {
			names = append(names, f.Dags[i].Name)
		}
		names = append(names, f.Dags[cycle[0]].Name)
		next := cycle[0]
		if len(cycle) > 1 {
			next = cycle[1]
		}
		ref := via[cycle[0]][next]
		c.addLine(ref.line, ref.key, "run cycle: %s; each run would start the next without end", strings.Join(names, " -> "))
	}
}

// cycles finds the cycles of a directed graph: for each strongly connected
// component that has one, the shortest cycle through its lowest node,
// starting there. They come in the order of those nodes.
func cycles(edges [][]int) [][]int {
	n := len(edges)
	component := make([]int, n)
	for i := range component {
		component[i] = -1
	}
	// Tarjan's algorithm, iterative so a long chain of steps cannot
	// exhaust the stack.
	indexOf := make([]int, n)
	low := make([]int, n)
	onStack := make([]bool, n)
	for i := range indexOf {
		indexOf[i] = -1
	}
	var stack []int
	next, components := 0, 0
	type frame struct{ node, edge int }
	for root := 0; root < n; root++ {
		if indexOf[root] >= 0 {
			continue
		}
		calls := []frame{{root, 0}}
		indexOf[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(calls) > 0 {
			top := &calls[len(calls)-1]
			v := top.node
			if top.edge < len(edges[v]) {
				w := edges[v][top.edge]
				top.edge++
				if indexOf[w] < 0 {
					indexOf[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					calls = append(calls, frame{w, 0})
				} else if onStack[w] {
					low[v] = min(low[v], indexOf[w])
				}
				continue
			}
			calls = calls[:len(calls)-1]
			if len(calls) > 0 {
				parent := calls[len(calls)-1].node
				low[parent] = min(low[parent], low[v])
			}
			if low[v] == indexOf[v] {
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					component[w] = components
					if w == v {
						break
					}
				}
				components++
			}
		}
	}

	size := make([]int, components)
	for _, comp := range component {
		size[comp]++
	}
	done := make([]bool, components)
	var found [][]int
	for start := 0; start < n; start++ {
		comp := component[start]
		if done[comp] {
			continue
		}
		done[comp] = true
		selfLoop := false
		for _, w := range edges[start] {
			selfLoop = selfLoop || w == start
		}
		if selfLoop {
			found = append(found, []int{start})
			continue
		}
		if size[comp] < 2 {
			continue
		}
		// Breadth first from start within the component, back to start.
		previous := map[int]int{start: -1}
		queue := []int{start}
		var last int = -1
		for len(queue) > 0 && last < 0 {
			v := queue[0]
			queue = queue[1:]
			for _, w := range edges[v] {
				if w == start {
					last = v
					break
				}
				if _, seen := previous[w]; !seen && component[w] == comp {
					previous[w] = v
					queue = append(queue, w)
				}
			}
		}
		if last < 0 {
			continue // cannot happen in a component of two or more
		}
		var path []int
		for v := last; v >= 0; v = previous[v] {
			path = append(path, v)
		}
		for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
			path[i], path[j] = path[j], path[i]
		}
		found = append(found, path)
	}
	return found
}

// CheckChildren reports run/call steps that start a DAG that is neither a
// document of this file nor known (stored). Each problem has the line of
// the run or call key.
func (f *File) CheckChildren(known func(name string) bool) error {
	local := map[string]bool{}
	for _, dag := range f.Dags {
		local[dag.GetName()] = true
	}
	c := &collector{path: f.Path}
	for _, ref := range f.children {
		if local[ref.name] || (known != nil && known(ref.name)) {
			continue
		}
		c.addLine(ref.line, ref.key, "unknown DAG %q: it is not in this file and not stored", ref.name)
	}
	return c.err()
}

// Stored is the record the file is kept as: the first DAG, the others as
// its local DAGs, the text and its SHA-256. It shares the DagSpecs with f.
func (f *File) Stored() *daguhav1.StoredDag {
	sum := sha256.Sum256(f.Source)
	stored := &daguhav1.StoredDag{
		Source:      string(f.Source),
		ContentHash: hex.EncodeToString(sum[:]),
	}
	if len(f.Dags) > 0 {
		stored.Spec = f.Dags[0]
		stored.LocalDags = append([]*daguhav1.DagSpec(nil), f.Dags[1:]...)
	}
	return stored
}
