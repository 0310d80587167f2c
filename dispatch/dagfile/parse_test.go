package dagfile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// mustParse parses text that must be a valid DAG file.
func mustParse(t *testing.T, path, text string) *File {
	t.Helper()
	f, err := Parse(path, []byte(text))
	if err != nil {
		t.Fatalf("Parse(%s): %v", path, err)
	}
	return f
}

func assertDag(t *testing.T, got, want *daguhav1.DagSpec) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("DAG %q:\n got: %s\nwant: %s", want.GetName(), prototext.Format(got), prototext.Format(want))
	}
}

// The seed's "Route Tasks to Workers" example, exactly as written there.
const seedExample = `name: distributed-pipeline
steps:
  # This task requires GPU
  - name: train-model
    run: train-model
    workerSelector:
      gpu: "true"

---
name: train-model
command: python train_model.py
workerSelector:
  gpu: "true"
steps:
  - name: train-model
    command: python train_model.py
`

func TestSeedExampleParsesToARunStepAndAGPULocalDag(t *testing.T) {
	f := mustParse(t, "dags/distributed-pipeline.yaml", seedExample)
	if len(f.Dags) != 2 {
		t.Fatalf("got %d DAGs, want 2", len(f.Dags))
	}
	assertDag(t, f.Dags[0], &daguhav1.DagSpec{
		Name:       "distributed-pipeline",
		SourceFile: "dags/distributed-pipeline.yaml",
		Steps: []*daguhav1.StepSpec{{
			Name:           "train-model",
			ChildDag:       "train-model",
			WorkerSelector: map[string]string{"gpu": "true"},
		}},
	})
	assertDag(t, f.Dags[1], &daguhav1.DagSpec{
		Name:           "train-model",
		SourceFile:     "dags/distributed-pipeline.yaml",
		WorkerSelector: map[string]string{"gpu": "true"},
		Steps:          []*daguhav1.StepSpec{{Name: "train-model", Command: "python train_model.py"}},
	})
	// The child is a document of the file: known without asking.
	if err := f.CheckChildren(func(string) bool { return false }); err != nil {
		t.Errorf("CheckChildren: %v", err)
	}

	stored := f.Stored()
	sum := sha256.Sum256([]byte(seedExample))
	if stored.GetContentHash() != hex.EncodeToString(sum[:]) || stored.GetSource() != seedExample {
		t.Errorf("stored source/hash = %.20q/%s, want the text and its SHA-256", stored.GetSource(), stored.GetContentHash())
	}
	if stored.GetSpec() != f.Dags[0] || len(stored.GetLocalDags()) != 1 || stored.GetLocalDags()[0] != f.Dags[1] {
		t.Errorf("stored spec/local DAGs are not Dags[0] and Dags[1:]")
	}
	if _, err := proto.Marshal(stored); err != nil {
		t.Errorf("marshal: %v", err)
	}
}

func TestDiamondDependsOnBothBranches(t *testing.T) {
	f := mustParse(t, "diamond.yml", `
steps:
  - name: a
    command: echo a
  - name: b
    command: echo b
    depends: a
  - name: c
    command: echo c
    depends: [a]
  - name: d
    command: echo d
    depends:
      - b
      - c
`)
	assertDag(t, f.Dags[0], &daguhav1.DagSpec{
		Name:       "diamond",
		SourceFile: "diamond.yml",
		Steps: []*daguhav1.StepSpec{
			{Name: "a", Command: "echo a"},
			{Name: "b", Command: "echo b", Depends: []string{"a"}},
			{Name: "c", Command: "echo c", Depends: []string{"a"}},
			{Name: "d", Command: "echo d", Depends: []string{"b", "c"}},
		},
	})
}

const everyKeyCamel = `name: every-key
description: all of it
params: "first KEY=default"
env:
  - LOG_LEVEL=debug
  - DATA_DIR: /data
schedule:
  - "0 2 * * *"
  - "TZ=Europe/Berlin 30 0 6 * * 1-5"
workerSelector:
  region: eu-west-1
  gpu: true
maxActiveRuns: 2
timeoutSec: 3600
catchup: all
catchupWindow: 6h
tags: [etl, nightly]
group: data
type: graph
steps:
  - name: extract
    description: pull the data
    command: [python, extract.py, --since, yesterday]
    dir: /srv/etl
    env:
      TARGET: staging
    output: ROWS
    retryPolicy:
      limit: 3
      intervalSec: 10
    timeoutSec: 600
    continueOn:
      failure: true
      skipped: true
    tags: [io]
  - name: load
    script: |
      echo loading
    depends: extract
    type: command
  - name: report
    run: report-dag
    params:
      DAY: monday
      NOTE: two words
    workerSelector:
      gpu: "true"
    depends: [load]
  - name: audit
    call: audit-dag
    params: "A=1 B='x y'"
`

// Every key, camelCase where it has two words.
var everyKeyWant = &daguhav1.DagSpec{
	Name:        "every-key",
	SourceFile:  "every.yaml",
	Description: "all of it",
	Params:      []*daguhav1.Param{{Value: "first"}, {Name: "KEY", Value: "default"}},
	Env:         []*daguhav1.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}, {Name: "DATA_DIR", Value: "/data"}},
	Schedule:    []string{"0 2 * * *", "CRON_TZ=Europe/Berlin 30 0 6 * * 1-5"},
	WorkerSelector: map[string]string{
		"region": "eu-west-1",
		"gpu":    "true",
	},
	MaxActiveRuns:    2,
	TimeoutSec:       3600,
	Catchup:          "all",
	CatchupWindowSec: 6 * 3600,
	Steps: []*daguhav1.StepSpec{
		{
			Name:              "extract",
			Description:       "pull the data",
			Command:           "python extract.py --since yesterday",
			Dir:               "/srv/etl",
			Env:               []*daguhav1.EnvVar{{Name: "TARGET", Value: "staging"}},
			Output:            "ROWS",
			RetryPolicy:       &daguhav1.RetryPolicy{Limit: 3, IntervalSec: 10},
			TimeoutSec:        600,
			ContinueOnFailure: true,
			ContinueOnSkipped: true,
		},
		{Name: "load", Script: "echo loading\n", Depends: []string{"extract"}},
		{
			Name:           "report",
			ChildDag:       "report-dag",
			ChildParams:    `DAY=monday NOTE="two words"`,
			WorkerSelector: map[string]string{"gpu": "true"},
			Depends:        []string{"load"},
		},
		{Name: "audit", ChildDag: "audit-dag", ChildParams: "A=1 B='x y'"},
	},
}

func TestEveryKeyInCamelCase(t *testing.T) {
	f := mustParse(t, "every.yaml", everyKeyCamel)
	assertDag(t, f.Dags[0], everyKeyWant)
}

func TestEveryKeyInSnakeCaseMeansTheSame(t *testing.T) {
	snake := everyKeyCamel
	for _, camel := range []string{"workerSelector", "maxActiveRuns", "timeoutSec", "catchupWindow", "retryPolicy", "intervalSec", "continueOn"} {
		snake = strings.ReplaceAll(snake, camel+":", snakeCase(camel)+":")
	}
	if strings.Contains(snake, "workerSelector") || !strings.Contains(snake, "interval_sec:") {
		t.Fatalf("the snake_case file still has camelCase keys:\n%s", snake)
	}
	f := mustParse(t, "every.yaml", snake)
	assertDag(t, f.Dags[0], everyKeyWant)
}

func TestParamsAndEnvInEveryForm(t *testing.T) {
	want := []*daguhav1.Param{{Name: "A", Value: "1"}, {Name: "B", Value: "two words"}}
	for name, params := range map[string]string{
		"string":               `"A=1 B='two words'"`,
		"list of strings":      "[A=1, B=two words]",
		"list of maps":         "[{A: 1}, {B: two words}]",
		"map":                  "{A: 1, B: two words}",
		"block list of maps":   "\n  - A: 1\n  - B: two words",
		"map via merge anchor": "\n  <<: {A: 1, B: two words}",
	} {
		f, err := Parse("p.yaml", []byte("params: "+params+"\nsteps:\n  - {name: s, command: 'true'}\n"))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		got := f.Dags[0].GetParams()
		if len(got) != len(want) || !proto.Equal(got[0], want[0]) || !proto.Equal(got[1], want[1]) {
			t.Errorf("%s: params = %v, want %v", name, got, want)
		}
	}

	f := mustParse(t, "e.yaml", "env: {B: 2, A: 1}\nsteps:\n  - {name: s, command: 'true', env: [X=a=b, 'Y=']}\n")
	env := f.Dags[0].GetEnv()
	if len(env) != 2 || env[0].GetName() != "B" || env[1].GetName() != "A" {
		t.Errorf("map env lost its order: %v", env)
	}
	stepEnv := f.Dags[0].GetSteps()[0].GetEnv()
	if len(stepEnv) != 2 || stepEnv[0].GetValue() != "a=b" || stepEnv[1].GetValue() != "" {
		t.Errorf("step env = %v, want X=a=b and an empty Y", stepEnv)
	}
}

func TestChainTypeMakesEachStepWaitForThePreviousOne(t *testing.T) {
	f := mustParse(t, "chain.yaml", `type: chain
steps:
  - {name: a, command: "true"}
  - {name: b, command: "true"}
  - {name: c, command: "true", depends: a}
  - {name: d, command: "true"}
`)
	var got []string
	for _, s := range f.Dags[0].GetSteps() {
		got = append(got, s.GetName()+"<"+strings.Join(s.GetDepends(), ","))
	}
	if want := "a< b<a c<a d<c"; strings.Join(got, " ") != want {
		t.Errorf("depends = %q, want %q", strings.Join(got, " "), want)
	}
	// chain is the default; graph leaves steps without depends independent.
	for doc, want := range map[string]string{
		"steps:\n  - {name: a, command: x}\n  - {name: b, command: x}\n":              "a< b<a",
		"type: graph\nsteps:\n  - {name: a, command: x}\n  - {name: b, command: x}\n": "a< b<",
		"steps:\n  - {name: a, command: x}\n  - {name: b, command: x, depends: []}\n": "a< b<",
	} {
		got = nil
		for _, s := range mustParse(t, "d.yaml", doc).Dags[0].GetSteps() {
			got = append(got, s.GetName()+"<"+strings.Join(s.GetDepends(), ","))
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%q: depends = %q, want %q", doc, strings.Join(got, " "), want)
		}
	}
}

func TestADagWithOnlyACommandIsOneStep(t *testing.T) {
	f := mustParse(t, "one.yaml", "command: echo hi\n")
	assertDag(t, f.Dags[0], &daguhav1.DagSpec{Name: "one", SourceFile: "one.yaml",
		Steps: []*daguhav1.StepSpec{{Name: "one", Command: "echo hi"}}})
}

func TestCheckChildrenReportsUnknownDagsAtTheRunKey(t *testing.T) {
	f := mustParse(t, "parent.yaml", `steps:
  - name: local
    run: helper
  - name: stored
    call: nightly
  - name: missing
    depends: [local]
    run: nowhere
---
name: helper
steps:
  - name: deeper
    call: also-missing
`)
	stored := map[string]bool{"nightly": true}
	err := f.CheckChildren(func(name string) bool { return stored[name] })
	var problems Problems
	if !errors.As(err, &problems) {
		t.Fatalf("CheckChildren = %v, want Problems", err)
	}
	want := []Problem{
		{File: "parent.yaml", Line: 8, Key: "steps[2].run"},
		{File: "parent.yaml", Line: 13, Key: "steps[0].call"},
	}
	if len(problems) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(problems), len(want), err)
	}
	for i, w := range want {
		if p := problems[i]; p.File != w.File || p.Line != w.Line || p.Key != w.Key || !strings.Contains(p.Message, "unknown DAG") {
			t.Errorf("problem %d = %+v, want %+v with unknown DAG", i, p, w)
		}
	}
	if !strings.Contains(problems[0].Message, `"nowhere"`) {
		t.Errorf("message %q does not name the DAG", problems[0].Message)
	}
	stored["nowhere"], stored["also-missing"] = true, true
	if err := f.CheckChildren(func(name string) bool { return stored[name] }); err != nil {
		t.Errorf("with every child stored: %v", err)
	}
}

func TestProblemErrorNamesFileLineAndKey(t *testing.T) {
	p := Problem{File: "a.yaml", Line: 3, Key: "steps[0].depends", Message: `unknown step "x"`}
	if got, want := p.Error(), `a.yaml:3: steps[0].depends: unknown step "x"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	ps := Problems{p, {File: "a.yaml", Line: 1, Message: "empty file"}}
	if got, want := ps.Error(), "a.yaml:3: steps[0].depends: unknown step \"x\"\na.yaml:1: empty file"; got != want {
		t.Errorf("Problems.Error() = %q, want %q", got, want)
	}
}

// A file with several mistakes gets all of them, in line order.
func TestEveryProblemIsReportedInLineOrder(t *testing.T) {
	_, err := Parse("many.yaml", []byte(`name: many
schedule: "61 * * * *"
maxActiveRuns: -1
steps:
  - name: a
    command: "true"
    depends: [b, ghost]
  - name: b
    command: "true"
    depends: a
  - name: a
    output: 9lives
`))
	var problems Problems
	if !errors.As(err, &problems) {
		t.Fatalf("Parse = %v, want Problems", err)
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.Key)
	}
	// Line 7's depends key holds both the unknown step and the cycle (a -> b -> a).
	want := []string{"schedule", "maxActiveRuns", "steps[0].depends", "steps[0].depends", "steps[2]", "steps[2].name", "steps[2].output"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("keys = %v, want %v\n%v", got, want, err)
	}
	for i := 1; i < len(problems); i++ {
		if problems[i].Line < problems[i-1].Line {
			t.Errorf("problems out of line order:\n%v", err)
		}
	}
}

func TestAnchorsAliasesAndMergeKeys(t *testing.T) {
	f := mustParse(t, "etl.yaml", `name: etl
type: chain
steps:
  - &base
    name: extract
    command: [python, extract.py]
    output: ROWS
    retry_policy: &retry {limit: 2, interval_sec: 5}
  - <<: *base
    name: load
    command: null
    script: echo $ROWS
    output: LOADED
  - name: child
    call: report
    retryPolicy: *retry
    params: {WHO: "a b", N: 3}
---
name: report
steps:
  - {name: r, command: echo report}
`)
	retry := &daguhav1.RetryPolicy{Limit: 2, IntervalSec: 5}
	assertDag(t, f.Dags[0], &daguhav1.DagSpec{
		Name:       "etl",
		SourceFile: "etl.yaml",
		Steps: []*daguhav1.StepSpec{
			{Name: "extract", Command: "python extract.py", Output: "ROWS", RetryPolicy: retry},
			{Name: "load", Script: "echo $ROWS", Output: "LOADED", RetryPolicy: retry, Depends: []string{"extract"}},
			{Name: "child", ChildDag: "report", ChildParams: `WHO="a b" N=3`, RetryPolicy: retry, Depends: []string{"load"}},
		},
	})
}

func TestCheckReportsChildrenWithTheOtherProblems(t *testing.T) {
	_, err := Check("both.yaml", []byte("steps:\n  - name: a\n    command: echo\n    depends: nowhere\n  - name: b\n    run: missing\n"), nil)
	var problems Problems
	if !errors.As(err, &problems) || len(problems) != 2 || problems[0].Line != 4 || problems[1].Line != 6 || problems[1].Key != "steps[1].run" {
		t.Fatalf("problems %v", err)
	}
	if f, err := Check("ok.yaml", []byte("steps:\n  - name: b\n    run: stored\n"), func(n string) bool { return n == "stored" }); err != nil || f == nil {
		t.Fatalf("a known child: %v", err)
	}
}
