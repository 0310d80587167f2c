package worker

import (
	"context"
	"strings"
	"testing"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Every kind a step can be has its executor: a command or script step,
// the same on a no-op engine, and a run/call step.
func TestEveryKindOfStepHasAnExecutor(t *testing.T) {
	steps := map[string]*daguhav1.StepSpec{
		"command":  {Name: "c", Command: "true"},
		"script":   {Name: "s", Script: "true"},
		"run/call": {Name: "r", ChildDag: "child"},
	}
	for _, e := range []*Engine{{}, {Noop: true}} {
		for what, spec := range steps {
			if _, err := executorFor(e.kindOf(spec)); err != nil {
				t.Errorf("a %s step (noop %t): %v", what, e.Noop, err)
			}
		}
	}
}

// A step of a kind no executor runs fails the run before anything runs,
// with an error naming the step, the kind, and the kinds there are.
func TestEngineRefusesAStepOfAnUnknownKind(t *testing.T) {
	_, err := executorFor("teleport")
	if err == nil || !strings.Contains(err.Error(), `kind "teleport"`) || !strings.Contains(err.Error(), "(this worker runs ") {
		t.Fatalf("executorFor(teleport): %v", err)
	}
	for kind := range executors {
		if !strings.Contains(err.Error(), " "+kind) {
			t.Errorf("executorFor(teleport): %v; want it to name %s", err, kind)
		}
	}

	// Take the command executor away for this test only.
	saved := executors[kindCommand]
	delete(executors, kindCommand)
	defer func() { executors[kindCommand] = saved }()
	host := &fakeHost{}
	r := execute(t, context.Background(), testEngine(t), testRun(t.TempDir(), &daguhav1.StepSpec{Name: "a", Command: "true"}), host)
	want := `invalid DAG: step "a": no executor runs steps of kind "command"`
	if r.status != daguhav1.RunStatus_RUN_STATUS_FAILED || !strings.HasPrefix(r.message, want) || len(host.last()) != 0 {
		t.Fatalf("%s %q, reports %v; want FAILED %q and nothing run", r.status, r.message, host.last(), want)
	}
}
