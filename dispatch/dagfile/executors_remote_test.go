package dagfile

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// settingsOf is the executor and settings of the first step of text.
func settingsOf(t *testing.T, text string) (string, map[string]any) {
	t.Helper()
	step := mustParse(t, "x.yaml", text).Dags[0].GetSteps()[0]
	var got map[string]any
	if err := json.Unmarshal([]byte(step.GetExecutorConfigJson()), &got); err != nil {
		t.Fatalf("settings %q: %v", step.GetExecutorConfigJson(), err)
	}
	return step.GetExecutor(), got
}

// Dagu's ssh executor in 1.x's form (ip, strictHostKeyChecking) and
// today's (host, strict_host_key, known_host_file, a duration timeout):
// the same settings for the worker.
func TestSSHExecutorSettingsInBothSyntaxes(t *testing.T) {
	for _, tc := range []struct {
		name, step string
		want       map[string]any
	}{
		{"1.x", `executor:
      type: ssh
      config:
        user: deploy
        ip: 10.0.0.5
        port: 2222
        key: ~/.ssh/deploy
        strictHostKeyChecking: false
    command: uptime`,
			map[string]any{"user": "deploy", "host": "10.0.0.5", "port": "2222", "key": "~/.ssh/deploy", "strictHostKey": false}},
		{"type and with", `type: ssh
    with:
      user: deploy
      host: web1.example.com
      password: ${SSH_PASS}
      strict_host_key: true
      known_host_file: /etc/daguha/known_hosts
      timeout: 1m
      shell: /bin/bash -e
      shell_args: [-o, pipefail]
    script: |
      cd /opt/app
      ./deploy.sh`,
			map[string]any{"user": "deploy", "host": "web1.example.com", "password": "${SSH_PASS}", "strictHostKey": true,
				"knownHostFile": "/etc/daguha/known_hosts", "timeout": "1m0s", "shell": "/bin/bash -e", "shellArgs": []any{"-o", "pipefail"}}},
		{"timeout in seconds", "type: ssh\n    with: {user: u, host: h, timeout: 45}\n    command: id",
			map[string]any{"user": "u", "host": "h", "timeout": "45s"}},
		// Dagu 1.x decodes settings into Go structs, whatever the case of
		// the first letter; its own example writes the field name.
		{"as Go field names", "executor:\n      type: ssh\n      config: {User: u, IP: h, Key: /k, StrictHostKeyChecking: false}\n    command: id",
			map[string]any{"user": "u", "host": "h", "key": "/k", "strictHostKey": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			executor, got := settingsOf(t, "steps:\n  - name: s\n    "+tc.step+"\n")
			if executor != "ssh" || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("executor %q settings %v, want ssh %v", executor, got, tc.want)
			}
		})
	}
}

func TestBadSSHSteps(t *testing.T) {
	const head = "steps:\n  - name: s\n    "
	wantProblem(t, head+"type: ssh\n    with: {user: u}\n    command: id\n", 3, "steps[0].with.host", "needs the host to connect to")
	wantProblem(t, head+"executor: {type: ssh, config: {ip: h}}\n    command: id\n", 3, "steps[0].executor.config.user", "needs the user")
	wantProblem(t, head+"type: ssh\n    with: {user: u, host: h}\n", 3, "steps[0]", "needs a command (or a script)")
	wantProblem(t, head+"type: ssh\n    with: {user: u, host: h, ip: h}\n    command: id\n", 4, "steps[0].with.ip", "give one of them")
	wantProblem(t, head+"type: ssh\n    with: {user: u, host: h, strictHostKey: true, strict_host_key_checking: true}\n    command: id\n", 4,
		"steps[0].with.strict_host_key_checking", "give one of them")
	wantProblem(t, head+"type: ssh\n    with: {user: u, host: h, port: 70000}\n    command: id\n", 4, "steps[0].with.port", "1 to 65535")
	wantProblem(t, head+"type: ssh\n    with: {user: u, host: u@h}\n    command: id\n", 4, "steps[0].with.host", "the user goes in user")
	wantProblem(t, head+"type: ssh\n    with: {user: u, host: h, timeout: soon}\n    command: id\n", 4, "steps[0].with.timeout", "want a duration")
	wantProblem(t, head+"type: ssh\n    with: {user: u, host: h, bastion: {host: b}}\n    command: id\n", 4, "steps[0].with.bastion", "no jump host")
	wantProblem(t, head+"type: ssh\n    with: {user: u, host: h, shellArgs: -e}\n    command: id\n", 4, "steps[0].with.shellArgs", "want a list")
	// A password that is not text is refused without its value.
	problems := mustFail(t, head+"type: ssh\n    with: {user: u, host: h, password: {hunter2: x}}\n    command: id\n")
	if len(problems) != 1 || strings.Contains(problems.Error(), "hunter2") {
		t.Errorf("problems %v: want one, without the password", problems)
	}
}

// Dagu's mail executor in both syntaxes: to as one address, a list, or
// addresses separated by commas; attachments as a list (or one path).
func TestMailExecutorSettingsInBothSyntaxes(t *testing.T) {
	executor, got := settingsOf(t, `steps:
  - name: tell
    executor:
      type: mail
      config:
        to: "team@example.com, Lead <lead@example.com>"
        from: dagu@example.com
        subject: Done ${DAG_NAME}
        message: |
          All good.
          Run ${DAG_RUN_ID}
        attachments: report.csv
`)
	want := map[string]any{"to": []any{"team@example.com, Lead <lead@example.com>"}, "from": "dagu@example.com",
		"subject": "Done ${DAG_NAME}", "message": "All good.\nRun ${DAG_RUN_ID}\n", "attachments": []any{"report.csv"}}
	if executor != "mail" || !reflect.DeepEqual(got, want) {
		t.Errorf("1.x: executor %q settings %v, want mail %v", executor, got, want)
	}
	executor, got = settingsOf(t, `steps:
  - name: tell
    type: mail
    with:
      to: [a@example.com, "${ONCALL}"]
      from: ${FROM}
      subject: hi
      attachments: [a.txt, /tmp/b.pdf]
`)
	want = map[string]any{"to": []any{"a@example.com", "${ONCALL}"}, "from": "${FROM}", "subject": "hi", "attachments": []any{"a.txt", "/tmp/b.pdf"}}
	if executor != "mail" || !reflect.DeepEqual(got, want) {
		t.Errorf("type and with: executor %q settings %v, want mail %v", executor, got, want)
	}
}

func TestBadMailSteps(t *testing.T) {
	const head = "steps:\n  - name: s\n    "
	wantProblem(t, head+"type: mail\n    with: {from: a@example.com}\n", 3, "steps[0].with.to", "needs a to address")
	wantProblem(t, head+"executor: {type: mail, config: {to: a@example.com}}\n", 3, "steps[0].executor.config.from", "needs a from address")
	wantProblem(t, head+"type: mail\n    with: {from: a@example.com, to: [b@example.com, not an address]}\n", 4, "steps[0].with.to[1]", "want e-mail addresses")
	wantProblem(t, head+"type: mail\n    with: {from: nobody, to: b@example.com}\n", 4, "steps[0].with.from", "want an e-mail address")
	wantProblem(t, head+"type: mail\n    with: {from: a@example.com, to: b@example.com, subject: \"a\\nb\"}\n", 4, "steps[0].with.subject", "one line")
	wantProblem(t, head+"type: mail\n    with: {from: a@example.com, to: b@example.com}\n    command: echo\n", 5, "steps[0].command", "give no command")
	wantProblem(t, head+"type: mail\n    with: {from: a@example.com, to: b@example.com, cc: c@example.com}\n", 4, "steps[0].with.cc", `unknown key "cc"`)
}

// An ssh password written in a step's settings, in either syntax, in a
// handler or a bastion, is masked as an smtp password is; a reference
// stays.
func TestMaskSecretsHidesExecutorPasswords(t *testing.T) {
	for _, tc := range []struct{ name, source, want string }{
		{"type and with", "steps:\n  - name: a\n    type: ssh\n    with:\n      user: u\n      password: hunter2\n",
			"steps:\n  - name: a\n    type: ssh\n    with:\n      user: u\n      password: <hidden>\n"},
		{"executor config", "steps:\n  - name: a\n    executor: {type: ssh, config: {user: u, password: 'hunter2'}}\n",
			"steps:\n  - name: a\n    executor: {type: ssh, config: {user: u, password: <hidden>}}\n"},
		{"a handler", "handlerOn:\n  failure:\n    type: ssh\n    with: {password: hunter2}\nsteps: []\n",
			"handlerOn:\n  failure:\n    type: ssh\n    with: {password: <hidden>}\nsteps: []\n"},
		{"nested", "steps:\n  - type: ssh\n    with:\n      bastion: {host: b, password: hunter2}\n",
			"steps:\n  - type: ssh\n    with:\n      bastion: {host: b, password: <hidden>}\n"},
		{"a reference stays", "steps:\n  - type: ssh\n    with: {password: \"${SSH_PASS}\"}\n",
			"steps:\n  - type: ssh\n    with: {password: \"${SSH_PASS}\"}\n"},
		// An http step's credentials in its headers, written literally;
		// the other headers, and a credential that names a variable, stay.
		{"http headers", "steps:\n  - type: http\n    with:\n      url: https://api.example.com\n      headers:\n        Authorization: Bearer s3cr3t-t0ken\n        X-Api-Key: \"k-123456\"\n        Content-Type: application/json\n        X-Trace: abc\n    command: echo Bearer s3cr3t-t0ken\n",
			"steps:\n  - type: http\n    with:\n      url: https://api.example.com\n      headers:\n        Authorization: <hidden>\n        X-Api-Key: <hidden>\n        Content-Type: application/json\n        X-Trace: abc\n    command: echo <hidden>\n"},
		{"http headers by reference", "steps:\n  - executor:\n      type: http\n      config:\n        headers: {Authorization: \"Bearer ${TOKEN}\", Cookie: session=abcdef}\n    command: GET https://x\n",
			"steps:\n  - executor:\n      type: http\n      config:\n        headers: {Authorization: \"Bearer ${TOKEN}\", Cookie: <hidden>}\n    command: GET https://x\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MaskSecrets(tc.source); got != tc.want {
				t.Errorf("MaskSecrets:\n got: %q\nwant: %q", got, tc.want)
			}
		})
	}
}
