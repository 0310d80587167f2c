package worker

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/dispatch/worker/sshdtest"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's ssh executor against OpenSSH's sshd on loopback (and, for
// passwords, a server of x/crypto/ssh: sshd would need a system
// account's password).

// sshYAML fills a DAG's placeholders: $D the test's directory, HOST,
// PORT, USER, KEY and KNOWN the server's.
func sshYAML(s *sshdtest.Server, text string) string {
	return strings.NewReplacer("HOST", s.Host, "PORT", s.Port, "USER", s.User, "KEY", s.ClientKey, "KNOWN", s.KnownHosts).Replace(text)
}

// The step runs on the host in both syntaxes, logged in with a key and
// the host's key checked (strictHostKey is the default): its stdout is
// the step's output, its stderr only in the log; the variables it names
// reach it as values (a quote or ; in one stays data), a path into an
// output too, and the run's params are its "$@"; the step's dir is cd'ed
// to there.
func TestSSHExecutorRunsTheStepOnTheHostInBothSyntaxes(t *testing.T) {
	server := sshdtest.Start(t)
	for _, tc := range []struct{ name, dag string }{
		{"1.x", `params: first second
env:
  - GREETING: "it's; touch $D/pwned"
steps:
  - name: info
    command: echo '{"color":"blue"}'
    output: INFO
  - name: remote
    executor:
      type: ssh
      config:
        user: USER
        ip: HOST
        port: PORT
        key: KEY
        knownHostFile: KNOWN
    command: 'echo "$GREETING|${INFO.color}|$1|${DAG_NAME}"; echo to-stderr >&2; pwd'
    dir: $D
    output: REMOTE
    depends: info
  - name: use
    command: printf '%s' "$REMOTE" > $D/got
    depends: remote
`},
		{"type and with", `params: first second
env:
  - GREETING: "it's; touch $D/pwned"
steps:
  - name: info
    command: echo '{"color":"blue"}'
    output: INFO
  - name: remote
    type: ssh
    with:
      user: USER
      host: HOST
      port: "PORT"
      key: KEY
      known_host_file: KNOWN
      strict_host_key: true
      timeout: 10s
    script: |
      echo "$GREETING|${INFO.color}|$1|${DAG_NAME}"
      echo to-stderr >&2
      pwd
    dir: $D
    output: REMOTE
    depends: info
  - name: use
    command: printf '%s' "$REMOTE" > $D/got
    depends: remote
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r, host := runYAML(t, dir, sshYAML(server, tc.dag))
			wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
			want := "it's; touch " + dir + "/pwned|blue|first|test\n" + dir
			if got := readFile(t, filepath.Join(dir, "got")); got != want {
				t.Errorf("the remote step printed %q, want %q", got, want)
			}
			notPwned(t, dir)
			if tail := host.last()["remote"].GetOutputTail(); !strings.Contains(tail, "to-stderr") || strings.Contains(tail, "daguha-group") {
				t.Errorf("the output tail %q: want the remote stderr, without the line of the process group", tail)
			}
		})
	}
}

// A failing remote command fails the step with its exit status; set -e
// stops the script at the first failing command, as in Dagu.
func TestSSHExecutorFailsWithTheRemoteExitStatus(t *testing.T) {
	server := sshdtest.Start(t)
	dir := t.TempDir()
	r, host := runYAML(t, dir, sshYAML(server, `steps:
  - name: remote
    type: ssh
    with: {user: USER, host: HOST, port: PORT, key: KEY, knownHostFile: KNOWN}
    script: |
      echo before
      (exit 3)
      echo after
`))
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "")
	st := host.last()["remote"]
	if st.GetExitCode() != 3 || !strings.Contains(st.GetError(), "exited with status 3") {
		t.Errorf("step: exit %d, error %q; want 3", st.GetExitCode(), st.GetError())
	}
	if tail := st.GetOutputTail(); tail != "before\n" {
		t.Errorf("output %q, want only before (set -e)", tail)
	}
}

// Strict host key checking refuses a host whose key is not the one
// known_hosts holds, or that known_hosts does not know, or a known_hosts
// that does not exist; strictHostKey: false connects all the same.
func TestSSHExecutorChecksTheHostKey(t *testing.T) {
	server := sshdtest.Start(t)
	wrong := sshdtest.WriteKnownHosts(t, server.Addr(), sshdtest.NewKey(t))
	other := sshdtest.WriteKnownHosts(t, "127.0.0.1:1", server.HostKey)
	for _, tc := range []struct{ name, settings, want string }{
		{"another key", "knownHostFile: " + wrong, "is not the one " + wrong + " holds"},
		{"an unknown host", "knownHostFile: " + other, "is not in " + other},
		{"no known_hosts", "knownHostFile: " + filepath.Join(t.TempDir(), "none"), "which does not exist on this worker"},
		{"not checked", "knownHostFile: " + wrong + ", strictHostKey: false", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, host := runYAML(t, t.TempDir(), sshYAML(server, "steps:\n  - name: remote\n    type: ssh\n    with: {user: USER, host: HOST, port: PORT, key: KEY, "+
				tc.settings+"}\n    command: echo in\n"))
			st := host.last()["remote"]
			if tc.want == "" {
				wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
				if st.GetOutputTail() != "in\n" {
					t.Errorf("output %q", st.GetOutputTail())
				}
				return
			}
			wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "")
			if !strings.Contains(st.GetError(), tc.want) {
				t.Errorf("error %q, want …%s…", st.GetError(), tc.want)
			}
		})
	}
}

// A password logs in (from a variable of the worker's environment, or
// written in the DAG); a wrong one is refused; neither shows in the
// step's error, output or the worker's log.
func TestSSHExecutorLogsInWithAPassword(t *testing.T) {
	const password = "s3cret-ssh-hunter2"
	server := sshdtest.StartPassword(t, "deploy", password)
	t.Setenv("TEST_SSH_PASS", password)
	for _, tc := range []struct{ name, password, status string }{
		{"from the environment", "${TEST_SSH_PASS}", "succeeded"},
		{"written", password, "succeeded"},
		{"wrong", password + "-not", "failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, logs := mailEngine(t)
			run := yamlRun(t, t.TempDir(), sshYAML(server, `steps:
  - name: remote
    executor:
      type: ssh
      config: {user: deploy, ip: HOST, port: PORT, knownHostFile: KNOWN, password: "`+tc.password+`"}
    command: echo logged in as deploy
`), "")
			host := &fakeHost{}
			r := execute(t, context.Background(), e, run, host)
			st := host.last()["remote"]
			if tc.status == "succeeded" {
				wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
				if st.GetOutputTail() != "logged in as deploy\n" {
					t.Errorf("output %q", st.GetOutputTail())
				}
			} else {
				wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "")
				if !strings.Contains(st.GetError(), "unable to authenticate") {
					t.Errorf("error %q, want a refused login", st.GetError())
				}
			}
			for what, text := range map[string]string{"error": st.GetError(), "output": st.GetOutputTail(), "log": logText(logs), "message": r.message} {
				if strings.Contains(text, password) {
					t.Errorf("the %s shows the password: %q", what, text)
				}
			}
		})
	}
}

// Cancelling the run ends the remote command: the step is cancelled and
// the process it started on the host (here the same machine) is gone.
func TestCancellingAnSSHStepEndsTheRemoteCommand(t *testing.T) {
	server := sshdtest.Start(t)
	dir := t.TempDir()
	run := yamlRun(t, dir, sshYAML(server, `steps:
  - name: remote
    type: ssh
    with: {user: USER, host: HOST, port: PORT, key: KEY, knownHostFile: KNOWN}
    command: sleep 300 & echo $! > $D/pid.tmp && mv $D/pid.tmp $D/pid; wait
`), "")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	go func() {
		_ = readPid(t, filepath.Join(dir, "pid"))
		cancel(errCancelled)
	}()
	host := &fakeHost{}
	start := time.Now()
	r := execute(t, ctx, testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_CANCELLED {
		t.Fatalf("run: %s %q; steps %v", r.status, r.message, host.last())
	}
	if st := host.last()["remote"]; st.GetStatus() != daguhav1.StepStatus_STEP_STATUS_CANCELLED {
		t.Errorf("step %v, want cancelled", st)
	}
	pid := readPid(t, filepath.Join(dir, "pid"))
	defer func() {
		if t.Failed() {
			t.Logf("sshd:\n%s", server.Log())
		}
	}()
	waitFor(t, 10*time.Second, "the remote sleep to be gone", func() bool { return processGone(pid) })
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("the cancel took %s", took)
	}
}
