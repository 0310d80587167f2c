package dispatch

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/dispatch/valid"
)

// FuzzParseLabels: worker labels arrive as k=v,k=v (the --labels and
// --worker.labels flags, DAGU_WORKER_LABELS, config.yaml) and selectors
// as a DAG file's workerSelector map. Neither parser may panic. Labels
// that parse format back to the same labels, and are the queue key of
// the same selector; an error quotes the part it is about. A selector a
// DAG file is allowed to have is one some worker can be started with.
func FuzzParseLabels(f *testing.F) {
	for _, seed := range []struct{ text, key, value string }{
		{"gpu=true,memory=64G,region=us-east-1", "gpu", "true"},
		{" gpu = true , cuda=11.8,,tier=", "tier", "gold"},
		{"gpu", "a=b", "c"},
		{"=true", " gpu", "true"},
		{"gpu=true,gpu=no", "gpu", "true,zone=eu"},
		{"a=b=c", "k", "v=w"},
		{"k=\x00,\tx=y\n", "k", "\x01"},
		{"ключ=значение", "ключ", "значение"},
		{"a=\xff", "\xff", ""},
	} {
		f.Add(seed.text, seed.key, seed.value)
	}
	f.Fuzz(func(t *testing.T, text, key, value string) {
		labels, err := valid.ParseLabels(text)
		if err != nil {
			if labels != nil {
				t.Fatalf("ParseLabels(%q) returned labels with an error", text)
			}
			if quoted, ok := firstQuoted(err.Error()); !ok || !strings.Contains(text, quoted) {
				t.Fatalf("ParseLabels(%q): error %q does not quote the bad part", text, err)
			}
		} else {
			formatted := valid.FormatLabels(labels)
			again, err := valid.ParseLabels(formatted)
			if err != nil || !maps.Equal(labels, again) {
				t.Fatalf("ParseLabels(%q) = %v, formatted %q, parsed again %v, %v", text, labels, formatted, again, err)
			}
			if SelectorKey(labels) != formatted {
				t.Fatalf("labels %v: queue key %q, formatted %q", labels, SelectorKey(labels), formatted)
			}
			if !Matches(labels, labels) {
				t.Fatalf("labels %v do not match themselves", labels)
			}
		}

		// The same label as a DAG's workerSelector; an explicit key (?), as
		// YAML allows an implicit one only up to 1024 characters.
		doc := "name: d\nworkerSelector:\n  ? " + yamlQuote(key) + "\n  : " + yamlQuote(value) + "\nsteps:\n  - name: s\n    command: \"true\"\n"
		file, err := dagfile.Parse("d.yaml", []byte(doc))
		if err != nil {
			var problems dagfile.Problems
			if !errors.As(err, &problems) {
				t.Fatalf("%q: error %T %v", doc, err, err)
			}
			for _, p := range problems {
				if !strings.HasPrefix(p.Key, "workerSelector") {
					t.Fatalf("%q: the selector is all that varies, but the problem is about %q: %v", doc, p.Key, p)
				}
			}
			return
		}
		selector := file.Dags[0].GetWorkerSelector()
		worker, err := valid.ParseLabels(valid.FormatLabels(selector))
		if err != nil || !maps.Equal(worker, selector) || !Matches(selector, worker) {
			t.Fatalf("selector %q: %q accepted, but a worker started with --labels %q gets %v, %v",
				key, value, valid.FormatLabels(selector), worker, err)
		}
	})
}

// firstQuoted is the first Go-quoted string in msg, unquoted.
func firstQuoted(msg string) (string, bool) {
	i := strings.IndexByte(msg, '"')
	if i < 0 {
		return "", false
	}
	quoted, err := strconv.QuotedPrefix(msg[i:])
	if err != nil {
		return "", false
	}
	s, err := strconv.Unquote(quoted)
	return s, err == nil
}

// yamlQuote writes s as a YAML double-quoted scalar. YAML text is
// Unicode: a byte that is not UTF-8 becomes U+FFFD, as it would in a file.
func yamlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r >= ' ' && r < 0x7f:
			b.WriteRune(r)
		case r == utf8.RuneError:
			b.WriteString(`\uFFFD`)
		default:
			fmt.Fprintf(&b, `\U%08X`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
