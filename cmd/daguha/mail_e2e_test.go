package main

import (
	"encoding/base64"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

// mailSink is an SMTP server on 127.0.0.1 that takes every mail (after
// AUTH PLAIN with its one account) and keeps it.
type mailSink struct {
	listener           net.Listener
	username, password string
	mu                 sync.Mutex
	mails              []string
}

func startMailSink(t *testing.T, username, password string) *mailSink {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &mailSink{listener: listener, username: username, password: password}
	t.Cleanup(func() { listener.Close() })
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
	return s
}

func (s *mailSink) port() string {
	_, port, _ := net.SplitHostPort(s.listener.Addr().String())
	return port
}

func (s *mailSink) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.mails...)
}

func (s *mailSink) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	text := textproto.NewConn(conn)
	authed := false
	_ = text.PrintfLine("220 sink ready")
	for {
		line, err := text.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			_ = text.PrintfLine("250-sink\r\n250 AUTH PLAIN")
		case "AUTH":
			decoded, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(arg, "PLAIN "))
			if string(decoded) == "\x00"+s.username+"\x00"+s.password {
				authed = true
				_ = text.PrintfLine("235 ok")
			} else {
				_ = text.PrintfLine("535 no")
			}
		case "MAIL", "RCPT":
			if !authed {
				_ = text.PrintfLine("530 authenticate first")
				continue
			}
			_ = text.PrintfLine("250 ok")
		case "DATA":
			_ = text.PrintfLine("354 go on")
			data, err := text.ReadDotBytes()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.mails = append(s.mails, string(data))
			s.mu.Unlock()
			_ = text.PrintfLine("250 taken")
		case "QUIT":
			_ = text.PrintfLine("221 bye")
			return
		default:
			_ = text.PrintfLine("250 ok")
		}
	}
}

// A worker agent given Dagu's global mail settings (flags and DAGU_SMTP_
// variables) mails a failed run's end and its mailOnError step, once each,
// though the leader was killed while the run was going: the worker that
// runs the run sends them, after the new leader recorded the end. The
// worker's log holds no password.
func TestWorkerMailsThroughALeaderKill(t *testing.T) {
	t.Parallel() // waits more than it computes: see TestMain
	const password = "e2e-smtp-s3cret"
	sink := startMailSink(t, "dagu", password)
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	w := c.NewWorker("mail-worker", "-smtp.host=127.0.0.1", "-smtp.port="+sink.port(), "-smtp.username=dagu",
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
		n := len(sink.received())
		return n >= 2, strings.Repeat("mail ", n)
	})
	time.Sleep(500 * time.Millisecond) // a third would be a mail sent twice
	mails := sink.received()
	var subjects []string
	for _, m := range mails {
		for _, line := range strings.Split(m, "\n") {
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
