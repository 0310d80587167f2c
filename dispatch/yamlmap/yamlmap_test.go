package yamlmap

import (
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func root(t *testing.T, text string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Content[0]
}

func keys(entries []Entry) string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Key+"="+Resolve(e.Value).Value)
	}
	return strings.Join(out, " ")
}

func messages(problems []Problem) string {
	var out []string
	for _, p := range problems {
		out = append(out, fmt.Sprintf("line %d: %s", p.Node.Line, p.Msg))
	}
	return strings.Join(out, "; ")
}

// Merge keys as YAML says: explicit keys win, the first merged map wins
// over later ones, merged maps may merge others.
func TestEntriesMergeAsYAMLSays(t *testing.T) {
	for text, want := range map[string]string{
		"a: 1\nb: 2\n": "a=1 b=2",
		"base: &b {x: 1, y: 2}\nm: {<<: *b, y: 3}\n": "base= m=",
		"<<: {x: 1, y: 2}\ny: 3\n":                   "y=3 x=1",
		"<<: [{x: 1}, {x: 2, z: 3}]\n":               "x=1 z=3",
		"<<: {<<: {deep: 1}, x: 2}\n":                "x=2 deep=1",
		"a: 1\na: 2\n":                               "a=1 a=2", // callers refuse duplicates
	} {
		entries, problems := Entries(root(t, text))
		if len(problems) != 0 {
			t.Errorf("%q: problems %s", text, messages(problems))
		}
		if got := keys(entries); got != want {
			t.Errorf("%q: entries %q, want %q", text, got, want)
		}
	}
}

// What cannot be read is reported at its line; a map merged into itself
// and merges nested past the bound are refused, so no file makes the
// reader loop or blow up.
func TestEntriesRefuse(t *testing.T) {
	deep := "x: 0\n"
	for i := 0; i <= MaxMergeDepth; i++ {
		deep = "<<: {" + strings.TrimSuffix(strings.ReplaceAll(deep, "\n", ", "), ", ") + "}\n"
	}
	for text, want := range map[string]string{
		"m: &m\n  <<: *m\n": "line 1: a map is merged into itself",
		"<<: x\n":           "line 1: a merge key (<<) takes a map or a list of maps, got a string",
		"<<: [1]\n":         "line 1: a merge key (<<) takes a map or a list of maps, got a number",
		"? [a]\n: b\n":      "line 1: a key must be a string, got a list",
		deep:                "merge keys (<<) nest more than 8 deep",
	} {
		n := root(t, text)
		if strings.HasPrefix(text, "m:") {
			n = n.Content[1]
		}
		_, problems := Entries(n)
		if got := messages(problems); !strings.Contains(got, want) {
			t.Errorf("%q: problems %q, want %q", text, got, want)
		}
	}
}

func TestResolveIsBounded(t *testing.T) {
	a := &yaml.Node{Kind: yaml.AliasNode}
	b := &yaml.Node{Kind: yaml.AliasNode, Alias: a}
	a.Alias = b // a hand-built loop
	if got := Resolve(a); got == nil || got.Kind != yaml.AliasNode {
		t.Fatalf("Resolve of a loop: %v", got)
	}
	if !IsNull(nil) || IsNull(root(t, "x")) || !IsNull(root(t, "~")) {
		t.Fatal("IsNull")
	}
}
