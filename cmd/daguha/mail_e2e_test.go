package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch/worker/smtptest"
	"github.com/daguha/daguha/ops/wire"
)

// A worker agent given Dagu's global mail settings (flags and DAGU_SMTP_
// variables) mails a failed run's end and its mailOnError step, once each,
// though the leader was killed while the run was going: the worker that
// runs the run sends them, after the new leader recorded the end. The
// worker's log holds no password.
func TestWorkerMailsThroughALeaderKill(t *testing.T) {
	t.Parallel() // waits more than it computes: see TestMain
	const password = "e2e-smtp-s3cret"
	sink := smtptest.Start(t, smtptest.Options{Username: "dagu", Password: password})
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	w := c.NewWorker("mail-worker", "-smtp.host=127.0.0.1", "-smtp.port="+sink.Port(), "-smtp.username=dagu",
		"-error-mail.from=worker@example.com", "-error-mail.to=oncall@example.com", "-error-mail.prefix=[daguha]")
	w.Env = append(w.Env, "DAGU_SMTP_PASSWORD="+password)
	startProcess(t, w)
	dir := t.TempDir()
	gate := filepath.Join(dir, "go-on")
	yaml := `name: mailer
mailOn:
  failure: true
errorMail:
  attachLogs: true
steps:
  - name: wait
    command: while [ ! -e ` + gate + ` ]; do sleep 0.1; done; echo waited
  - name: check
    command: echo "disk full" >&2; exit 3
    mailOnError: true
`
	var resp wire.Enqueued
	if code, err := leader.PostJSONTimeout("/api/v2/dag-runs", wire.EnqueueRequest{DagRunID: "mail-1", Yaml: yaml, File: "mailer.yaml"}, &resp, 30*time.Second); err != nil || code != 201 {
		t.Fatalf("enqueue: HTTP %d %v", code, err)
	}
	waitRunStatus(t, c, "mail-1", "running", 60*time.Second)
	leader.Kill()
	t.Logf("killed leader %s", leader.Name)
	c.WaitLeader(t, 30*time.Second)
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	run := waitRunStatus(t, c, "mail-1", "failed", 60*time.Second)
	clustertest.WaitFor(t, 30*time.Second, "two mails", func() (bool, string) {
		n := len(sink.Received())
		return n >= 2, strings.Repeat("mail ", n)
	})
	time.Sleep(500 * time.Millisecond) // a third would be a mail sent twice
	mails := sink.Received()
	var subjects []string
	for _, m := range mails {
		for _, line := range strings.Split(string(m.Data), "\n") {
			if strings.HasPrefix(line, "Subject: ") {
				subjects = append(subjects, strings.TrimSpace(strings.TrimPrefix(line, "Subject: ")))
			}
		}
	}
	if joined := strings.Join(subjects, " | "); len(mails) != 2 || joined != "[daguha] mailer (running) | [daguha] mailer (failed)" {
		t.Errorf("%d mails with subjects %q; want the step's (running) and the run's (failed), once each (attempts %+v)", len(mails), subjects, run.Attempts)
	}
	logged, err := os.ReadFile(w.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(logged), password) {
		t.Error("the worker's log shows the SMTP password")
	}
	if strings.Count(string(logged), `msg="mail sent"`) != 2 {
		t.Errorf("want two \"mail sent\" lines in the worker's log:\n%s", w.Tail(40))
	}
}
