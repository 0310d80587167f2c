package layers

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// moduleRoot is the directory of go.mod, found from the test's directory.
func moduleRoot(t *testing.T) (dir, module string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Path}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	dir, module, _ = strings.Cut(strings.TrimSpace(string(out)), " ")
	return dir, module
}

// importGraph is every package of the module with the module's packages
// its non-test Go files import, as `go list` reports them.
func importGraph(t *testing.T, dir, module string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "./...")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	graph := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		rel := func(s string) string {
			if s == module {
				return "."
			}
			return strings.TrimPrefix(s, module+"/")
		}
		var imports []string
		for _, imp := range p.Imports {
			if imp == module || strings.HasPrefix(imp, module+"/") {
				imports = append(imports, rel(imp))
			}
		}
		graph[rel(p.ImportPath)] = imports
	}
	return graph
}

// The package graph is the one docs/architecture.md draws.
func TestImportsFollowTheArchitecture(t *testing.T) {
	dir, module := moduleRoot(t)
	doc, err := os.ReadFile(filepath.Join(dir, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := Parse(string(doc))
	if err != nil {
		t.Fatalf("docs/architecture.md: %v", err)
	}
	graph := importGraph(t, dir, module)
	if len(graph) < 10 {
		t.Fatalf("go list found %d packages; the graph cannot be right", len(graph))
	}
	for _, p := range rules.Check(graph) {
		t.Error(p)
	}
	// Every rule names packages that exist: a renamed package leaves no
	// stale rule behind.
	for _, rule := range rules.List {
		found := false
		for pkg := range graph {
			if match(rule.Pattern, pkg) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("docs/architecture.md line %d: rule %s names no package", rule.Line, rule.Pattern)
		}
	}
}

// The check fails on the imports the architecture forbids: an arrow up
// the layers, an import a rule does not list, a package no rule names,
// and production code importing a test helper.
func TestCheckRefusesWhatTheRulesForbid(t *testing.T) {
	rules, err := Parse("intro\n```layers\n" +
		"store: proto\n" +
		"dispatch/...: store proto   # leader and worker side\n" +
		"proto: nothing\n" +
		"cmd/...: anything\n" +
		"cluster/clustertest: anything\n" +
		"test-only: cluster/clustertest\n" +
		"```\n")
	if err != nil {
		t.Fatal(err)
	}
	good := map[string][]string{
		"proto":               nil,
		"store":               {"proto"},
		"dispatch":            {"store", "proto"},
		"dispatch/worker":     {"proto"},
		"cmd/daguha":          {"dispatch", "store"},
		"cluster/clustertest": {"dispatch"},
	}
	if problems := rules.Check(good); len(problems) != 0 {
		t.Fatalf("a graph within the rules: %v", problems)
	}
	for name, graph := range map[string]map[string][]string{
		"up the layers":      {"store": {"dispatch"}, "dispatch": {"store"}},
		"not listed":         {"proto": {"store"}, "store": nil},
		"no rule":            {"ops/new": nil},
		"test helper in use": {"cmd/daguha": {"cluster/clustertest"}, "cluster/clustertest": nil},
	} {
		if problems := rules.Check(graph); len(problems) == 0 {
			t.Errorf("%s: no problem found in %v", name, graph)
		}
	}
	for _, bad := range []string{"no block", "```layers\nstore proto\n```", "```layers\nstore:\n```", "```layers\nstore: proto\n"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
