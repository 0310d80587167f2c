package dagfile

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's parallel, in each of the forms its 1.x docs and current docs
// write it, reads into the step's ParallelSpec.
func TestParallelFormsReadIntoTheStep(t *testing.T) {
	value := func(v string) *daguhav1.ParallelItem { return &daguhav1.ParallelItem{Value: v} }
	for _, tc := range []struct {
		name     string
		parallel string // the step's parallel key and what follows, indented by four
		want     *daguhav1.ParallelSpec
	}{
		{"a list of strings", "parallel: [a.csv, b.csv]",
			&daguhav1.ParallelSpec{Items: []*daguhav1.ParallelItem{value("a.csv"), value("b.csv")}, MaxConcurrent: 10}},
		{"numbers keep their text", "parallel: [1, 2.50, 0x1F]",
			&daguhav1.ParallelSpec{Items: []*daguhav1.ParallelItem{value("1"), value("2.50"), value("0x1F")}, MaxConcurrent: 10}},
		{"a variable", "parallel: ${ITEMS}", &daguhav1.ParallelSpec{ItemsFrom: "${ITEMS}", MaxConcurrent: 10}},
		{"a variable without braces", "parallel: $ITEMS", &daguhav1.ParallelSpec{ItemsFrom: "$ITEMS", MaxConcurrent: 10}},
		{"a map with items and maxConcurrent", "parallel:\n      items:\n        - x\n        - y\n      maxConcurrent: 2",
			&daguhav1.ParallelSpec{Items: []*daguhav1.ParallelItem{value("x"), value("y")}, MaxConcurrent: 2}},
		{"current Dagu's snake_case", "parallel:\n      items: ${FILES}\n      max_concurrent: \"3\"",
			&daguhav1.ParallelSpec{ItemsFrom: "${FILES}", MaxConcurrent: 3}},
		{"map items are named params in the order written", "parallel:\n      items:\n        - {REGION: us-east-1, VERSION: \"1.0\"}\n        - {REGION: eu-west-1, DRY: true, N: 3}",
			&daguhav1.ParallelSpec{MaxConcurrent: 10, Items: []*daguhav1.ParallelItem{
				{IsMap: true, Params: []*daguhav1.Param{{Name: "REGION", Value: "us-east-1"}, {Name: "VERSION", Value: "1.0"}}},
				{IsMap: true, Params: []*daguhav1.Param{{Name: "REGION", Value: "eu-west-1"}, {Name: "DRY", Value: "true"}, {Name: "N", Value: "3"}}},
			}}},
		{"an empty map item", "parallel: [{}]", &daguhav1.ParallelSpec{Items: []*daguhav1.ParallelItem{{IsMap: true}}, MaxConcurrent: 10}},
		{"null is no parallel", "parallel:", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := "steps:\n  - name: fan-out\n    run: worker-dag\n    params: \"FILE=${ITEM}\"\n    " + tc.parallel + "\n---\nname: worker-dag\nsteps:\n  - name: w\n    command: echo $FILE\n"
			step := mustParse(t, "fan.yaml", text).Dags[0].GetSteps()[0]
			if !proto.Equal(step.GetParallel(), tc.want) {
				t.Errorf("parallel:\n got: %s\nwant: %s", prototext.Format(step.GetParallel()), prototext.Format(tc.want))
			}
			if step.GetChildDag() != "worker-dag" || step.GetChildParams() != "FILE=${ITEM}" {
				t.Errorf("child %q params %q, want worker-dag and FILE=${ITEM}", step.GetChildDag(), step.GetChildParams())
			}
		})
	}
}

// call and run are the same to parallel.
func TestParallelOnACallStep(t *testing.T) {
	f := mustParse(t, "fan.yaml", "steps:\n  - name: fan-out\n    call: child\n    parallel: [a]\n---\nname: child\nsteps:\n  - name: c\n    command: \"true\"\n")
	if got := f.Dags[0].GetSteps()[0].GetParallel().GetItems(); len(got) != 1 || got[0].GetValue() != "a" {
		t.Errorf("items %v, want [a]", got)
	}
}

// Each mistake in a parallel key is one problem at its line and key.
func TestBadParallelSteps(t *testing.T) {
	const child = "---\nname: child\nsteps:\n  - name: c\n    command: \"true\"\n"
	step := func(lines string) string {
		return "steps:\n  - name: fan\n    run: child\n" + lines + child
	}
	for _, tc := range []struct {
		name    string
		text    string
		line    int
		key     string
		message string
	}{
		{"on a command step", "steps:\n  - name: fan\n    command: echo $ITEM\n    parallel: [a, b]\n", 4, "steps[0].parallel", "parallel is for run/call steps"},
		{"a number", step("    parallel: 5\n"), 4, "steps[0].parallel", "want a list of items, or a variable holding them such as ${ITEMS}; got a number"},
		{"an empty string", step("    parallel: \"\"\n"), 4, "steps[0].parallel", "got an empty string"},
		{"an empty list", step("    parallel: []\n"), 4, "steps[0].parallel", "a parallel step needs at least one item"},
		{"a map without items", step("    parallel:\n      maxConcurrent: 2\n"), 5, "steps[0].parallel", "want items"},
		{"items of a map is a map", step("    parallel:\n      items: {a: b}\n"), 5, "steps[0].parallel.items", "got a map"},
		{"unknown key in the map", step("    parallel:\n      items: [a]\n      maxConcurent: 2\n"), 6, "steps[0].parallel.maxConcurent", `did you mean "maxConcurrent"?`},
		{"maxConcurrent 0", step("    parallel:\n      items: [a]\n      maxConcurrent: 0\n"), 6, "steps[0].parallel.maxConcurrent", "must be at least 1"},
		{"negative maxConcurrent", step("    parallel:\n      items: [a]\n      max_concurrent: -1\n"), 6, "steps[0].parallel.max_concurrent", "must not be negative"},
		{"maxConcurrent not a number", step("    parallel:\n      items: [a]\n      maxConcurrent: all\n"), 6, "steps[0].parallel.maxConcurrent", "want a whole number"},
		{"a true/false item", step("    parallel: [a, true]\n"), 4, "steps[0].parallel[1]", "an item is a string, a number or a map of params, got true/false"},
		{"a null item", step("    parallel:\n      - a\n      -\n"), 6, "steps[0].parallel[1]", "got null"},
		{"a list item", step("    parallel: [[a, b]]\n"), 4, "steps[0].parallel[0]", "got a list"},
		{"a map item with a list value", step("    parallel:\n      - {A: [1]}\n"), 5, "steps[0].parallel[0].A", "want a string, a number or true/false, got a list"},
		{"a map item with a null value", step("    parallel:\n      - {A: }\n"), 5, "steps[0].parallel[0].A", "got null"},
		{"a map item with a bad name", step("    parallel:\n      - {1A: x}\n"), 5, "steps[0].parallel[0].1A", "a param name is letters"},
		{"a map item with a name twice", step("    parallel:\n      - {A: x, A: y}\n"), 5, "steps[0].parallel[0].A", "given twice"},
		{"more items than Dagu runs", step("    parallel: [" + strings.TrimSuffix(strings.Repeat("x, ", 1001), ", ") + "]\n"), 4, "steps[0].parallel", "1001 items, more than the limit of 1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.text))
			var problems Problems
			if !errors.As(err, &problems) {
				t.Fatalf("Parse: %v, want Problems", err)
			}
			if len(problems) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(problems), err)
			}
			p := problems[0]
			if p.Line != tc.line || p.Key != tc.key || !strings.Contains(p.Message, tc.message) {
				t.Errorf("got  %s\nwant bad.yaml:%d: %s: …%s…", p.Error(), tc.line, tc.key, tc.message)
			}
		})
	}
}

// Dagu's own parallel test DAGs are accepted as written (the shapes of
// its integration tests, written again here).
func TestParallelDaguShapesAreAccepted(t *testing.T) {
	for i, text := range []string{
		"env:\n  - ITEMS: '[\"task1\", \"task2\"]'\nsteps:\n  - name: p\n    run: c\n    parallel: $ITEMS\n  - name: after\n    command: echo done\n    depends: p\n",
		"params:\n  - ITEMS: '[\"alpha\", \"beta\"]'\nsteps:\n  - name: p\n    run: c\n    parallel: ${ITEMS}\n",
		"steps:\n  - name: p\n    run: c\n    parallel:\n      items:\n        - REGION: us-east-1\n          VERSION: \"1.0.0\"\n      maxConcurrent: 2\n",
		"steps:\n  - name: p\n    run: c\n    parallel:\n      items: [\"ok1\", \"fail\"]\n    continueOn:\n      failure: true\n    output: RESULTS\n",
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			mustParse(t, "p.yaml", text+"---\nname: c\nsteps:\n  - name: s\n    command: echo $1\n")
		})
	}
}
