package dagfile

import (
	"errors"
	"strings"
	"testing"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// A step's id is kept for references such as ${id.exitCode}; variable
// references, JSON paths and backquoted commands in values are kept as
// written, for the worker to evaluate when the run starts.
func TestStepIDsAndReferencesAreKeptForTheRun(t *testing.T) {
	f := mustParse(t, "refs.yaml", `params:
  - TODAY: "`+"`date +%F`"+`"
env:
  - STAMP: "`+"`date +%s`"+`"
steps:
  - name: config
    id: cfg
    command: |-
      echo '{"db": {"host": "h"}}'
    output: CONFIG
  - name: use
    id: use-it_2
    command: echo "${CONFIG.db.host} ${cfg.exitCode} ${cfg.stdout}"
    env:
      - HOST: ${CONFIG.db.host}
`)
	want := &daguhav1.DagSpec{
		Name: "refs", SourceFile: "refs.yaml",
		Params: []*daguhav1.Param{{Name: "TODAY", Value: "`date +%F`"}},
		Env:    []*daguhav1.EnvVar{{Name: "STAMP", Value: "`date +%s`"}},
		Steps: []*daguhav1.StepSpec{
			{Name: "config", Id: "cfg", Command: `echo '{"db": {"host": "h"}}'`, Output: "CONFIG"},
			{Name: "use", Id: "use-it_2", Command: `echo "${CONFIG.db.host} ${cfg.exitCode} ${cfg.stdout}"`,
				Depends: []string{"config"}, Env: []*daguhav1.EnvVar{{Name: "HOST", Value: "${CONFIG.db.host}"}}},
		},
	}
	assertDag(t, f.Dags[0], want)
}

func TestBadStepIDs(t *testing.T) {
	for _, tc := range []struct {
		name, steps string
		line        int
		key         string
		message     string
	}{
		{"id starting with a digit", "  - {name: a, command: x, id: 1a}\n", 2, "steps[0].id", `a step id is letters, digits, '_' and '-', starting with a letter`},
		{"id with a dot", "  - {name: a, command: x, id: a.b}\n", 2, "steps[0].id", `got "a.b"`},
		{"id that is no string", "  - {name: a, command: x, id: [a]}\n", 2, "steps[0].id", "want a string"},
		{"id given twice", "  - {name: a, command: x, id: same}\n  - {name: b, command: x, id: same}\n", 3, "steps[1].id",
			`step id "same" is already used by steps[0] (line 2)`},
	} {
		_, err := Parse("bad.yaml", []byte("steps:\n"+tc.steps))
		var problems Problems
		if !errors.As(err, &problems) || len(problems) != 1 {
			t.Errorf("%s: %v, want one problem", tc.name, err)
			continue
		}
		p := problems[0]
		if p.Line != tc.line || p.Key != tc.key || !strings.Contains(p.Message, tc.message) {
			t.Errorf("%s: %d %s %q, want %d %s %q", tc.name, p.Line, p.Key, p.Message, tc.line, tc.key, tc.message)
		}
	}
}
