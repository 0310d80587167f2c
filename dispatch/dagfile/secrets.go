package dagfile

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/daguha/daguha/dispatch/yamlmap"
)

// SecretMask is what MaskSecrets writes in place of a secret.
const SecretMask = "<hidden>"

// reference is a value that only names a variable, $NAME or ${NAME}:
// no secret of its own.
var variableOnly = regexp.MustCompile(`^\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)$`)

// MaskSecrets returns a DAG file's text as it may be shown to anyone who
// may read DAGs: each smtp password written in it (in any of its
// documents), each password in a step's executor settings (ssh's), and
// each credential in an http step's headers (Authorization, Cookie, a name
// with token, secret, password, auth or api-key in it) is replaced by
// SecretMask, unless it names a variable (password: ${SMTP_PASS},
// Authorization: Bearer ${TOKEN}), which the worker reads when it sends or
// connects. Every other copy of such a secret in the text is masked too.
// A text that is not YAML has the value of every line's password key
// masked instead.
func MaskSecrets(source string) string {
	if !strings.Contains(source, "password") && !strings.Contains(strings.ToLower(source), "headers") {
		return source
	}
	secrets, ok := literalPasswords(source)
	if !ok {
		return passwordLine.ReplaceAllStringFunc(source, func(line string) string {
			m := passwordLine.FindStringSubmatch(line)
			if variableOnly.MatchString(strings.TrimSpace(m[2])) {
				return line
			}
			return m[1] + SecretMask
		})
	}
	if len(secrets) == 0 {
		return source
	}
	lineStarts := []int{0}
	for i := 0; i < len(source); i++ {
		if source[i] == '\n' {
			lineStarts = append(lineStarts, i+1)
		}
	}
	type span struct{ start, end int }
	var spans []span
	var values []string
	for _, n := range secrets {
		values = append(values, n.Value)
		if n.Line < 1 || n.Line > len(lineStarts) {
			continue
		}
		start := lineStarts[n.Line-1]
		for col := 1; col < n.Column && start < len(source) && source[start] != '\n'; col++ {
			_, size := utf8.DecodeRuneInString(source[start:])
			start += size
		}
		spans = append(spans, span{start, scalarEnd(source, start, n)})
	}
	// Back to front, so the offsets before each span stay right.
	sort.Slice(spans, func(i, j int) bool { return spans[i].start > spans[j].start })
	out := source
	last := len(source) + 1
	for _, s := range spans {
		if s.end > last { // overlapping: one alias of another
			s.end = last
		}
		if s.start >= s.end {
			continue
		}
		out = out[:s.start] + SecretMask + out[s.end:]
		last = s.start
	}
	// Copies of a password elsewhere (a comment, an env value).
	sort.Slice(values, func(i, j int) bool { return len(values[i]) > len(values[j]) })
	for _, v := range values {
		if v != "" && v != SecretMask {
			out = strings.ReplaceAll(out, v, SecretMask)
		}
	}
	return out
}

// passwordLine is a line that sets a key named password, for text that
// is not YAML.
var passwordLine = regexp.MustCompile(`(?m)^([^#\n]*\bpassword["']?\s*:[ \t]*)(\S.*)$`)

// literalPasswords finds the scalar of every password of the file's
// documents that is more than a variable's name: the smtp server's, and
// those in a step's executor settings (with, or executor.config, at any
// depth: ssh's password, a bastion's), in steps and in handlerOn. ok is
// false when the text is not YAML.
func literalPasswords(source string) (found []*yaml.Node, ok bool) {
	defer func() {
		if recover() != nil {
			found, ok = nil, false
		}
	}()
	add := func(v *yaml.Node) {
		v = yamlmap.Resolve(v)
		if v == nil || v.Kind != yaml.ScalarNode || v.Value == "" {
			return
		}
		if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 && variableOnly.MatchString(v.Value) {
			return
		}
		found = append(found, v)
	}
	decoder := yaml.NewDecoder(bytes.NewReader([]byte(source)))
	for {
		var doc yaml.Node
		err := decoder.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return found, true
		}
		if err != nil {
			return nil, false
		}
		if len(doc.Content) == 0 {
			continue
		}
		top, _ := yamlmap.Entries(doc.Content[0])
		for _, e := range top {
			switch e.Key {
			case "smtp":
				fields, _ := yamlmap.Entries(e.Value)
				for _, f := range fields {
					if f.Key == "password" {
						add(f.Value)
					}
				}
			case "steps", "handlerOn", "handler_on":
				// A list of steps, or a map of them (handlerOn's).
				r := yamlmap.Resolve(e.Value)
				if r == nil {
					continue
				}
				steps := r.Content
				if r.Kind == yaml.MappingNode {
					steps = nil
					handlers, _ := yamlmap.Entries(r)
					for _, h := range handlers {
						steps = append(steps, h.Value)
					}
				}
				for _, step := range steps {
					stepPasswords(step, add)
				}
			}
		}
	}
}

// stepPasswords passes each password in a step's executor settings to
// add.
func stepPasswords(step *yaml.Node, add func(*yaml.Node)) {
	fields, _ := yamlmap.Entries(yamlmap.Resolve(step))
	for _, f := range fields {
		switch f.Key {
		case "with", "config":
			passwordsUnder(f.Value, add, 0)
		case "executor":
			executor, _ := yamlmap.Entries(yamlmap.Resolve(f.Value))
			for _, e := range executor {
				if e.Key == "config" {
					passwordsUnder(e.Value, add, 0)
				}
			}
		}
	}
}

// maxSettingsDepth bounds how deep passwordsUnder looks into settings.
const maxSettingsDepth = 8

// passwordsUnder passes every value of a key named password in the map n,
// or in the maps and lists it holds, to add.
func passwordsUnder(n *yaml.Node, add func(*yaml.Node), depth int) {
	r := yamlmap.Resolve(n)
	if r == nil || depth > maxSettingsDepth {
		return
	}
	switch r.Kind {
	case yaml.MappingNode:
		fields, _ := yamlmap.Entries(r)
		for _, f := range fields {
			if f.Key == "password" {
				add(f.Value)
				continue
			}
			if strings.EqualFold(f.Key, "headers") {
				headers, _ := yamlmap.Entries(yamlmap.Resolve(f.Value))
				for _, h := range headers {
					if v := yamlmap.Resolve(h.Value); sensitiveHeader(h.Key) && v != nil && !variableIn.MatchString(v.Value) {
						add(h.Value)
					}
				}
				continue
			}
			passwordsUnder(f.Value, add, depth+1)
		}
	case yaml.SequenceNode:
		for _, item := range r.Content {
			passwordsUnder(item, add, depth+1)
		}
	}
}

// variableIn is a value that names a variable somewhere ($NAME, ${NAME}):
// Authorization: Bearer ${TOKEN} holds no secret of its own.
var variableIn = regexp.MustCompile(`\$\{?[A-Za-z_]`)

// sensitiveHeader says whether an http header carries a credential by its
// name: Authorization, Proxy-Authorization, Cookie, or a name with token,
// secret, password, auth or api-key (api_key, apikey) in it.
func sensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	if n == "cookie" {
		return true
	}
	for _, word := range []string{"auth", "token", "secret", "password", "passwd", "api-key", "api_key", "apikey"} {
		if strings.Contains(n, word) {
			return true
		}
	}
	return false
}

// scalarEnd is the offset just past the text of scalar n, which starts
// at start: its closing quote, the end of its block, or the end of its
// plain text. When that cannot be told, it is the end of the last line
// before the next one indented as little as n's line.
func scalarEnd(source string, start int, n *yaml.Node) int {
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		for i := start + 1; i < len(source); i++ {
			switch source[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return len(source)
	case n.Style&yaml.SingleQuotedStyle != 0:
		for i := start + 1; i < len(source); i++ {
			if source[i] == '\'' {
				if i+1 < len(source) && source[i+1] == '\'' {
					i++
					continue
				}
				return i + 1
			}
		}
		return len(source)
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 && strings.HasPrefix(source[start:], n.Value):
		return start + len(n.Value)
	}
	// A block scalar, or plain text over several lines: every following
	// line that is blank or indented more than the value's own line.
	lineStart := strings.LastIndexByte(source[:start], '\n') + 1
	indent := 0
	for lineStart+indent < len(source) && source[lineStart+indent] == ' ' {
		indent++
	}
	end := strings.IndexByte(source[start:], '\n')
	if end < 0 {
		return len(source)
	}
	end += start
	// Blank lines after the value are kept.
	for at := end; at < len(source); {
		next := strings.IndexByte(source[at+1:], '\n')
		line := source[at+1:]
		if next >= 0 {
			line = line[:next]
		}
		trimmed := strings.TrimLeft(line, " \t\r")
		if trimmed != "" && len(line)-len(strings.TrimLeft(line, " ")) <= indent {
			break
		}
		if next < 0 {
			if trimmed != "" {
				end = len(source)
			}
			break
		}
		at += 1 + next
		if trimmed != "" {
			end = at
		}
	}
	return end
}
