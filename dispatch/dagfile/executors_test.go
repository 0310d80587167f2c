package dagfile

import (
	"encoding/json"
	"reflect"
	"testing"
)

// Dagu's http and jq executors in the three ways Dagu writes them: 1.x's
// executor name, 1.x's executor map with config, and today's type + with.
func TestExecutorForms(t *testing.T) {
	for _, tc := range []struct {
		name, step string
		executor   string
		settings   map[string]any
		command    string
	}{
		{"1.x name", "executor: http\n    command: GET http://example.com/a",
			"http", map[string]any{}, "GET http://example.com/a"},
		{"1.x map with config", `executor:
      type: http
      config:
        silent: true
        timeout: 30
        headers: {Authorization: "Bearer ${TOKEN}"}
        query: {page: 1}
        body: '{"a": 1}'
    command: POST http://example.com/a`,
			"http", map[string]any{"silent": true, "timeout": 30.0, "headers": map[string]any{"Authorization": "Bearer ${TOKEN}"},
				"query": map[string]any{"page": "1"}, "body": `{"a": 1}`}, "POST http://example.com/a"},
		{"type and with, no command", `type: http
    with:
      method: post
      url: http://example.com/b
      json: true
      skip_tls_verify: true
      body: {x: [1, 2]}`,
			"http", map[string]any{"method": "POST", "url": "http://example.com/b", "json": true, "skipTLSVerify": true, "body": `{"x":[1,2]}`}, ""},
		{"jq 1.x with raw", "executor: {type: jq, config: {raw: true}}\n    command: .name\n    script: '{\"name\": \"x\"}'",
			"jq", map[string]any{"raw": true}, ".name"},
		{"jq type and with", "type: jq\n    with: {query: .a, input: '${DATA}'}",
			"jq", map[string]any{"query": ".a", "input": "${DATA}"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step := mustParse(t, "x.yaml", "steps:\n  - name: s\n    "+tc.step+"\n").Dags[0].GetSteps()[0]
			if step.GetExecutor() != tc.executor || step.GetCommand() != tc.command {
				t.Errorf("executor %q command %q, want %q %q", step.GetExecutor(), step.GetCommand(), tc.executor, tc.command)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(step.GetExecutorConfigJson()), &got); err != nil {
				t.Fatalf("settings %q: %v", step.GetExecutorConfigJson(), err)
			}
			if !reflect.DeepEqual(got, tc.settings) {
				t.Errorf("settings %v, want %v", got, tc.settings)
			}
		})
	}
	// A command step stays as it was.
	for _, text := range []string{"command: echo hi", "type: command\n    command: echo hi", "executor: shell\n    command: echo hi"} {
		step := mustParse(t, "x.yaml", "steps:\n  - name: s\n    "+text+"\n").Dags[0].GetSteps()[0]
		if step.GetExecutor() != "" || step.GetExecutorConfigJson() != "" || step.GetCommand() != "echo hi" {
			t.Errorf("%q: executor %q settings %q command %q", text, step.GetExecutor(), step.GetExecutorConfigJson(), step.GetCommand())
		}
	}
}

func TestBadExecutors(t *testing.T) {
	const head = "steps:\n  - name: s\n    "
	wantProblem(t, head+"executor: redis\n    command: echo\n", 3, "steps[0].executor", "executor redis is not supported yet (issue #23)")
	wantProblem(t, head+"type: redis\n    command: echo\n", 3, "steps[0].type", "executor redis is not supported yet (issue #23)")
	wantProblem(t, head+"executor: {type: s3, config: {bucket: b}}\n", 3, "steps[0].executor.type", "executor s3 is not supported yet (issue #23)")
	wantProblem(t, head+"type: http\n    with: {urll: http://x}\n", 4, "steps[0].with.urll", `unknown key "urll" (did you mean "url"?)`)
	wantProblem(t, head+"type: http\n    with: {timeout: soon}\n", 4, "steps[0].with.timeout", "")
	wantProblem(t, head+"type: http\n    executor: jq\n    command: GET http://x\n", 3, "steps[0].type", "disagree")
	wantProblem(t, head+"executor: {config: {silent: true}}\n    command: GET http://x\n", 3, "steps[0].executor", "needs a type")
	wantProblem(t, head+"command: echo\n    with: {silent: true}\n", 4, "steps[0].with", "a command step takes none")
	wantProblem(t, head+"executor: {type: http, config: {silent: true}}\n    with: {json: true}\n    command: GET http://x\n", 4, "steps[0].with", "give one of them")
	wantProblem(t, head+"executor: http\n    script: '{\"silent\": true}'\n    command: GET http://x\n", 4, "steps[0].script", "settings go in config")
	wantProblem(t, head+"type: jq\n    run: child\n", 4, "steps[0].run", "not both")
}
