package dagfile

import (
	"errors"
	"strings"
	"testing"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

func TestPreconditionsInEveryForm(t *testing.T) {
	f := mustParse(t, "pre.yaml", `
preconditions:
  - condition: "${ENVIRONMENT}"
    expected: production
  - "test -d /srv"
precondition: "test -f /etc/hostname"
steps:
  - name: weekday
    command: ./batch.sh
    preconditions:
      - condition: "`+"`date +%u`"+`"
        expected: "re:[1-5]"
      - command: test -w /tmp
      - condition: "$SKIP_IT"
        expected: "yes"
        negate: true
  - name: single
    command: echo x
    precondition: test -x /bin/sh
    continueOn:
      skipped: true
  - name: string-form
    command: echo y
    preconditions: "true"
`)
	dag := f.Dags[0]
	assertConditions(t, "DAG", dag.GetPreconditions(), []*daguhav1.Condition{
		{Condition: "${ENVIRONMENT}", Expected: "production"},
		{Condition: "test -d /srv"},
		{Condition: "test -f /etc/hostname"},
	})
	steps := dag.GetSteps()
	assertConditions(t, "weekday", steps[0].GetPreconditions(), []*daguhav1.Condition{
		{Condition: "`date +%u`", Expected: "re:[1-5]"},
		{Condition: "test -w /tmp"},
		{Condition: "$SKIP_IT", Expected: "yes", Negate: true},
	})
	assertConditions(t, "single", steps[1].GetPreconditions(), []*daguhav1.Condition{{Condition: "test -x /bin/sh"}})
	if !steps[1].GetContinueOn().GetSkipped() || steps[0].GetContinueOn().GetSkipped() {
		t.Errorf("continueOn.skipped: got %v/%v, want only single's set", steps[0].GetContinueOn().GetSkipped(), steps[1].GetContinueOn().GetSkipped())
	}
	assertConditions(t, "string-form", steps[2].GetPreconditions(), []*daguhav1.Condition{{Condition: "true"}})
}

func assertConditions(t *testing.T, what string, got, want []*daguhav1.Condition) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d conditions %v, want %d", what, len(got), got, len(want))
		return
	}
	for i := range got {
		if got[i].GetCondition() != want[i].GetCondition() || got[i].GetExpected() != want[i].GetExpected() || got[i].GetNegate() != want[i].GetNegate() {
			t.Errorf("%s[%d]: got %v, want %v", what, i, got[i], want[i])
		}
	}
}

func TestRepeatPolicyModes(t *testing.T) {
	f := mustParse(t, "repeat.yaml", `
type: graph
steps:
  - name: legacy-forever
    command: echo tick
    repeatPolicy:
      repeat: true
      intervalSec: 60
  - name: legacy-until-match
    command: echo x
    repeatPolicy:
      repeat: true
      limit: 5
      condition: "$(cat /tmp/state)"
      expected: done
  - name: legacy-exit-code
    command: test -f /tmp/ready
    repeatPolicy:
      exitCode: [1]
      limit: 5
      intervalSec: 1
  - name: legacy-command
    command: echo y
    repeatPolicy:
      condition: test -f /tmp/more
  - name: explicit-while
    command: echo z
    repeat_policy:
      repeat: while
      exit_code: 3
      interval_sec: 2
      backoff: true
      max_interval_sec: 30
  - name: explicit-until
    command: echo w
    repeatPolicy:
      repeat: until
      condition: "$STATUS"
      expected: "re:^ok"
      backoff: 1.5
  - name: off
    command: echo v
    repeatPolicy:
      repeat: false
`)
	want := map[string]*daguhav1.RepeatPolicy{
		"legacy-forever":     {Mode: "while", IntervalSec: 60},
		"legacy-until-match": {Mode: "until", Limit: 5, Condition: &daguhav1.Condition{Condition: "$(cat /tmp/state)", Expected: "done"}},
		"legacy-exit-code":   {Mode: "while", ExitCodes: []int32{1}, Limit: 5, IntervalSec: 1},
		"legacy-command":     {Mode: "while", Condition: &daguhav1.Condition{Condition: "test -f /tmp/more"}},
		"explicit-while":     {Mode: "while", ExitCodes: []int32{3}, IntervalSec: 2, Backoff: 2, MaxIntervalSec: 30},
		"explicit-until":     {Mode: "until", Condition: &daguhav1.Condition{Condition: "$STATUS", Expected: "re:^ok"}, Backoff: 1.5},
		"off":                nil,
	}
	for _, step := range f.Dags[0].GetSteps() {
		w, ok := want[step.GetName()]
		if !ok {
			t.Fatalf("unexpected step %q", step.GetName())
		}
		assertDag(t, &daguhav1.DagSpec{Steps: []*daguhav1.StepSpec{{RepeatPolicy: step.GetRepeatPolicy()}}},
			&daguhav1.DagSpec{Steps: []*daguhav1.StepSpec{{RepeatPolicy: w}}})
	}
}

func TestRetryPolicyExitCodesAndBackoff(t *testing.T) {
	f := mustParse(t, "retry.yaml", `
steps:
  - name: api
    command: curl -f https://example.com
    retryPolicy:
      limit: 3
      intervalSec: 5
      exitCode: [22, 7]
      backoff: 2.5
      maxIntervalSec: 60
  - name: plain
    command: "true"
    retry_policy: {limit: "2", interval_sec: "1", exit_code: 1, backoff: false}
`)
	assertDag(t, &daguhav1.DagSpec{Steps: []*daguhav1.StepSpec{{RetryPolicy: f.Dags[0].Steps[0].GetRetryPolicy()}, {RetryPolicy: f.Dags[0].Steps[1].GetRetryPolicy()}}},
		&daguhav1.DagSpec{Steps: []*daguhav1.StepSpec{
			{RetryPolicy: &daguhav1.RetryPolicy{Limit: 3, IntervalSec: 5, ExitCodes: []int32{22, 7}, Backoff: 2.5, MaxIntervalSec: 60}},
			{RetryPolicy: &daguhav1.RetryPolicy{Limit: 2, IntervalSec: 1, ExitCodes: []int32{1}}},
		}})
}

func TestDagRetryPolicy(t *testing.T) {
	f := mustParse(t, "dag-retry.yaml", `
retryPolicy:
  limit: 2
  intervalSec: 60
  backoff: true
  maxIntervalSec: 600
steps:
  - name: a
    command: "true"
`)
	assertDag(t, &daguhav1.DagSpec{RetryPolicy: f.Dags[0].GetRetryPolicy()},
		&daguhav1.DagSpec{RetryPolicy: &daguhav1.RetryPolicy{Limit: 2, IntervalSec: 60, Backoff: 2, MaxIntervalSec: 600}})
}

func TestHandlerOnStepsAreNamedAsDaguNamesThem(t *testing.T) {
	f := mustParse(t, "handlers.yaml", `
steps:
  - name: main
    command: echo main
handlerOn:
  success:
    command: echo ok
  failure:
    name: ignored-name
    script: |
      echo failed
    preconditions: "test -n \"$ALERT\""
  abort:
    command: echo aborted
  Exit:
    run: cleanup
    params: "KEEP=1"
  init:
    command: echo init
---
name: cleanup
steps:
  - name: clean
    command: rm -rf /tmp/x
`)
	on := f.Dags[0].GetHandlerOn()
	for _, tc := range []struct {
		step *daguhav1.StepSpec
		name string
	}{{on.GetSuccess(), "onSuccess"}, {on.GetFailure(), "onFailure"}, {on.GetCancel(), "onAbort"}, {on.GetExit(), "onExit"}, {on.GetInit(), "onInit"}} {
		if tc.step.GetName() != tc.name {
			t.Errorf("handler %v: name %q, want %q", tc.step, tc.step.GetName(), tc.name)
		}
	}
	if on.GetFailure().GetScript() != "echo failed\n" || len(on.GetFailure().GetPreconditions()) != 1 {
		t.Errorf("failure handler: %v", on.GetFailure())
	}
	if on.GetExit().GetChildDag() != "cleanup" || on.GetExit().GetChildParams() != "KEEP=1" {
		t.Errorf("exit handler: %v", on.GetExit())
	}
	if got := HandlerSteps(f.Dags[0]); len(got) != 5 || got[0].GetName() != "onInit" || got[4].GetName() != "onExit" {
		t.Errorf("HandlerSteps: %v", got)
	}
	if FindStep(f.Dags[0], "onExit") != on.GetExit() || FindStep(f.Dags[0], "main") != f.Dags[0].Steps[0] || FindStep(f.Dags[0], "onWait") != nil {
		t.Errorf("FindStep does not find the steps and handlers by name")
	}
	// A handler's run of a DAG that is neither in the file nor stored is
	// reported like a step's.
	_, err := Check("h.yaml", []byte("steps:\n  - name: a\n    command: x\nhandlerOn:\n  exit:\n    run: nowhere\n"), func(string) bool { return false })
	var problems Problems
	if !errors.As(err, &problems) || len(problems) != 1 || problems[0].Key != "handlerOn.exit.run" || problems[0].Line != 6 {
		t.Errorf("unknown child of a handler: %v", err)
	}
}

func TestBadControlKeys(t *testing.T) {
	const ok = "steps:\n  - name: ok\n    command: \"true\"\n"
	for _, tc := range []struct {
		name, text, key, message string
		line                     int
	}{
		{"condition without condition", "preconditions:\n  - expected: x\n" + ok, "preconditions[0].condition", "needs condition", 2},
		{"unknown condition key", "preconditions:\n  - condition: x\n    expect: y\n" + ok, "preconditions[0].expect", `did you mean "expected"?`, 3},
		{"bad regular expression", "precondition:\n  condition: $X\n  expected: \"re:[\"\n" + ok, "precondition.expected", "bad regular expression", 3},
		{"negate not a boolean", "preconditions:\n  - condition: x\n    negate: maybe\n" + ok, "preconditions[0].negate", "want true or false", 3},
		{"condition and command", "preconditions:\n  - condition: x\n    command: y\n" + ok, "preconditions[0].command", "command is another name", 3},
		{"empty condition", "preconditions: \"  \"\n" + ok, "preconditions", "an empty condition", 1},
		{"repeat mode unknown", ok + "    repeatPolicy:\n      repeat: sometimes\n", "steps[0].repeatPolicy.repeat", "want true, false, while or until", 5},
		{"while without a test", ok + "    repeatPolicy:\n      repeat: while\n", "steps[0].repeatPolicy", "needs a condition or an exitCode", 4},
		{"expected without condition", ok + "    repeatPolicy:\n      expected: done\n", "steps[0].repeatPolicy.expected", "needs a condition", 5},
		{"backoff of 1", ok + "    retryPolicy:\n      limit: 2\n      backoff: 1\n", "steps[0].retryPolicy.backoff", "greater than 1", 6},
		{"exit code out of range", ok + "    retryPolicy:\n      limit: 2\n      exitCode: [1, 300]\n", "steps[0].retryPolicy.exitCode[1]", "-1 to 255", 6},
		{"exit code not a number", ok + "    repeatPolicy:\n      exitCode: one\n", "steps[0].repeatPolicy.exitCode", "want an exit code", 5},
		{"exitCodes misspelt", ok + "    retryPolicy:\n      limit: 2\n      exitCodes: [1]\n", "steps[0].retryPolicy.exitCodes", `did you mean "exitCode"?`, 6},
		{"DAG retry on exit codes", "retry_policy:\n  limit: 1\n  exit_code: [1]\n" + ok, "retry_policy.exit_code", "exitCode is for a step's retryPolicy", 3},
		{"wait handler", ok + "handlerOn:\n  wait:\n    command: x\n", "handlerOn.wait", "not supported", 5},
		{"cancel and abort", ok + "handlerOn:\n  cancel:\n    command: x\n  abort:\n    command: y\n", "handlerOn.abort", "abort is another name", 7},
		{"exit in both spellings", ok + "handlerOn:\n  exit:\n    command: x\n  Exit:\n    command: y\n", "handlerOn.Exit", "given twice", 7},
		{"unknown handler", ok + "handlerOn:\n  sucess:\n    command: x\n", "handlerOn.sucess", `did you mean "success"?`, 5},
		{"handler with depends", ok + "handlerOn:\n  exit:\n    command: x\n    depends: ok\n", "handlerOn.exit.depends", "no depends", 7},
		{"handler without a command", ok + "handlerOn:\n  exit:\n    description: nothing\n", "handlerOn.exit", "needs one of command", 5},
		{"handler is a string", ok + "handlerOn:\n  exit: echo bye\n", "handlerOn.exit", "a handler is a step", 5},
		{"step named like a handler", "steps:\n  - name: onExit\n    command: x\nhandlerOn:\n  exit:\n    command: y\n", "steps[0].name", `"onExit" is the name of the handler on line 5`, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.text))
			var problems Problems
			if !errors.As(err, &problems) {
				t.Fatalf("Parse: %v, want problems", err)
			}
			if len(problems) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(problems), err)
			}
			p := problems[0]
			if p.Line != tc.line || p.Key != tc.key || !strings.Contains(p.Message, tc.message) {
				t.Errorf("got %s, want line %d key %q message containing %q", p.Error(), tc.line, tc.key, tc.message)
			}
		})
	}
}
