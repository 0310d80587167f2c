package dagfile

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Each bad file has exactly one mistake, reported at its line and key.
func TestBadDagFiles(t *testing.T) {
	const ok = "  - name: ok\n    command: \"true\"\n" // a valid step to append
	for _, tc := range []struct {
		name    string
		path    string // bad.yaml unless set
		text    string
		line    int
		key     string
		message string // a part of the message
	}{
		{"empty file", "", "", 1, "", "empty file"},
		{"only comments", "", "# nothing here\n", 1, "", "empty file"},
		{"not UTF-8", "", "name: \xff\n", 1, "", "not UTF-8"},
		// yaml.v3 places a parser error at the start of the collection it was reading.
		{"YAML syntax error", "", "steps:\n  - name: a\n   command: x\n", 2, "", "invalid YAML: did not find expected '-' indicator"},
		{"YAML scanner error", "", "steps:\n  - name: a\n    command: x\n     y: z\n", 4, "", "invalid YAML: mapping values are not allowed"},
		{"unknown anchor", "", "steps:\n  - name: a\n    command: *cmd\n", 3, "", "invalid YAML: unknown anchor 'cmd' referenced"},
		{"syntax error in a later document", "", "steps:\n" + ok + "---\nname: [\n", 5, "", "invalid YAML"},
		{"document is a list", "", "- name: a\n  command: x\n", 1, "", "a DAG must be a map"},
		{"later document is a string", "", "steps:\n" + ok + "---\njust text\n", 5, "", "a DAG must be a map"},
		{"later document without a name", "", "steps:\n" + ok + "---\nsteps:\n" + ok, 5, "name", "needs a name"},
		{"duplicate DAG name", "", "name: a\nsteps:\n" + ok + "---\nname: b\nsteps:\n" + ok + "---\nname: a\nsteps:\n" + ok,
			11, "name", `DAG name "a" is already used in this file (line 1)`},
		{"second document named like the file", "dags/main.yaml", "steps:\n" + ok + "---\nname: main\nsteps:\n" + ok,
			5, "name", `DAG name "main" is already used`},
		{"bad DAG name", "", "name: my dag\nsteps:\n" + ok, 1, "name", `DAG name "my dag": must be 1-128 letters`},
		{"DAG name with a leading dash", "", "name: -x\nsteps:\n" + ok, 1, "name", `DAG name "-x": must be 1-128 letters`},
		{"file name is no DAG name", "dags/my dag.yaml", "steps:\n" + ok, 1, "name", `the file name cannot be one: DAG name "my dag"`},
		{"no steps", "", "name: a\ndescription: nothing\n", 1, "steps", "needs steps"},
		{"empty steps", "", "steps: []\n", 1, "steps", "at least one step"},
		{"steps is a map", "", "steps:\n  a:\n    command: x\n", 2, "steps", "want a list of steps, got a map"},
		{"unknown top-level key", "", "onFailure:\n  command: x\nsteps:\n" + ok, 1, "onFailure", `unknown key "onFailure"`},
		{"misspelt key gets a suggestion", "", "workerSelecter: {gpu: x}\nsteps:\n" + ok, 1, "workerSelecter", `did you mean "workerSelector"?`},
		{"shortened key gets a suggestion", "", "timeout: 5\nsteps:\n" + ok, 1, "timeout", `did you mean "timeoutSec"?`},
		{"unknown step key", "", "steps:\n  - name: a\n    command: x\n    onlyIf: [x]\n", 4, "steps[0].onlyIf", `unknown key "onlyIf"`},
		{"unknown retryPolicy key", "", "steps:\n  - name: a\n    command: x\n    retryPolicy:\n      limit: 2\n      jitter: 2\n",
			6, "steps[0].retryPolicy.jitter", `unknown key "jitter"`},
		{"key in both spellings", "", "timeoutSec: 5\nsteps:\n" + ok + "timeout_sec: 6\n", 5, "timeout_sec", `given twice (first as "timeoutSec" on line 1)`},
		{"map where a string is expected", "", "description:\n  text: x\nsteps:\n" + ok, 2, "description", "want a string, got a map"},
		{"list where a command is expected", "", "steps:\n  - name: a\n    command: [echo, [x]]\n", 3, "steps[0].command[1]", "want a command line, got a list"},
		{"string where a map is expected", "", "steps:\n  - name: a\n    command: x\n    retryPolicy: 3\n", 4, "steps[0].retryPolicy", "want a map"},
		{"string where a number is expected", "", "maxActiveRuns: many\nsteps:\n" + ok, 1, "maxActiveRuns", `want a whole number, got "many"`},
		{"fraction where a whole number is expected", "", "timeoutSec: 1.5\nsteps:\n" + ok, 1, "timeoutSec", `want a whole number, got "1.5"`},
		{"map where a number is expected", "", "timeoutSec: {s: 1}\nsteps:\n" + ok, 1, "timeoutSec", "want a whole number, got a map"},
		{"negative maxActiveRuns", "", "max_active_runs: -2\nsteps:\n" + ok, 1, "max_active_runs", "must not be negative"},
		{"queue name", "", "queue: ../x\nsteps:\n" + ok, 1, "queue", `queue name "../x": must be 1-128 letters`},
		{"negative DAG timeout", "", "timeoutSec: -5\nsteps:\n" + ok, 1, "timeoutSec", "must not be negative"},
		{"negative step timeout", "", "steps:\n  - name: a\n    command: x\n    timeout_sec: -1\n", 4, "steps[0].timeout_sec", "must not be negative"},
		{"negative retry limit", "", "steps:\n  - name: a\n    command: x\n    retryPolicy: {limit: -1}\n", 4, "steps[0].retryPolicy.limit", "must not be negative"},
		{"negative retry interval", "", "steps:\n  - name: a\n    command: x\n    retry_policy:\n      interval_sec: -3\n",
			5, "steps[0].retry_policy.interval_sec", "must not be negative"},
		{"maxActiveRuns too large", "", "maxActiveRuns: 4294967296\nsteps:\n" + ok, 1, "maxActiveRuns", "must be at most 4294967295"},
		{"continueOn failure not a bool", "", "steps:\n  - name: a\n    command: x\n    continueOn: {failure: sometimes}\n",
			4, "steps[0].continueOn.failure", "want true or false"},
		{"bad cron expression", "", "schedule: \"61 * * * *\"\nsteps:\n" + ok, 1, "schedule", "above maximum (59)"},
		{"bad cron expression in a list", "", "schedule:\n  - \"0 * * * *\"\n  - \"* * *\"\nsteps:\n" + ok, 3, "schedule[1]", "expected 5 to 6 fields"},
		{"bad time zone", "", "schedule: CRON_TZ=Mars/Olympus 0 * * * *\nsteps:\n" + ok, 1, "schedule", `unknown time zone "Mars/Olympus"`},
		{"schedule map with an unknown kind", "", "schedule:\n  begin: \"0 8 * * *\"\nsteps:\n" + ok, 2, "schedule.begin", `unknown key "begin"`},
		{"schedule map's stop is a map", "", "schedule:\n  stop: {at: 8}\nsteps:\n" + ok, 2, "schedule.stop", "want a string, got a map"},
		{"bad catchup", "", "catchup: some\nsteps:\n" + ok, 1, "catchup", "want latest, all or none"},
		{"bad catchupWindow", "", "catchup_window: 3 days\nsteps:\n" + ok, 1, "catchup_window", "want a duration"},
		{"negative catchupWindow", "", "catchupWindow: -1h\nsteps:\n" + ok, 1, "catchupWindow", "must not be negative"},
		{"bad type", "", "type: agent\nsteps:\n" + ok, 1, "type", "want graph or chain"},
		{"selector is a list", "", "workerSelector: [gpu]\nsteps:\n" + ok, 1, "workerSelector", "want a map of label: value"},
		{"selector value with a comma", "", "workerSelector:\n  region: eu,us\nsteps:\n" + ok, 2, "workerSelector.region", `label value "eu,us" of "region": must not contain '=' or ','`},
		{"selector key with =", "", "worker_selector:\n  \"a=b\": x\nsteps:\n" + ok, 2, "worker_selector.a=b", `label key "a=b": must not contain '=' or ','`},
		{"selector empty value", "", "workerSelector:\n  gpu:\nsteps:\n" + ok, 2, "workerSelector.gpu", "must not be empty"},
		{"selector value too long", "", "workerSelector:\n  zone: " + strings.Repeat("z", 64) + "\nsteps:\n" + ok, 2, "workerSelector.zone", "at most 63 bytes"},
		{"selector with more entries than a worker may have labels", "", "workerSelector: {" + manyLabels(65) + "}\nsteps:\n" + ok, 1, "workerSelector", "65 labels, more than the limit of 64"},
		{"selector value of 900 KB", "", "workerSelector:\n  zone: " + strings.Repeat("z", 900_000) + "\nsteps:\n" + ok, 2, "workerSelector.zone", "(900000 bytes)"},
		{"step name too long", "", "steps:\n  - name: " + strings.Repeat("s", 129) + "\n    command: x\n", 2, "steps[0].name", "must be at most 128 bytes"},
		{"command too long", "", "steps:\n  - name: a\n    command: " + strings.Repeat("c", 64<<10+1) + "\n", 3, "steps[0].command", "command: 65537 bytes, more than the limit of 65536"},
		{"script too long", "", "steps:\n  - name: a\n    script: " + strings.Repeat("c", 64<<10+1) + "\n", 3, "steps[0].script", "script: 65537 bytes"},
		{"more steps than a DAG may have", "", "steps:\n" + strings.Repeat(ok, 1001), 2, "steps", "1001 steps, more than the limit of 1000 per DAG"},
		{"file larger than a DAG may be", "", "steps:\n" + ok + "# " + strings.Repeat("x", 2<<20) + "\n", 1, "", "DAG size: 2097195 bytes, more than the limit of 2097152"},
		{"DAG larger as stored than a DAG may be", "", "steps:\n" + bigSteps(40, 40<<10), 1, "", "as stored with its text and local DAGs"},
		{"selector key given twice", "", "workerSelector:\n  gpu: a\n  gpu: b\nsteps:\n" + ok, 3, "workerSelector.gpu", "given twice"},
		{"step selector on a command step", "", "steps:\n  - name: a\n    command: x\n    workerSelector: {gpu: \"true\"}\n",
			4, "steps[0].workerSelector", "routes the child run of a run/call step"},
		{"bad step selector", "", "steps:\n  - name: a\n    run: child\n    workerSelector: {\"\": x}\n", 4, "steps[0].workerSelector.", "must not be empty"},
		{"params on a command step", "", "steps:\n  - name: a\n    command: x\n    params: A=1\n", 4, "steps[0].params", "for run/call steps"},
		{"unterminated quote in params", "", "params: 'A=\"open'\nsteps:\n" + ok, 1, "params", "is not closed"},
		{"bad child params", "", "steps:\n  - name: a\n    call: child\n    params: \"A='x\"\n", 4, "steps[0].params", "is not closed"},
		{"param given twice", "", "params:\n  - A=1\n  - A=2\nsteps:\n" + ok, 3, "params[1]", `param "A" is given twice (first on line 2)`},
		{"bad param name in a map", "", "params:\n  1x: a\nsteps:\n" + ok, 2, "params.1x", "a param name is letters"},
		{"env entry without =", "", "env:\n  - JUST_A_NAME\nsteps:\n" + ok, 2, "env[0]", "want NAME=value"},
		{"env is a string", "", "env: A=1\nsteps:\n" + ok, 1, "env", "want a list of NAME=value or a map"},
		{"step is a list", "", "steps:\n  - name: a\n    command: x\n  - 3\n  - [x]\n", 5, "steps[2]", "a step must be a map with a command"},
		{"generated name taken by a later step", "", "steps:\n  - echo a\n  - echo b\n  - name: cmd_2\n    command: x\n",
			4, "steps[2].name", `step name "cmd_2" is already used by steps[1] (line 3); a step without a name is named as Dagu names it`},
		{"step name is empty", "", "steps:\n  - name: \"\"\n    command: x\n", 2, "steps[0].name", "must not be empty"},
		{"step without a command", "", "steps:\n  - name: a\n    dir: /tmp\n", 2, "steps[0]", "needs one of command, script, run or call"},
		{"step with an empty command", "", "steps:\n  - name: a\n    command: \"\"\n", 3, "steps[0].command", "must not be empty"},
		{"step with a null command", "", "steps:\n  - name: a\n    command:\n", 2, "steps[0]", "needs one of command, script, run or call"},
		{"step with command and run", "", "steps:\n  - name: a\n    command: x\n    run: child\n", 4, "steps[0].run", "command is already given"},
		{"step with run and call", "", "steps:\n  - name: a\n    call: one\n    run: two\n", 4, "steps[0].run", "call is already given"},
		{"step with a bad child name", "", "steps:\n  - name: a\n    run: ../etc\n", 3, "steps[0].run", `DAG name "../etc": must be 1-128 letters`},
		{"unsupported step type", "", "steps:\n  - name: a\n    command: x\n    type: redis\n", 4, "steps[0].type", "executor redis is not supported yet (issue #23)"},
		{"duplicate step name", "", "steps:\n  - name: a\n    command: x\n  - name: a\n    command: y\n",
			4, "steps[1].name", `step name "a" is already used by steps[0] (line 2)`},
		{"unknown step in depends", "", "steps:\n" + ok + "  - name: b\n    command: x\n    depends:\n      - ok\n      - lint\n",
			8, "steps[1].depends", `unknown step "lint"`},
		{"unknown step in a depends string", "", "steps:\n  - name: b\n    command: x\n    depends: lint\n", 4, "steps[0].depends", `unknown step "lint"`},
		{"dependency cycle", "", "steps:\n" + ok +
			"  - name: a\n    command: x\n    depends: c\n" +
			"  - name: b\n    command: x\n    depends: [a, ok]\n" +
			"  - name: c\n    command: x\n    depends: b\n",
			6, "steps[1].depends", "dependency cycle: a -> c -> b -> a"},
		{"step depends on itself", "", "steps:\n  - name: a\n    command: x\n    depends: a\n", 4, "steps[0].depends", "dependency cycle: a -> a"},
		{"bad output name", "", "steps:\n  - name: a\n    command: x\n    output: 1st-result\n", 4, "steps[0].output", "a variable name is letters"},
		{"run cycle between documents", "dags/top.yaml", "steps:\n  - name: a\n    run: helper\n---\nname: helper\nsteps:\n  - name: b\n    call: top\n",
			3, "steps[0].run", "run cycle: top -> helper -> top"},
		{"a DAG that runs itself", "", "name: self\nsteps:\n  - name: a\n    run: self\n", 4, "steps[0].run", "run cycle: self -> self"},
		{"merge key of a string", "", "steps:\n  - <<: x\n    name: a\n    command: x\n", 2, "steps[0]", "a merge key (<<) takes a map"},
		{"alias inside its own anchor", "", "steps:\n  - &s\n    name: a\n    command: x\n    env: [*s]\n", 5, "", "alias *s refers to a node it is inside"},
		{"merge of itself", "", "steps:\n  - &s\n    name: a\n    command: x\n    <<: [*s, *s]\n", 5, "", "alias *s refers to a node it is inside"},
		{"alias bomb", "", aliasBomb(), 1, "", "aliases make this document far larger"},
		{"non-string key", "", "? [a, b]\n: x\nsteps:\n" + ok, 1, "", "a key must be a string, got a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "bad.yaml"
			}
			f, err := Parse(path, []byte(tc.text))
			if err == nil {
				t.Fatalf("Parse accepted it: %d DAGs", len(f.Dags))
			}
			var problems Problems
			if !errors.As(err, &problems) {
				t.Fatalf("error %T %v, want Problems", err, err)
			}
			if len(problems) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(problems), err)
			}
			p := problems[0]
			if p.File != path || p.Line != tc.line || p.Key != tc.key || !strings.Contains(p.Message, tc.message) {
				t.Errorf("got  %s\nwant %s:%d: %s: …%s…", p.Error(), path, tc.line, tc.key, tc.message)
			}
		})
	}
}

// aliasBomb is a few kilobytes of YAML whose aliases expand to 10^8 nodes.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("description: &l0 x\n")
	for level := 1; level <= 8; level++ {
		fmt.Fprintf(&b, "tags%d: &l%d [", level, level)
		for i := 0; i < 10; i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*l%d", level-1)
		}
		b.WriteString("]\n")
	}
	b.WriteString("steps: [*l8, *l8]\n")
	return b.String()
}

// manyLabels writes n selector entries in YAML flow style.
func manyLabels(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("k%d: v", i)
	}
	return strings.Join(parts, ", ")
}

// bigSteps writes n steps with commands of size bytes each.
func bigSteps(n, size int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "  - name: s%d\n    command: %s\n", i, strings.Repeat("c", size))
	}
	return b.String()
}
