package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/daguha/daguha/dispatch/dagfile"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// The engine's part of Dagu's step forms: continueOn beyond failure,
// .env files, and the values of a step's output map.

// continueOn decides, once step i has ended as st, whether its dependants
// run although it failed or was skipped, as Dagu's continueOn says: on a
// failure, failure: true, an exit code in exitCode, or a line of its
// stdout holding a text of output (re: a regular expression); on a skip,
// skipped: true. markSuccess then records the failure as a success.
func (x *execution) continueOn(i int, st *daguhav1.StepState) {
	spec := x.steps[i]
	on := spec.GetContinueOn()
	if st.GetStatus() != daguhav1.StepStatus_STEP_STATUS_FAILED || x.cancelled() {
		return
	}
	why := ""
	switch {
	case spec.GetContinueOnFailure():
		why = "continueOn.failure"
	case containsCode(on.GetExitCodes(), st.GetExitCode()):
		why = fmt.Sprintf("continueOn.exitCode %d", st.GetExitCode())
	default:
		x.mu.Lock()
		stdout := x.stdouts[i]
		x.mu.Unlock()
		if pattern, ok := matchLines(stdout, on.GetOutput()); ok {
			why = fmt.Sprintf("continueOn.output %q", pattern)
		}
	}
	if why == "" {
		return
	}
	x.mu.Lock()
	x.continues[i] = true
	x.mu.Unlock()
	if on.GetMarkSuccess() {
		st.Status = daguhav1.StepStatus_STEP_STATUS_SUCCEEDED
		st.Error = fmt.Sprintf("marked succeeded by %s and continueOn.markSuccess; it failed: %s", why, st.GetError())
	}
}

func containsCode(codes []int32, code int32) bool {
	for _, c := range codes {
		if c == code {
			return true
		}
	}
	return false
}

// matchLines finds the first pattern a line of text holds (a "re:"
// pattern: matches), as Dagu matches a step's stdout line by line. An
// empty pattern matches empty output only.
func matchLines(text string, patterns []string) (string, bool) {
	if len(patterns) == 0 {
		return "", false
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	for _, p := range patterns {
		if rest, isRegexp := strings.CutPrefix(p, "re:"); isRegexp {
			re, err := regexp.Compile(rest)
			if err != nil {
				continue
			}
			for _, line := range lines {
				if re.MatchString(line) {
					return p, true
				}
			}
			continue
		}
		if p == "" {
			if text == "" {
				return p, true
			}
			continue
		}
		for _, line := range lines {
			if strings.Contains(line, p) {
				return p, true
			}
		}
	}
	return "", false
}

func (x *execution) setStdout(i int, stdout string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.stdouts[i] = stdout
}

// readDotenv reads the DAG's .env files when it names some: .env first,
// then those, in order, as current Dagu does; relative paths are taken
// from the DAG's working directory (else the worker's), a missing file is
// skipped. A later file's value wins.
func (x *execution) readDotenv() ([]envVar, error) {
	files := x.run.GetDag().GetDotenv()
	if len(files) == 0 {
		return nil, nil
	}
	lookup := resolver{x: x, vars: x.base, osEnv: true}
	base := ""
	if wd := x.run.GetDag().GetWorkingDir(); wd != "" {
		base = resolvePath(expandVars(wd, lookup), "")
	}
	seen := map[string]bool{}
	var vars []envVar
	for _, name := range append([]string{".env"}, files...) {
		path := resolvePath(expandVars(name, lookup), base)
		if seen[path] {
			continue
		}
		seen[path] = true
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("dotenv %s: %w", path, err)
		}
		scope := lookup
		scope.vars = append(append([]envVar(nil), x.base...), vars...)
		parsed, err := parseDotenv(string(data), scope)
		if err != nil {
			return nil, fmt.Errorf("dotenv %s: %w", path, err)
		}
		vars = append(vars, parsed...)
	}
	return vars, nil
}

// parseDotenv reads a .env file: NAME=value lines (export before the
// name is allowed), # comments, values in '...' (as written), in "..."
// (\n, \t, \" and \\ escapes; may span lines; $NAME expanded) or bare
// (up to a " #" comment, trimmed; $NAME expanded).
func parseDotenv(text string, scope resolver) ([]envVar, error) {
	var out []envVar
	// known resolves the file's names so far, then scope's.
	known := func() resolver {
		r := scope
		r.vars = append(append([]envVar(nil), scope.vars...), out...)
		return r
	}
	line := 1
	for len(text) > 0 {
		var current string
		current, text, _ = strings.Cut(text, "\n")
		at := line
		line++
		current = strings.TrimSpace(current)
		if current == "" || current[0] == '#' {
			continue
		}
		current = strings.TrimPrefix(current, "export ")
		name, value, ok := strings.Cut(current, "=")
		name = strings.TrimSpace(name)
		if !ok || !isEnvName(name) {
			return nil, fmt.Errorf("line %d: want NAME=value", at)
		}
		value = strings.TrimLeft(value, " \t")
		switch {
		case strings.HasPrefix(value, "'"):
			end := strings.IndexByte(value[1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("line %d: the ' quote is not closed", at)
			}
			value = value[1 : 1+end]
		case strings.HasPrefix(value, `"`):
			rest := value[1:] + "\n" + text
			var b strings.Builder
			closed := false
			i := 0
			for ; i < len(rest); i++ {
				c := rest[i]
				if c == '\\' && i+1 < len(rest) {
					i++
					switch rest[i] {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					default:
						b.WriteByte(rest[i])
					}
					continue
				}
				if c == '"' {
					closed = true
					break
				}
				b.WriteByte(c)
			}
			if !closed {
				return nil, fmt.Errorf("line %d: the \" quote is not closed", at)
			}
			// What follows the closing quote on its line is dropped.
			consumed := rest[:i]
			if n := strings.Count(consumed, "\n"); n > 0 {
				line += n
				_, text, _ = strings.Cut(rest[i:], "\n")
			}
			value = expandVars(b.String(), known())
		default:
			if j := strings.Index(value, " #"); j >= 0 {
				value = value[:j]
			}
			value = expandVars(strings.TrimSpace(value), known())
		}
		out = append(out, envVar{name, value})
	}
	return out, nil
}

func isEnvName(s string) bool { return validName(s) }

// publishOutputs works out the values of step i's output map once it
// succeeded: literals (their strings with variables expanded) and values
// read from its stdout, its stderr or a file, decoded and selected. A
// value that cannot be read, decoded or selected fails the step, as in
// Dagu.
func (x *execution) publishOutputs(i int, lookup resolver, dir string, sources map[string]*capBuffer) error {
	values := map[string]any{}
	for _, entry := range x.steps[i].GetOutputEntries() {
		v, err := outputValue(entry, lookup, dir, sources)
		if err != nil {
			return fmt.Errorf("output %s: %w", entry.GetName(), err)
		}
		values[entry.GetName()] = v
	}
	x.mu.Lock()
	x.published[i] = values
	x.mu.Unlock()
	if x.e.published != nil {
		x.e.published(x.steps[i].GetName(), values)
	}
	return nil
}

func outputValue(entry *daguhav1.StepOutputEntry, lookup resolver, dir string, sources map[string]*capBuffer) (any, error) {
	if entry.GetFrom() == "" {
		var v any
		if err := json.Unmarshal([]byte(entry.GetValueJson()), &v); err != nil {
			return nil, err
		}
		return expandStrings(v, lookup), nil
	}
	var text string
	switch from := entry.GetFrom(); from {
	case "file":
		path := resolvePath(expandVars(entry.GetPath(), lookup), dir)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		text = string(data)
	default:
		buf := sources[from]
		if buf == nil {
			return nil, fmt.Errorf("%s was not kept", from)
		}
		if buf.overflow {
			return nil, fmt.Errorf("the step printed more than %d bytes on %s", buf.max, from)
		}
		text = string(buf.buf)
	}
	var v any
	switch entry.GetDecode() {
	case "json":
		if err := json.Unmarshal([]byte(text), &v); err != nil {
			return nil, fmt.Errorf("decoding JSON: %w", err)
		}
	case "yaml":
		if err := yaml.Unmarshal([]byte(text), &v); err != nil {
			return nil, fmt.Errorf("decoding YAML: %w", err)
		}
		// Through JSON, so maps have string keys as JSON's do.
		data, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("decoding YAML: %w", err)
		}
		v = nil
		_ = json.Unmarshal(data, &v)
	default:
		return strings.TrimRight(text, "\r\n"), nil
	}
	if entry.GetSelect() == "" {
		return v, nil
	}
	path, err := dagfile.ParseSelect(entry.GetSelect())
	if err != nil {
		return nil, err
	}
	selected, err := dagfile.Select(v, path)
	if err != nil {
		return nil, fmt.Errorf("select %s: %w", entry.GetSelect(), err)
	}
	return selected, nil
}

// expandStrings expands variables in the strings of a decoded value.
func expandStrings(v any, lookup resolver) any {
	switch x := v.(type) {
	case string:
		return expandVars(x, lookup)
	case []any:
		for i := range x {
			x[i] = expandStrings(x[i], lookup)
		}
	case map[string]any:
		for k := range x {
			x[k] = expandStrings(x[k], lookup)
		}
	}
	return v
}

// stepOutputJSON is the output map step i published, as a JSON object
// ("" when it published none): what a reference to the step's output
// (Dagu's ${id.output.NAME}) reads.
func (x *execution) stepOutputJSON(i int) string {
	x.mu.Lock()
	values := x.published[i]
	x.mu.Unlock()
	if values == nil {
		return ""
	}
	data, err := json.Marshal(values)
	if err != nil {
		return ""
	}
	return string(data)
}
