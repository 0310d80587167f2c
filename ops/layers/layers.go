package layers

import (
	"bufio"
	"fmt"
	"path"
	"sort"
	"strings"
)

// Rule says which daguha packages one package (or a family, pattern
// ending in "/...") may import. Any means it may import every package
// except those named by Never.
type Rule struct {
	Pattern string
	Allowed []string
	Any     bool
	Line    int
}

// Rules are the parsed "layers" block, in document order, plus the
// packages that nothing outside tests may import.
type Rules struct {
	List []Rule
	// TestOnly are packages (patterns) that only tests and other
	// test-only packages may import.
	TestOnly []string
}

// Parse reads the fenced block that starts with "```layers" from the
// architecture document. Each line is `PATTERN: IMPORT IMPORT ...`,
// `PATTERN: nothing`, `PATTERN: anything` or `test-only: PATTERN ...`;
// '#' starts a comment.
func Parse(doc string) (Rules, error) {
	var rules Rules
	in, found := false, false
	sc := bufio.NewScanner(strings.NewReader(doc))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		switch {
		case !in && line == "```layers":
			in, found = true, true
			continue
		case in && line == "```":
			in = false
			continue
		case !in:
			continue
		}
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		head, tail, ok := strings.Cut(line, ":")
		if !ok {
			return Rules{}, fmt.Errorf("line %d: %q has no ':' (want PATTERN: IMPORTS)", n, line)
		}
		head = strings.TrimSpace(head)
		fields := strings.Fields(tail)
		if head == "test-only" {
			rules.TestOnly = append(rules.TestOnly, fields...)
			continue
		}
		r := Rule{Pattern: head, Line: n}
		switch {
		case len(fields) == 1 && fields[0] == "nothing":
		case len(fields) == 1 && fields[0] == "anything":
			r.Any = true
		case len(fields) == 0:
			return Rules{}, fmt.Errorf("line %d: %s allows no imports; write \"nothing\"", n, head)
		default:
			r.Allowed = fields
		}
		rules.List = append(rules.List, r)
	}
	if !found {
		return Rules{}, fmt.Errorf("no ```layers block")
	}
	if in {
		return Rules{}, fmt.Errorf("the ```layers block is not closed")
	}
	return rules, nil
}

// match says whether a package path (relative to the module) matches a
// pattern: an exact path, or "dir/..." for dir and everything under it.
func match(pattern, pkg string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	ok, _ := path.Match(pattern, pkg)
	return ok
}

// ruleFor is the first rule whose pattern matches pkg.
func (r Rules) ruleFor(pkg string) (Rule, bool) {
	for _, rule := range r.List {
		if match(rule.Pattern, pkg) {
			return rule, true
		}
	}
	return Rule{}, false
}

func (r Rules) testOnly(pkg string) bool {
	for _, p := range r.TestOnly {
		if match(p, pkg) {
			return true
		}
	}
	return false
}

// Check returns every broken rule of a graph: package -> the daguha
// packages it imports (non-test files only), paths relative to the
// module. A package no rule names is a problem too, so the document
// names every package.
func (r Rules) Check(graph map[string][]string) []string {
	var problems []string
	pkgs := make([]string, 0, len(graph))
	for p := range graph {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, pkg := range pkgs {
		rule, ok := r.ruleFor(pkg)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: no rule in docs/architecture.md names this package; add it to the layers block", pkg))
			continue
		}
		for _, imp := range graph[pkg] {
			if r.testOnly(imp) && !r.testOnly(pkg) {
				problems = append(problems, fmt.Sprintf("%s imports %s, which only tests may import", pkg, imp))
				continue
			}
			if rule.Any || imp == pkg {
				continue
			}
			allowed := false
			for _, a := range rule.Allowed {
				if match(a, imp) {
					allowed = true
					break
				}
			}
			if !allowed {
				problems = append(problems, fmt.Sprintf("%s imports %s, which its rule (docs/architecture.md line %d: %s) does not allow", pkg, imp, rule.Line, rule.Pattern))
			}
		}
	}
	return problems
}
