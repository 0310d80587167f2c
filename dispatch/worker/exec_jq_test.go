package worker

import (
	"path/filepath"
	"strings"
	"testing"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's jq executor with gojq, on real inputs.

func TestJQExecutor(t *testing.T) {
	for _, tc := range []struct{ name, step, want string }{
		{"1.x name", "executor: jq\n    command: .name\n    script: '{\"name\": \"ann\", \"age\": 3}'", "\"ann\"\n"},
		{"raw", "executor: {type: jq, config: {raw: true}}\n    command: .users[] | select(.on) | .mail\n    script: |\n      {\"users\": [{\"mail\": \"a@x\", \"on\": true}, {\"mail\": \"b@x\"}, {\"mail\": \"c@x\", \"on\": true}]}", "a@x\nc@x\n"},
		{"type and with", "type: jq\n    with: {query: '{id: .user_id, n: (.items | length)}', input: '{\"user_id\": 12345678901, \"items\": [1, 2.5]}'}", "{\n    \"id\": 12345678901,\n    \"n\": 2\n}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, host := runYAML(t, t.TempDir(), "steps:\n  - name: q\n    "+tc.step+"\n    output: OUT\n")
			wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
			if got := host.last()["q"].GetOutputTail(); got != tc.want {
				t.Errorf("output %q, want %q", got, tc.want)
			}
		})
	}
}

func TestJQExecutorTakesAnEarlierStepsOutput(t *testing.T) {
	dir := t.TempDir()
	r, host := runYAML(t, dir, `params: NUMS=[3,1,2]
steps:
  - name: make
    command: |
      echo '{"nums": '"$NUMS"'}'
    output: DATA
  - name: sum
    executor: jq
    command: .nums | sort | map(. * 10)
    script: ${DATA}
    output: SORTED
    depends: make
  - name: first
    type: jq
    with: {raw: true}
    command: .[0] | tostring
    script: $SORTED
    output: FIRST
    depends: sum
  - command: printf '%s' "$FIRST" > $D/first
    depends: first
`)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
	if got := readFile(t, filepath.Join(dir, "first")); got != "10" {
		t.Errorf("first %q, want 10", got)
	}
}

func TestJQExecutorErrors(t *testing.T) {
	for _, tc := range []struct{ name, step, err string }{
		{"bad query", "executor: jq\n    command: .a |\n    script: '{}'", "jq query:"},
		{"not json", "executor: jq\n    command: .a\n    script: '{nope'", "jq input is not JSON"},
		{"query error", "executor: jq\n    command: .a + 1\n    script: '{\"a\": \"x\"}'", "jq: cannot add"},
		{"error()", "executor: jq\n    command: error(\"boom\")\n    script: '{}'", "boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, host := runYAML(t, t.TempDir(), "steps:\n  - name: q\n    "+tc.step+"\n")
			wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "")
			if st := host.last()["q"]; !strings.Contains(st.GetError(), tc.err) {
				t.Errorf("error %q, want …%s…", st.GetError(), tc.err)
			}
		})
	}
}

// What jq prints is the step's stdout for ${id.stdout} and continueOn.output.
func TestJQExecutorOutputIsTheStepsStdout(t *testing.T) {
	dir := t.TempDir()
	r, host := runYAML(t, dir, `type: graph
steps:
  - name: q
    id: q
    executor: jq
    command: .a
    script: '{"a": "found it"}'
  - name: bad
    executor: jq
    command: .a, error("late")
    script: '{"a": "partial"}'
    continueOn:
      output: partial
  - name: read
    command: cat ${q.stdout} > $D/got
    depends: [q, bad]
`)
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
	if got := readFile(t, filepath.Join(dir, "got")); got != "\"found it\"\n" {
		t.Errorf("${q.stdout} held %q", got)
	}
}
