package dagfile

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Parse never panics. What it accepts is a file of well-formed DAGs whose
// stored record survives the trip through protobuf; what it refuses, it
// refuses with Problems that each point at a line of the file.
func FuzzParse(f *testing.F) {
	f.Add([]byte(seedExample))
	f.Add([]byte(everyKeyCamel))
	f.Add([]byte("steps:\n  - name: a\n    command: x\n    depends: [a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const path = "fuzz.yaml"
		file, err := Parse(path, data)
		if err != nil {
			var problems Problems
			if !errors.As(err, &problems) || len(problems) == 0 {
				t.Fatalf("error %T %v, want Problems", err, err)
			}
			for _, p := range problems {
				if p.File != path || p.Line < 1 || p.Message == "" {
					t.Fatalf("problem without a place or a message: %+v", p)
				}
			}
			return
		}
		if len(file.Dags) == 0 {
			t.Fatalf("accepted a file without DAGs")
		}
		names := map[string]bool{}
		for _, dag := range file.Dags {
			if dag.GetName() == "" || names[dag.GetName()] {
				t.Fatalf("accepted a DAG with an empty or repeated name %q", dag.GetName())
			}
			names[dag.GetName()] = true
			checkSteps(t, dag)
		}
		_ = file.CheckChildren(func(string) bool { return false })

		stored := file.Stored()
		wire, err := proto.Marshal(stored)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var back daguhav1.StoredDag
		if err := proto.Unmarshal(wire, &back); err != nil {
			t.Fatalf("unmarshal: %v", err)
		}
		if !proto.Equal(stored, &back) {
			t.Fatalf("the stored record changed on its way through protobuf")
		}
	})
}

// checkSteps holds an accepted DAG to what the executor relies on.
func checkSteps(t *testing.T, dag *daguhav1.DagSpec) {
	t.Helper()
	if len(dag.GetSteps()) == 0 {
		t.Fatalf("DAG %q accepted without steps", dag.GetName())
	}
	steps := map[string]bool{}
	for _, step := range dag.GetSteps() {
		if step.GetName() == "" || steps[step.GetName()] {
			t.Fatalf("DAG %q: empty or repeated step name %q", dag.GetName(), step.GetName())
		}
		steps[step.GetName()] = true
		// A step runs a command (or several), a script (maybe with a
		// command as its interpreter) or a child DAG, or only publishes
		// its output map.
		command := step.GetCommand() != "" || len(step.GetCommands()) > 0
		switch {
		case step.GetCommand() != "" && len(step.GetCommands()) > 0:
			t.Fatalf("DAG %q step %q: both command and commands", dag.GetName(), step.GetName())
		case step.GetChildDag() != "" && (command || step.GetScript() != ""):
			t.Fatalf("DAG %q step %q: a child DAG and a command or script", dag.GetName(), step.GetName())
		case len(step.GetCommands()) > 0 && step.GetScript() != "":
			t.Fatalf("DAG %q step %q: a script with several commands", dag.GetName(), step.GetName())
		case !command && step.GetScript() == "" && step.GetChildDag() == "" && len(step.GetOutputEntries()) == 0:
			t.Fatalf("DAG %q step %q: nothing to do", dag.GetName(), step.GetName())
		}
	}
	for _, step := range dag.GetSteps() {
		for _, dep := range step.GetDepends() {
			if !steps[dep] {
				t.Fatalf("DAG %q step %q depends on unknown %q", dag.GetName(), step.GetName(), dep)
			}
		}
	}
	for _, spec := range dag.GetSchedule() {
		if _, err := ParseSchedule(spec); err != nil {
			t.Fatalf("DAG %q: stored schedule %q does not parse: %v", dag.GetName(), spec, err)
		}
	}
	if _, err := ParseParams(FormatParams(dag.GetParams())); err != nil {
		t.Fatalf("DAG %q: params do not format: %v", dag.GetName(), err)
	}
	for _, step := range dag.GetSteps() {
		if _, err := ParseParams(step.GetChildParams()); err != nil {
			t.Fatalf("DAG %q step %q: child params %q do not parse: %v", dag.GetName(), step.GetName(), step.GetChildParams(), err)
		}
	}
}
