package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// Variable references, as Dagu writes them:
//
//	$NAME, ${NAME}            a variable of the step's scope
//	$1, ${10}                 a positional param
//	${NAME.a.b[0]}, $NAME.a   a JSON path into a variable's value
//	${id.stdout}, ${id.exitCode}...  a property of the step with that id
//
// A shell reads a step's command and script, and the step's variables
// are in its environment, so the shell expands $NAME itself and a value
// stays data. A reference with a path is no shell syntax: shellText
// evaluates it and hands its value to the shell as one more variable,
// so the text still only names variables. Where no shell reads a text
// (env values, dir, a child's params), expandVars puts the values in.

// resolver answers the references of one scope: its variables (the last
// of a name wins), then the worker's environment and the positional
// params where asked.
type resolver struct {
	x          *execution
	vars       []envVar
	osEnv      bool
	positional bool
}

// variable resolves $NAME or $1.
func (r resolver) variable(name string) (string, bool) {
	if isPositional(name) {
		if n, err := strconv.Atoi(name); err == nil && r.positional && n >= 1 && n <= len(r.x.positional) {
			return r.x.positional[n-1], true
		}
		return "", false
	}
	if !validName(name) {
		return "", false
	}
	for i := len(r.vars) - 1; i >= 0; i-- {
		if r.vars[i].name == name {
			return r.vars[i].value, true
		}
	}
	if r.osEnv {
		return os.LookupEnv(name)
	}
	return "", false
}

// reference resolves a reference with a path, as Dagu does: the file or
// exit code of the step with that id (${id.stdout}, ${id.stderr},
// ${id.exitCode}), even when a variable has the id's name (a step whose
// output is named as its id: Dagu's step_id_test); else a JSON path into
// the variable of that name when its value is JSON the path fits; else
// another property of the step (${id.output...}).
func (r resolver) reference(name string, path []pathStep) (string, bool) {
	if len(path) == 1 && !path[0].isIndex && path[0].key != "output" {
		if value, ok := r.x.stepProperty(name, path); ok {
			return value, true
		}
	}
	if value, ok := r.variable(name); ok && validName(name) {
		if v, ok := jsonPath(value, path); ok {
			return v, true
		}
	}
	return r.x.stepProperty(name, path)
}

// expandVars replaces $NAME, ${NAME}, $1, ${10} and references with a
// path in s where r knows them, and leaves every other $ as it is.
func expandVars(s string, r resolver) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			i++
			continue
		}
		if ref, ok := parseReference(s, i); ok {
			if value, ok := r.reference(ref.name, ref.path); ok {
				b.WriteString(value)
				i = ref.end
				continue
			}
		}
		name, end := "", i+1
		switch c := s[i+1]; {
		case c == '{':
			if close := strings.IndexByte(s[i+2:], '}'); close >= 0 {
				name, end = s[i+2:i+2+close], i+3+close
			}
		case c >= '0' && c <= '9':
			name, end = s[i+1:i+2], i+2
		case isNameStart(c):
			j := i + 2
			for j < len(s) && (isNameStart(s[j]) || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			name, end = s[i+1:j], j
		}
		if value, ok := r.variable(name); ok {
			b.WriteString(value)
			i = end
			continue
		}
		b.WriteByte('$')
		i++
	}
	return b.String()
}

// refPrefix names the variables that carry the values of references with
// a path to the shell.
const refPrefix = "DAGUHA_REF_"

// shellText prepares a command or script for the shell: each reference
// with a path that r resolves becomes ${DAGUHA_REF_n}, a new variable
// that holds its value, returned to go in the environment. The text
// never receives a value, so a value holding quotes or `;` stays data.
// Every other reference is left to the shell. A $ escaped with a
// backslash, and $$, are the shell's and left as they are.
func shellText(text string, r resolver) (string, []envVar) {
	if !strings.Contains(text, "$") {
		return text, nil
	}
	var b strings.Builder
	var extra []envVar
	names := map[string]string{} // reference as written -> its variable
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\\' && i+1 < len(text):
			b.WriteString(text[i : i+2])
			i += 2
			continue
		case c != '$':
			b.WriteByte(c)
			i++
			continue
		case i+1 < len(text) && text[i+1] == '$':
			b.WriteString("$$")
			i += 2
			continue
		}
		ref, ok := parseReference(text, i)
		if !ok {
			b.WriteByte(c)
			i++
			continue
		}
		written := text[i:ref.end]
		name, seen := names[written]
		if !seen {
			value, ok := r.reference(ref.name, ref.path)
			if !ok {
				// Left to the shell, which refuses it as Dagu's would
				// (bad substitution).
				b.WriteString(written)
				i = ref.end
				continue
			}
			name = freeName(len(extra)+1, r, extra)
			names[written] = name
			extra = append(extra, envVar{name, value})
		}
		b.WriteString("${" + name + "}")
		i = ref.end
	}
	return b.String(), extra
}

// freeName is DAGUHA_REF_n for the first n from from on that names no
// variable of the scope, the worker's environment or extra.
func freeName(from int, r resolver, extra []envVar) string {
	for n := from; ; n++ {
		name := refPrefix + strconv.Itoa(n)
		taken := false
		if _, ok := r.variable(name); ok {
			taken = true
		} else if _, ok := os.LookupEnv(name); ok {
			taken = true
		}
		for _, v := range extra {
			taken = taken || v.name == name
		}
		if !taken {
			return name
		}
	}
}

// reference is one reference with a path in a text: text[start:end] is
// ${name.path} or $name.path.
type reference struct {
	end  int
	name string
	path []pathStep
}

// pathStep is one step of a JSON path: .key, ["key"] or [index].
type pathStep struct {
	key     string
	index   int
	isIndex bool
}

// parseReference reads a reference with a path at s[i] (a '$'), as Dagu
// finds them: ${NAME.path}, where the path runs to the closing brace, or
// $NAME.path, where it runs to the next white space. NAME is letters,
// digits, '_' and '-' (a step id may hold '-'); the path is one or more
// of .key, ."key", [n], .[n] and ["key"], starting with a dot, and must be
// all of what runs to the brace or the space.
func parseReference(s string, i int) (reference, bool) {
	braced := i+1 < len(s) && s[i+1] == '{'
	start := i + 1
	if braced {
		start++
	}
	j := start
	for j < len(s) && (isNameStart(s[j]) || s[j] >= '0' && s[j] <= '9' || s[j] == '-') {
		j++
	}
	if j == start || j >= len(s) || s[j] != '.' {
		return reference{}, false
	}
	name := s[start:j]
	var pathEnd, end int
	if braced {
		pathEnd = closingBrace(s, j)
		if pathEnd < 0 {
			return reference{}, false
		}
		end = pathEnd + 1
	} else {
		pathEnd = j
		for pathEnd < len(s) && !isSpace(s[pathEnd]) {
			pathEnd++
		}
		end = pathEnd
	}
	path, ok := parsePath(s[j:pathEnd])
	if !ok {
		return reference{}, false
	}
	return reference{end: end, name: name, path: path}, true
}

// closingBrace is the index of the } that closes a path starting at
// s[j], skipping quoted keys; -1 if there is none.
func closingBrace(s string, j int) int {
	for j < len(s) {
		switch s[j] {
		case '}':
			return j
		case '"':
			end := stringEnd(s, j)
			if end < 0 {
				return -1
			}
			j = end
		default:
			j++
		}
	}
	return -1
}

// stringEnd is the index after the JSON string literal starting at s[j],
// or -1 when it does not close.
func stringEnd(s string, j int) int {
	for k := j + 1; k < len(s); k++ {
		switch s[k] {
		case '\\':
			k++
		case '"':
			return k + 1
		}
	}
	return -1
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// parsePath reads a whole path: .key, ."key", .[n], [n], .["key"],
// ["key"], the first with its dot.
func parsePath(p string) ([]pathStep, bool) {
	var steps []pathStep
	for i := 0; i < len(p); {
		dot := p[i] == '.'
		if dot {
			i++
		} else if len(steps) == 0 || p[i] != '[' {
			return nil, false
		}
		switch {
		case i >= len(p):
			return nil, false
		case dot && isNameStart(p[i]):
			j := i + 1
			for j < len(p) && (isNameStart(p[j]) || p[j] >= '0' && p[j] <= '9') {
				j++
			}
			steps = append(steps, pathStep{key: p[i:j]})
			i = j
		case dot && p[i] == '"':
			key, next, ok := quotedKey(p, i)
			if !ok {
				return nil, false
			}
			steps = append(steps, pathStep{key: key})
			i = next
		case p[i] == '[':
			close := i + 1
			if close < len(p) && p[close] == '"' {
				key, next, ok := quotedKey(p, close)
				if !ok || next >= len(p) || p[next] != ']' {
					return nil, false
				}
				steps = append(steps, pathStep{key: key})
				i = next + 1
				continue
			}
			for close < len(p) && p[close] != ']' {
				close++
			}
			if close >= len(p) {
				return nil, false
			}
			digits := p[i+1 : close]
			n, err := strconv.Atoi(digits)
			if err != nil || digits == "" || digits[0] == '+' {
				return nil, false
			}
			steps = append(steps, pathStep{index: n, isIndex: true})
			i = close + 1
		default:
			return nil, false
		}
	}
	return steps, len(steps) > 0
}

// quotedKey reads the JSON string literal at p[i].
func quotedKey(p string, i int) (string, int, bool) {
	end := stringEnd(p, i)
	if end < 0 {
		return "", 0, false
	}
	var key string
	if json.Unmarshal([]byte(p[i:end]), &key) != nil {
		return "", 0, false
	}
	return key, end, true
}

// jsonPath reads value as JSON and follows path into it, as jq does: a
// key missing from an object, an index past an array's end, or anything
// of null is null; a key of a non-object or an index of a non-array does
// not fit (false). The result is written as Dagu writes it: a string as
// it is, null as <nil>, a whole number without a fraction, other numbers
// in Go's shortest form, objects and arrays as compact JSON.
func jsonPath(value string, path []pathStep) (string, bool) {
	var v any
	if json.Unmarshal([]byte(value), &v) != nil {
		return "", false
	}
	for _, step := range path {
		switch current := v.(type) {
		case nil:
		case map[string]any:
			if step.isIndex {
				return "", false
			}
			v = current[step.key]
		case []any:
			if !step.isIndex {
				return "", false
			}
			n := step.index
			if n < 0 {
				n += len(current)
			}
			if n < 0 || n >= len(current) {
				v = nil
			} else {
				v = current[n]
			}
		default:
			return "", false
		}
	}
	switch v := v.(type) {
	case nil:
		return "<nil>", true
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<63 {
			return strconv.FormatInt(int64(v), 10), true
		}
		return strconv.FormatFloat(v, 'g', -1, 64), true
	default:
		data, err := json.Marshal(v)
		if err != nil {
			return "", false
		}
		return string(data), true
	}
}

// stepProperty resolves ${id.stdout} and ${id.stderr} (the files holding
// the step's stdout and stderr, once it started), ${id.exitCode} (or
// ${id.exit_code}: its last exit code, 0 before it ended) and
// ${id.output} (its output variable's value, with a JSON path after it
// as for variables) for the step with that id.
func (x *execution) stepProperty(id string, path []pathStep) (string, bool) {
	i, ok := x.byID[id]
	if !ok || len(path) == 0 || path[0].isIndex {
		return "", false
	}
	x.mu.Lock()
	started, exitCode, output := x.started[i], x.exitCodes[i], x.outputs[i]
	x.mu.Unlock()
	property, rest := path[0].key, path[1:]
	switch {
	case property == "output" && output != nil:
		if len(rest) == 0 {
			return output.value, true
		}
		return jsonPath(output.value, rest)
	case len(rest) > 0:
		return "", false
	case property == "stdout" && started:
		return x.streamPath(i, "stdout"), true
	case property == "stderr" && started:
		return x.streamPath(i, "stderr"), true
	case property == "exitCode" || property == "exit_code":
		return strconv.Itoa(int(exitCode)), true
	}
	return "", false
}

func isNameStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func validName(s string) bool {
	if s == "" || !isNameStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isNameStart(s[i]) && (s[i] < '0' || s[i] > '9') {
			return false
		}
	}
	return true
}

func isPositional(s string) bool {
	if s == "" || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// evalValue evaluates a value the DAG's author wrote (an env value, a
// default param, a child's params) as Dagu does: each `command` in
// backquotes runs with sh -c, the scope's variables in its environment,
// and its output, trimmed of white space, takes its place; the text
// around the commands has its references expanded (expandVars). A
// backquote after a backslash, an empty pair and an unclosed one are
// kept as written. The commands are found in the text as written, before
// any value is put in, so a variable's value never runs as a command.
// With the no-op executor nothing runs and the commands stay as written.
func (x *execution) evalValue(ctx context.Context, value string, r resolver) (string, error) {
	if !strings.Contains(value, "`") || x.e.Noop {
		return expandVars(value, r), nil
	}
	var b, text strings.Builder
	for i := 0; i < len(value); {
		c := value[i]
		switch {
		case c == '\\' && i+1 < len(value) && value[i+1] == '`':
			text.WriteString("\\`")
			i += 2
			continue
		case c != '`':
			text.WriteByte(c)
			i++
			continue
		}
		end := strings.IndexByte(value[i+1:], '`')
		if end <= 0 {
			// `` or an unclosed backquote: kept.
			n := len(value) - i
			if end == 0 {
				n = 2
			}
			text.WriteString(value[i : i+n])
			i += n
			continue
		}
		command := value[i+1 : i+1+end]
		out, err := x.substitute(ctx, command, r.vars)
		if err != nil {
			return "", err
		}
		b.WriteString(expandVars(text.String(), r))
		text.Reset()
		b.WriteString(out)
		i += end + 2
	}
	b.WriteString(expandVars(text.String(), r))
	return b.String(), nil
}

// substitute runs one backquoted command and returns its stdout without
// surrounding white space. It runs as a step does, in a process group of
// its own stopped with ctx, and may print at most what an output
// variable may hold.
func (x *execution) substitute(ctx context.Context, command string, vars []envVar) (string, error) {
	env := os.Environ()
	for _, v := range vars {
		env = append(env, v.name+"="+v.value)
	}
	stdout := &capBuffer{max: maxOutputValueBytes}
	res := runProcess(ctx, process{argv: []string{"sh", "-c", command}, env: env, stdout: stdout, grace: x.e.KillGrace})
	switch {
	case res.stopped:
		return "", fmt.Errorf("command `%s`: %w", command, context.Cause(ctx))
	case res.err != nil:
		detail := strings.TrimSpace(res.tail)
		if len(detail) > 200 {
			detail = "..." + strings.ToValidUTF8(detail[len(detail)-200:], "")
		}
		if detail != "" {
			detail = ": " + detail
		}
		return "", fmt.Errorf("command `%s`: %v%s", command, res.err, detail)
	case stdout.overflow:
		return "", fmt.Errorf("command `%s` printed more than %d bytes", command, maxOutputValueBytes)
	}
	return strings.TrimSpace(string(stdout.buf)), nil
}
