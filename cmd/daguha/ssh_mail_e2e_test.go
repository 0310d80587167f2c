package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch/worker/smtptest"
	"github.com/daguha/daguha/dispatch/worker/sshdtest"
	"github.com/daguha/daguha/ops/wire"
)

// Dagu's ssh and mail executors through a three-server cluster: one DAG
// file, pushed with `daguha dag push`, has an ssh step in each syntax
// (Dagu 1.x executor/config against OpenSSH's sshd with a key, current
// type/with against a password server, the password written in the file)
// and a mail step in each syntax (through the DAG's smtp server, its
// password written in the file too). The worker runs them: the remote
// outputs reach the mails' subjects, the mails arrive, and neither
// password shows in the API's answers for the DAG and the run, nor in the
// servers' and the worker's logs.
func TestSSHAndMailExecutorsRunADagFileInBothSyntaxes(t *testing.T) {
	const sshPassword, smtpPassword = "e2e-ssh-s3cret-pw", "e2e-smtp-s3cret-pw"
	sshd := sshdtest.Start(t)
	passwordServer := sshdtest.StartPassword(t, "deploy", sshPassword)
	sink := smtptest.Start(t, smtptest.Options{Username: "dagu", Password: smtpPassword})
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	worker := startProcess(t, c.NewWorker("remote-worker"))
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "remote.yaml"), `name: remote-and-mail
smtp:
  host: 127.0.0.1
  port: "`+sink.Port()+`"
  username: dagu
  password: `+smtpPassword+`
steps:
  - name: old-ssh
    executor:
      type: ssh
      config:
        user: `+sshd.User+`
        ip: 127.0.0.1
        port: `+sshd.Port+`
        key: `+sshd.ClientKey+`
        knownHostFile: `+sshd.KnownHosts+`
    command: echo "key-login-$((6 * 7))"
    output: OLD
  - name: new-ssh
    type: ssh
    with:
      user: deploy
      host: 127.0.0.1
      port: "`+passwordServer.Port+`"
      password: `+sshPassword+`
      known_host_file: `+passwordServer.KnownHosts+`
      timeout: 20s
    script: |
      echo "password-login-as-$(echo deploy)"
    output: NEW
  - name: old-mail
    executor:
      type: mail
      config:
        from: dagu@example.com
        to: ops@example.com
        subject: old ${OLD}
        message: from the 1.x syntax
    depends: [old-ssh]
  - name: new-mail
    type: mail
    with:
      from: dagu@example.com
      to: [ops@example.com, lead@example.com]
      subject: new ${NEW}
      message: from the current syntax
    depends: [new-ssh]
`, 0o644)
	if out, errOut, code := runCLI(t, "dag", "push", "-address="+leader.HTTPAddr(), file); code != 0 {
		t.Fatalf("dag push: exit %d\n%s%s", code, out, errOut)
	}
	var resp wire.Enqueued
	if code, err := leader.PostJSONTimeout("/api/v2/dag-runs", wire.EnqueueRequest{DagName: "remote-and-mail", DagRunID: "remote-1"}, &resp, 30*time.Second); err != nil || code != 201 {
		t.Fatalf("enqueue: HTTP %d %v", code, err)
	}
	run := waitRunStatus(t, c, "remote-1", "succeeded", 90*time.Second)
	steps := map[string]wire.Step{}
	for _, s := range run.Steps {
		steps[s.Name] = s
	}
	if got := steps["old-ssh"].OutputTail; got != "key-login-42\n" {
		t.Errorf("old-ssh printed %q", got)
	}
	if got := steps["new-ssh"].OutputTail; got != "password-login-as-deploy\n" {
		t.Errorf("new-ssh printed %q", got)
	}
	if got := steps["new-mail"].OutputTail; !strings.Contains(got, "sent through 127.0.0.1:"+sink.Port()) {
		t.Errorf("new-mail printed %q", got)
	}
	clustertest.WaitFor(t, 30*time.Second, "two mails", func() (bool, string) {
		n := len(sink.Received())
		return n >= 2, strings.Repeat("mail ", n)
	})
	var subjects []string
	for _, m := range sink.Received() {
		for _, line := range strings.Split(string(m.Data), "\n") {
			if strings.HasPrefix(line, "Subject: ") {
				subjects = append(subjects, strings.TrimSpace(strings.TrimPrefix(line, "Subject: ")))
			}
		}
	}
	if joined := strings.Join(subjects, " | "); len(subjects) != 2 || !strings.Contains(joined, "old key-login-42") || !strings.Contains(joined, "new password-login-as-deploy") {
		t.Errorf("mails with subjects %q; want one from each mail step with the remote outputs", subjects)
	}

	// What the API shows of the DAG and the run, from every server.
	for _, server := range c.Running() {
		for _, path := range []string{"/api/v2/dags/remote-and-mail", "/api/v2/dags", "/api/v2/dag-runs/remote-1", "/api/v2/dag-runs"} {
			var body json.RawMessage
			if code, err := server.GetJSON(path, &body); err != nil || code != 200 {
				t.Fatalf("GET %s from %s: HTTP %d %v", path, server.Name, code, err)
			}
			for _, password := range []string{sshPassword, smtpPassword} {
				if strings.Contains(string(body), password) {
					t.Errorf("GET %s from %s shows a password:\n%s", path, server.Name, body)
				}
			}
		}
	}
	var dag wire.Dag
	if _, err := leader.GetJSON("/api/v2/dags/remote-and-mail", &dag); err != nil || strings.Count(dag.Source, "<hidden>") != 2 {
		t.Errorf("the DAG's source should hold two masked passwords (%v):\n%s", err, dag.Source)
	}
	// The logs of the servers and the worker.
	logs := []string{worker.LogPath()}
	for _, server := range c.Running() {
		logs = append(logs, server.LogPath())
	}
	for _, path := range logs {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, password := range []string{sshPassword, smtpPassword} {
			if strings.Contains(string(data), password) {
				t.Errorf("%s shows a password", path)
			}
		}
	}
}
