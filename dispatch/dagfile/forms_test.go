package dagfile

import (
	"errors"
	"strings"
	"testing"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// mustFail parses text that must be refused, and returns its problems.
func mustFail(t *testing.T, text string) Problems {
	t.Helper()
	f, err := Parse("bad.yaml", []byte(text))
	if err == nil {
		t.Fatalf("Parse accepted it: %d DAGs", len(f.Dags))
	}
	var problems Problems
	if !errors.As(err, &problems) {
		t.Fatalf("error %T %v, want Problems", err, err)
	}
	return problems
}

// wantProblem checks that the only problem is at line and key and holds
// message.
func wantProblem(t *testing.T, text string, line int, key, message string) {
	t.Helper()
	problems := mustFail(t, text)
	if len(problems) != 1 {
		t.Fatalf("got %d problems, want 1:\n%v", len(problems), problems)
	}
	p := problems[0]
	if p.Line != line || p.Key != key || !strings.Contains(p.Message, message) {
		t.Errorf("got  %s\nwant bad.yaml:%d: %s: …%s…", p.Error(), line, key, message)
	}
}

func stepNames(dag *daguhav1.DagSpec) []string {
	var names []string
	for _, s := range dag.GetSteps() {
		names = append(names, s.GetName())
	}
	return names
}

func TestStepsWithoutANameAreNamedAsDaguNamesThem(t *testing.T) {
	for _, tc := range []struct {
		name, steps string
		want        []string
	}{
		{"one-line steps", "  - echo hello\n  - npm test\n  - go build\n", []string{"cmd_1", "cmd_2", "cmd_3"}},
		{"named and unnamed", "  - setup.sh\n  - name: build\n    command: make all\n  - command: test.sh\n",
			[]string{"cmd_1", "build", "cmd_3"}},
		{"a name taken before counts up", "  - name: cmd_2\n    command: x\n  - echo b\n", []string{"cmd_2", "cmd_3"}},
		{"the id is the name", "  - id: fetch\n    command: curl x\n  - echo y\n", []string{"fetch", "cmd_2"}},
		{"by what the step does", "  - echo a\n  - script: echo b\n  - call: child\n  - run: child\n" +
			"  - command: python3\n    script: print(1)\n  - output: {A: 1}\n  - \"echo one\\necho two\\n\"\n",
			[]string{"cmd_1", "script_2", "dag_3", "dag_4", "script_5", "noop_6", "script_7"}},
		{"an explicit type", "  - type: command\n    command: x\n", []string{"command_1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := mustParse(t, "n.yaml", "steps:\n"+tc.steps+"---\nname: child\nsteps: [echo]\n")
			if got := stepNames(f.Dags[0]); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("names %v, want %v", got, tc.want)
			}
		})
	}
}

func TestOneLineStepsChainAndTakeDependsOnGeneratedNames(t *testing.T) {
	f := mustParse(t, "c.yaml", "steps:\n  - echo a\n  - echo b\n---\nname: g\ntype: graph\nsteps:\n  - git pull\n  - command: npm install\n    depends: cmd_1\n")
	assertDag(t, f.Dags[0], &daguhav1.DagSpec{Name: "c", SourceFile: "c.yaml", Steps: []*daguhav1.StepSpec{
		{Name: "cmd_1", Command: "echo a"},
		{Name: "cmd_2", Command: "echo b", Depends: []string{"cmd_1"}},
	}})
	if d := f.Dags[1].GetSteps()[1].GetDepends(); len(d) != 1 || d[0] != "cmd_1" {
		t.Errorf("depends %v", d)
	}
}

func TestCommandWrittenAsAListIsCommandsRunInTurn(t *testing.T) {
	f := mustParse(t, "l.yaml", `steps:
  - name: two
    command: [echo hello, echo world]
  - name: one
    command: [echo alone]
  - name: block
    command:
      - echo a: b
      - ""
      - 42
`)
	assertDag(t, f.Dags[0], &daguhav1.DagSpec{Name: "l", SourceFile: "l.yaml", Steps: []*daguhav1.StepSpec{
		{Name: "two", Commands: []string{"echo hello", "echo world"}},
		{Name: "one", Command: "echo alone", Depends: []string{"two"}},
		{Name: "block", Commands: []string{"echo a: b", "42"}, Depends: []string{"one"}},
	}})
	// A DAG that is just a command list too.
	f = mustParse(t, "top.yaml", "command: [echo a, echo b]\n")
	if s := f.Dags[0].GetSteps()[0]; len(s.GetCommands()) != 2 || s.GetCommand() != "" {
		t.Errorf("top-level command list: %v", s)
	}
	wantProblem(t, "steps:\n  - command: []\n", 2, "steps[0].command", "must not be empty")
}

func TestCommandWithAScriptIsItsInterpreter(t *testing.T) {
	f := mustParse(t, "i.yaml", "steps:\n  - name: py\n    command: python3 -u\n    script: |\n      print('hi')\n")
	if s := f.Dags[0].GetSteps()[0]; s.GetCommand() != "python3 -u" || s.GetScript() != "print('hi')\n" {
		t.Errorf("step %v", s)
	}
	wantProblem(t, "steps:\n  - command: [a, b]\n    script: x\n", 2, "steps[0].command", "one command line, not a list")
	wantProblem(t, "steps:\n  - script: x\n    run: child\n", 3, "steps[0].run", "script is already given")
}

func TestShellAtTheDagAndTheStep(t *testing.T) {
	f := mustParse(t, "s.yaml", `shell: bash -o "pipefail"
steps:
  - name: default
    command: echo
  - name: own
    shell: [zsh, -e]
    command: echo
  - name: nix
    shell: nix-shell
    shellPackages: [python3, jq]
    command: python3 -V
`)
	dag := f.Dags[0]
	if strings.Join(dag.GetShell(), "|") != "bash|-o|pipefail" {
		t.Errorf("DAG shell %q", dag.GetShell())
	}
	steps := dag.GetSteps()
	if len(steps[0].GetShell()) != 0 || strings.Join(steps[1].GetShell(), "|") != "zsh|-e" ||
		strings.Join(steps[2].GetShellPackages(), "|") != "python3|jq" {
		t.Errorf("steps %v", steps)
	}
	wantProblem(t, "steps:\n  - command: x\n    shellPackages: [jq]\n", 3, "steps[0].shellPackages", "give shell: nix-shell")
	wantProblem(t, "shell: \"bash 'x\"\nsteps: [echo]\n", 1, "shell", "quote at offset 5 is not closed")
	wantProblem(t, "shell: []\nsteps: [echo]\n", 1, "shell", "must not be empty")
}

func TestStepIds(t *testing.T) {
	f := mustParse(t, "id.yaml", `type: graph
steps:
  - name: Fetch the data
    id: fetch
    command: curl x
  - id: parse
    command: jq .
    depends: fetch
`)
	steps := f.Dags[0].GetSteps()
	if steps[0].GetId() != "fetch" || steps[1].GetName() != "parse" || steps[1].GetDepends()[0] != "Fetch the data" {
		t.Errorf("steps %v", steps)
	}
	for _, tc := range []struct {
		name, text string
		line       int
		key, msg   string
	}{
		{"a dot", "steps:\n  - id: my.step\n    command: x\n", 2, "steps[0].id", "letters, digits, '_' and '-'"},
		{"a digit first", "steps:\n  - id: 1st\n    command: x\n", 2, "steps[0].id", "starting with a letter"},
		{"reserved", "steps:\n  - id: Stdout\n    command: x\n", 2, "steps[0].id", "reserved word"},
		{"too long", "steps:\n  - id: " + strings.Repeat("a", 41) + "\n    command: x\n", 2, "steps[0].id", "at most 40 bytes"},
		{"twice", "steps:\n  - {id: a, name: x, command: x}\n  - {id: a, name: y, command: x}\n", 3, "steps[1].id", `step id "a" is already used by steps[0]`},
		{"another step's name", "steps:\n  - {name: a, command: x}\n  - {id: a, name: b, command: x}\n", 3, "steps[1].id", `step id "a" is the name of steps[0]`},
	} {
		t.Run(tc.name, func(t *testing.T) { wantProblem(t, tc.text, tc.line, tc.key, tc.msg) })
	}
}

func TestOutputWrittenAsAMap(t *testing.T) {
	f := mustParse(t, "o.yaml", `steps:
  - id: inspect
    command: cat build.json
    output:
      version: {from: stdout, decode: json, select: .version}
      url: {from: stdout, decode: json, select: '.artifact["download url"]'}
      notes: {from: file, path: notes.txt}
      label: "ver - ${VERSION}"
      counts: [1, 2]
      plain: {a: 1}
      literal: {value: {from: here}}
`)
	got := f.Dags[0].GetSteps()[0].GetOutputEntries()
	want := []*daguhav1.StepOutputEntry{
		{Name: "version", From: "stdout", Decode: "json", Select: ".version"},
		{Name: "url", From: "stdout", Decode: "json", Select: `.artifact["download url"]`},
		{Name: "notes", From: "file", Path: "notes.txt"},
		{Name: "label", ValueJson: `"ver - ${VERSION}"`},
		{Name: "counts", ValueJson: `[1,2]`},
		{Name: "plain", ValueJson: `{"a":1}`},
		{Name: "literal", ValueJson: `{"from":"here"}`},
	}
	assertDag(t, &daguhav1.DagSpec{Steps: []*daguhav1.StepSpec{{OutputEntries: got}}}, &daguhav1.DagSpec{Steps: []*daguhav1.StepSpec{{OutputEntries: want}}})
	for _, tc := range []struct {
		name, entry string
		key, msg    string
	}{
		{"from what", "{from: env}", "steps[0].output.v.from", "want stdout, stderr or file"},
		{"file without a path", "{from: file}", "steps[0].output.v.path", "needs a path"},
		{"select without decode", "{from: stdout, select: .a}", "steps[0].output.v.select", "needs decode: json or yaml"},
		{"bad select", "{from: stdout, decode: json, select: 'a.b'}", "steps[0].output.v.select", "bad select path"},
		{"value and from", "{value: 1, from: stdout}", "steps[0].output.v.value", "cannot be used together"},
		{"unknown decode", "{from: stdout, decode: xml}", "steps[0].output.v.decode", "want text, json or yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, "steps:\n  - command: x\n    output:\n      v: "+tc.entry+"\n", 4, tc.key, tc.msg)
		})
	}
}

func TestDirAndWorkingDirAreKeptForTheWorker(t *testing.T) {
	f := mustParse(t, "d.yaml", "workingDir: ~/work\nsteps:\n  - name: a\n    dir: ~/data\n    command: ls\n  - name: b\n    working_dir: sub\n    command: ls\n")
	dag := f.Dags[0]
	if dag.GetWorkingDir() != "~/work" || dag.GetSteps()[0].GetDir() != "~/data" || dag.GetSteps()[1].GetDir() != "sub" {
		t.Errorf("dag %v", dag)
	}
	wantProblem(t, "steps:\n  - dir: a\n    workingDir: b\n    command: ls\n", 3, "steps[0].workingDir", "dir is already given")
}

func TestKeysThatShapeHowStepsRun(t *testing.T) {
	f := mustParse(t, "k.yaml", `delaySec: 2
maxActiveSteps: 3
maxOutputSize: 4096
maxCleanUpTimeSec: 30
dotenv: [.env.local, /etc/app.env]
logDir: /var/log/dagu
logOutput: merged
histRetentionDays: 7
skipIfSuccessful: true
labels: "env=prod, team=data"
tags: [nightly, {tier: 1}]
steps:
  - name: a
    command: make
    stdout: out.log
    stderr: /tmp/err.log
    logOutput: separate
    signalOnStop: INT
    continueOn:
      exitCode: [3, 4]
      output: [WARN, "re:^skip \\d+$"]
      markSuccess: true
  - name: b
    command: x
    continueOn: skipped
  - name: c
    command: x
    continueOn: {exitCode: 1}
`)
	assertDag(t, f.Dags[0], &daguhav1.DagSpec{
		Name: "k", SourceFile: "k.yaml", DelaySec: 2, MaxActiveSteps: 3, MaxOutputSize: 4096, MaxCleanUpTimeSec: 30,
		Dotenv: []string{".env.local", "/etc/app.env"}, SkipIfSuccessful: true,
		Labels: []string{"env=prod", "team=data", "nightly", "tier=1"},
		Steps: []*daguhav1.StepSpec{
			{Name: "a", Command: "make", Stdout: "out.log", Stderr: "/tmp/err.log", SignalOnStop: "SIGINT",
				ContinueOn: &daguhav1.ContinueOn{ExitCodes: []int32{3, 4}, Output: []string{"WARN", `re:^skip \d+$`}, MarkSuccess: true}},
			{Name: "b", Command: "x", Depends: []string{"a"}, ContinueOn: &daguhav1.ContinueOn{Skipped: true}},
			{Name: "c", Command: "x", Depends: []string{"b"}, ContinueOn: &daguhav1.ContinueOn{ExitCodes: []int32{1}}},
		},
	})
	for _, tc := range []struct {
		name, text string
		line       int
		key, msg   string
	}{
		{"output too large to keep", "maxOutputSize: 2000000\nsteps: [x]\n", 1, "maxOutputSize", "replicated state"},
		{"unknown signal", "steps:\n  - command: x\n    signalOnStop: SIGNOPE\n", 3, "steps[0].signalOnStop", "unknown signal"},
		{"same stdout and stderr", "steps:\n  - command: x\n    stdout: a.log\n    stderr: a.log\n", 4, "steps[0].stderr", "cannot be the same file"},
		{"bad logOutput", "logOutput: both\nsteps: [x]\n", 1, "logOutput", "want separate or merged"},
		{"bad continueOn word", "steps:\n  - command: x\n    continueOn: always\n", 3, "steps[0].continueOn", "want failed, skipped"},
		{"bad continueOn regexp", "steps:\n  - command: x\n    continueOn: {output: 're:('}\n", 3, "steps[0].continueOn.output", "bad regular expression"},
		{"exit code out of range", "steps:\n  - command: x\n    continueOn: {exitCode: [1, 300]}\n", 3, "steps[0].continueOn.exitCode[1]", "an exit code is -1 to 255"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantProblem(t, tc.text, tc.line, tc.key, tc.msg) })
	}
}

func TestDefaultsApplyToEveryStepThatDoesNotSetTheKey(t *testing.T) {
	f := mustParse(t, "def.yaml", `defaults:
  timeoutSec: 60
  retry_policy: {limit: 2, intervalSec: 5}
  signalOnStop: SIGINT
  continueOn: {failure: true}
  env:
    - LEVEL: info
steps:
  - echo a
  - name: own
    command: echo b
    timeoutSec: 0
    env: [MINE=1]
    continueOn: {failure: false}
`)
	retry := &daguhav1.RetryPolicy{Limit: 2, IntervalSec: 5}
	assertDag(t, f.Dags[0], &daguhav1.DagSpec{Name: "def", SourceFile: "def.yaml", Steps: []*daguhav1.StepSpec{
		{Name: "cmd_1", Command: "echo a", TimeoutSec: 60, RetryPolicy: retry, SignalOnStop: "SIGINT", ContinueOnFailure: true,
			Env: []*daguhav1.EnvVar{{Name: "LEVEL", Value: "info"}}},
		{Name: "own", Command: "echo b", Depends: []string{"cmd_1"}, RetryPolicy: retry, SignalOnStop: "SIGINT",
			Env: []*daguhav1.EnvVar{{Name: "LEVEL", Value: "info"}, {Name: "MINE", Value: "1"}}},
	}})
	// A bad default is reported once, not once per step.
	wantProblem(t, "defaults:\n  timeoutSec: soon\nsteps: [a, b, c]\n", 2, "steps[0].timeoutSec", "want a whole number")
	wantProblem(t, "defaults:\n  command: x\nsteps: [a]\n", 2, "defaults.command", `unknown key "command"`)
	// Defaults copied into every step must not make a small file a huge DAG.
	env := strings.Repeat("    - A=1\n", 3000)
	steps := strings.Repeat("  - a\n", 1000)
	wantProblem(t, "defaults:\n  env:\n"+env+"steps:\n"+steps, 2, "defaults", "would make")
}

func TestParamsWrittenAsASchema(t *testing.T) {
	f := mustParse(t, "p.yaml", `params:
  type: object
  properties:
    region:
      type: string
      default: eu
      enum: [eu, us]
    count:
      type: integer
      minimum: 1
      maximum: 10
      default: 3
    name:
      type: string
      minLength: 2
      maxLength: 8
      pattern: "^[a-z]+$"
  required: [name]
steps: [echo]
---
name: rich
params:
  - name: DAY
    type: string
    required: true
  - name: N
    type: number
    default: 1.5
  - LEGACY: kept
steps: [echo]
`)
	dag := f.Dags[0]
	assertDag(t, &daguhav1.DagSpec{Params: dag.GetParams(), ParamRules: dag.GetParamRules()}, &daguhav1.DagSpec{
		Params: []*daguhav1.Param{{Name: "region", Value: "eu"}, {Name: "count", Value: "3"}},
		ParamRules: []*daguhav1.ParamRule{
			{Name: "region", Type: "string", Enum: []string{"eu", "us"}, MinLength: -1, MaxLength: -1},
			{Name: "count", Type: "integer", HasMinimum: true, Minimum: 1, HasMaximum: true, Maximum: 10, MinLength: -1, MaxLength: -1},
			{Name: "name", Type: "string", Required: true, MinLength: 2, MaxLength: 8, Pattern: "^[a-z]+$"},
		},
	})
	rich := f.Dags[1]
	if len(rich.GetParams()) != 2 || rich.GetParams()[0].GetName() != "N" || rich.GetParams()[1].GetName() != "LEGACY" ||
		len(rich.GetParamRules()) != 2 || !rich.GetParamRules()[0].GetRequired() {
		t.Errorf("rich params %v rules %v", rich.GetParams(), rich.GetParamRules())
	}

	for _, tc := range []struct {
		given, err string
	}{
		{"name=abc", ""},
		{"name=abc count=10 region=us", ""},
		{"", "param name is required"},
		{"name=Abc", "param name: must match"},
		{"name=a", "at least 2 characters"},
		{"name=abcdefghi", "at most 8 characters"},
		{"name=abc count=x", "param count: want an integer"},
		{"name=abc count=11", "must be at most 10"},
		{"name=abc count=0", "must be at least 1"},
		{"name=abc region=asia", "want one of eu, us"},
	} {
		_, err := ResolveParams(dag, tc.given)
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("params %q: error %v, want %q", tc.given, err, tc.err)
		}
	}

	wantProblem(t, "params:\n  schema: ./params.json\nsteps: [x]\n", 2, "params", "schema file are not supported")
	wantProblem(t, "params:\n  type: object\n  properties:\n    n: {type: array}\nsteps: [x]\n", 4, "params.properties.n.type", "want string, integer, number or boolean")
	wantProblem(t, "params:\n  type: object\n  properties:\n    n: {type: integer, default: x}\nsteps: [x]\n", 4, "params.properties.n.default", "does not pass its own checks")
	wantProblem(t, "params:\n  type: object\n  properties:\n    n: {format: date}\nsteps: [x]\n", 4, "params.properties.n.format", `unknown key "format"`)
}

// A DAG that writes depends but no type was written for Dagu 1.x, whose
// default was graph (current Dagu refuses depends in a chain): it is a
// graph, where a chain around its depends would make a cycle.
func TestDependsWithoutATypeMakeAGraph(t *testing.T) {
	f := mustParse(t, "g.yaml", "steps:\n  - name: merge\n    command: x\n    depends: validate\n  - name: check\n    command: x\n  - name: validate\n    command: x\n    depends: check\n")
	if d := f.Dags[0].GetSteps()[1].GetDepends(); len(d) != 0 {
		t.Errorf("check depends on %v; want nothing, as in a graph", d)
	}
	// With type: chain written, the steps chain around their depends.
	f = mustParse(t, "c.yaml", "type: chain\nsteps:\n  - name: a\n    command: x\n  - name: b\n    command: x\n  - name: c\n    command: x\n    depends: a\n")
	if d := f.Dags[0].GetSteps()[1].GetDepends(); len(d) != 1 || d[0] != "a" {
		t.Errorf("b depends on %v", d)
	}
}
