package worker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/daguha/daguha/dispatch/worker/smtptest"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

const testPassword = "hunter2-s3cret"

// mailEngine is an engine whose log lines go to the returned buffer.
func mailEngine(t *testing.T) (*Engine, *syncBuffer) {
	logs := &syncBuffer{}
	e := testEngine(t)
	e.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.Mail.Timeout = 5 * time.Second
	return e, logs
}

// mailRun is a run of DAG "nightly" with these mail settings and steps;
// the DAG's env gives SMTP_PASS, which its smtp password names.
func mailRun(dag *daguhav1.DagSpec, steps ...*daguhav1.StepSpec) *daguhav1.Run {
	dag.Name, dag.Steps = "nightly", steps
	dag.Env = append(dag.Env, &daguhav1.EnvVar{Name: "SMTP_PASS", Value: testPassword})
	return &daguhav1.Run{Id: "run-7", DagName: "nightly", Attempt: 1, Params: "DAY=monday", Dag: dag}
}

func smtpOf(s *smtptest.Server) *daguhav1.SmtpSettings {
	return &daguhav1.SmtpSettings{Host: "127.0.0.1", Port: s.Port(), Username: "dagu", Password: "${SMTP_PASS}"}
}

// authed is a server that takes one account: dagu, with testPassword.
var authed = smtptest.Options{Username: "dagu", Password: testPassword}

func wantNoPassword(t *testing.T, logs *syncBuffer) {
	t.Helper()
	if strings.Contains(logText(logs), testPassword) {
		t.Errorf("the log shows the SMTP password:\n%s", logText(logs))
	}
}

// A failed run with mailOn.failure mails errorMail: Dagu's subject, the
// run and its steps in the body, every step's log attached; the password
// came from ${SMTP_PASS} and went only to the server.
func TestMailOnFailureSendsTheErrorMailWithTheLogs(t *testing.T) {
	server := smtptest.Start(t, authed)
	e, logs := mailEngine(t)
	run := mailRun(&daguhav1.DagSpec{
		Smtp:      smtpOf(server),
		MailOn:    &daguhav1.MailOn{Failure: true, Success: true},
		ErrorMail: &daguhav1.MailSettings{From: "Dagu <dagu@example.com>", To: []string{"oncall@example.com", "lead@example.com"}, Prefix: "[Alert]", AttachLogs: true},
		InfoMail:  &daguhav1.MailSettings{From: "dagu@example.com", To: []string{"team@example.com"}},
	},
		&daguhav1.StepSpec{Name: "extract", Command: "echo extracted 42 rows"},
		&daguhav1.StepSpec{Name: "load <db>", Command: "echo loading; echo 'disk full' >&2; exit 3", Depends: []string{"extract"}},
		&daguhav1.StepSpec{Name: "report", Command: "echo never", Depends: []string{"load <db>"}},
	)
	res := execute(t, context.Background(), e, run, &fakeHost{})
	if res.status != daguhav1.RunStatus_RUN_STATUS_FAILED {
		t.Fatalf("run %v %q, want FAILED", res.status, res.message)
	}
	mails := server.Wait(1)
	if len(mails) != 1 {
		t.Fatalf("%d mails, want 1", len(mails))
	}
	got := mails[0]
	if got.AuthUser != "dagu" || got.From != "dagu@example.com" || !slices.Equal(got.To, []string{"oncall@example.com", "lead@example.com"}) {
		t.Errorf("envelope: auth %q, from %q, to %v", got.AuthUser, got.From, got.To)
	}
	m := parseMail(t, got.Data)
	if m.subject != "[Alert] nightly (failed)" {
		t.Errorf("subject %q, want Dagu's \"[Alert] nightly (failed)\"", m.subject)
	}
	if from := m.header.Get("From"); !strings.Contains(from, "dagu@example.com") || !strings.Contains(m.header.Get("To"), "lead@example.com") {
		t.Errorf("headers From %q To %q", from, m.header.Get("To"))
	}
	for _, want := range []string{"run-7", "DAY=monday", "extract", "load &lt;db&gt;", "finished", "failed", "skipped",
		"echo extracted 42 rows", "step load &lt;db&gt; failed: exit status 3"} {
		if !strings.Contains(m.html, want) {
			t.Errorf("the body lacks %q:\n%s", want, m.html)
		}
	}
	if !strings.Contains(m.attachments["extract.log"], "extracted 42 rows") || !strings.Contains(m.attachments[safeName("load <db>")+".log"], "disk full") {
		t.Errorf("attachments %v, want the logs of extract and load", m.attachments)
	}
	if _, ok := m.attachments["report.log"]; ok {
		t.Error("a step that never ran has a log attached")
	}
	if strings.Contains(string(got.Data), testPassword) {
		t.Error("the mail holds the SMTP password")
	}
	if !strings.Contains(logText(logs), "mail sent") {
		t.Errorf("no \"mail sent\" line:\n%s", logText(logs))
	}
	wantNoPassword(t, logs)
}

// A run that succeeds mails infoMail with mailOn.success, through the
// worker's own server and addresses where the DAG gives none; a failure
// that continueOn let pass is Dagu's partial success.
func TestMailOnSuccessUsesTheWorkersSettings(t *testing.T) {
	server := smtptest.Start(t, authed)
	for _, tc := range []struct {
		name    string
		steps   []*daguhav1.StepSpec
		subject string
	}{
		{"all steps succeed", []*daguhav1.StepSpec{{Name: "a", Command: "true"}}, "[Info] nightly (finished)"},
		{"a failure let pass", []*daguhav1.StepSpec{{Name: "a", Command: "exit 1", ContinueOnFailure: true}, {Name: "b", Command: "true", Depends: []string{"a"}}},
			"[Info] nightly (partial success)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(server.Received())
			e, logs := mailEngine(t)
			t.Setenv("WORKER_SMTP_PASSWORD", testPassword)
			e.Mail.SMTP = SMTPServer{Host: "127.0.0.1", Port: server.Port(), Username: "dagu", Password: "${WORKER_SMTP_PASSWORD}"}
			e.Mail.InfoMail = MailAddresses{From: "worker@example.com", To: []string{"ops@example.com, team@example.com"}, Prefix: "[Info]"}
			run := mailRun(&daguhav1.DagSpec{MailOn: &daguhav1.MailOn{Success: true}}, tc.steps...)
			if res := execute(t, context.Background(), e, run, &fakeHost{}); res.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
				t.Fatalf("run %v %q", res.status, res.message)
			}
			got := server.Wait(before + 1)[before]
			if got.From != "worker@example.com" || !slices.Equal(got.To, []string{"ops@example.com", "team@example.com"}) {
				t.Errorf("from %q to %v", got.From, got.To)
			}
			m := parseMail(t, got.Data)
			if m.subject != tc.subject || len(m.attachments) != 0 {
				t.Errorf("subject %q, %d attachments; want %q and none", m.subject, len(m.attachments), tc.subject)
			}
			wantNoPassword(t, logs)
		})
	}
}

// A step with mailOnError mails errorMail when it fails, at once, with or
// without mailOn; the run's own end is mailed only as mailOn says.
func TestMailOnErrorMailsAFailedStep(t *testing.T) {
	server := smtptest.Start(t, authed)
	e, logs := mailEngine(t)
	run := mailRun(&daguhav1.DagSpec{
		Smtp:      smtpOf(server),
		ErrorMail: &daguhav1.MailSettings{From: "dagu@example.com", To: []string{"oncall@example.com"}, Prefix: "[Step]"},
	},
		&daguhav1.StepSpec{Name: "flaky", Command: "echo flaky out; exit 4", MailOnError: true, ContinueOnFailure: true},
		&daguhav1.StepSpec{Name: "quiet", Command: "exit 5", ContinueOnFailure: true, Depends: []string{"flaky"}},
		&daguhav1.StepSpec{Name: "b", Command: "true", Depends: []string{"quiet"}},
	)
	if res := execute(t, context.Background(), e, run, &fakeHost{}); res.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("run %v %q", res.status, res.message)
	}
	mails := server.Wait(1)
	time.Sleep(100 * time.Millisecond)
	if mails = server.Received(); len(mails) != 1 {
		t.Fatalf("%d mails, want only flaky's (quiet has no mailOnError, and mailOn is not set)", len(mails))
	}
	m := parseMail(t, mails[0].Data)
	if m.subject != "[Step] nightly (running)" || !strings.Contains(m.html, "step flaky failed: exit status 4") {
		t.Errorf("subject %q, body:\n%s", m.subject, m.html)
	}
	wantNoPassword(t, logs)
}

// mailOn saying no (or nothing) sends nothing, whatever else is set.
func TestNoMailWhenMailOnSaysNo(t *testing.T) {
	server := smtptest.Start(t, authed)
	addresses := &daguhav1.MailSettings{From: "dagu@example.com", To: []string{"oncall@example.com"}}
	for _, tc := range []struct {
		name   string
		mailOn *daguhav1.MailOn
		fail   bool
	}{
		{"failure with mailOn all false", &daguhav1.MailOn{}, true},
		{"failure with only success set", &daguhav1.MailOn{Success: true}, true},
		{"success with only failure set", &daguhav1.MailOn{Failure: true}, false},
		{"failure without mailOn", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := mailEngine(t)
			command := "true"
			if tc.fail {
				command = "false"
			}
			run := mailRun(&daguhav1.DagSpec{Smtp: smtpOf(server), MailOn: tc.mailOn, ErrorMail: addresses, InfoMail: addresses},
				&daguhav1.StepSpec{Name: "a", Command: command})
			execute(t, context.Background(), e, run, &fakeHost{})
		})
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(server.Received()); n != 0 {
		t.Errorf("%d mails sent, want none", n)
	}
}

// A mail that cannot go (wrong password, no server listening, nothing to
// send to) is a warning in the log; the run ends as it would have, and
// the password is in no line.
func TestMailThatCannotGoIsLoggedAndChangesNothing(t *testing.T) {
	server := smtptest.Start(t, smtptest.Options{Username: "dagu", Password: "another-password"})
	for _, tc := range []struct {
		name   string
		smtp   *daguhav1.SmtpSettings
		to     []string
		reason string
	}{
		{"wrong password", smtpOf(server), []string{"oncall@example.com"}, "535"},
		{"no server listening", &daguhav1.SmtpSettings{Host: "127.0.0.1", Port: freePort(t), Username: "dagu", Password: testPassword}, []string{"oncall@example.com"}, "connection refused"},
		{"no address", smtpOf(server), nil, "no to address"},
		{"no server at all", nil, []string{"oncall@example.com"}, "no SMTP server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, logs := mailEngine(t)
			run := mailRun(&daguhav1.DagSpec{Smtp: tc.smtp, MailOn: &daguhav1.MailOn{Failure: true},
				ErrorMail: &daguhav1.MailSettings{From: "dagu@example.com", To: tc.to}},
				&daguhav1.StepSpec{Name: "a", Command: "exit 2"})
			res := execute(t, context.Background(), e, run, &fakeHost{})
			if res.status != daguhav1.RunStatus_RUN_STATUS_FAILED || res.message != "step a failed: exit status 2" {
				t.Errorf("run %v %q, want FAILED as the step left it", res.status, res.message)
			}
			if text := logText(logs); !strings.Contains(text, "mail not sent") || !strings.Contains(text, tc.reason) {
				t.Errorf("want a \"mail not sent\" line with %q:\n%s", tc.reason, text)
			}
			wantNoPassword(t, logs)
		})
	}
	if n := len(server.Received()); n != 0 {
		t.Errorf("%d mails taken, want none", n)
	}
}

// A DAG that names its own SMTP host gets none of the worker's
// credentials: they go only to the worker's own server.
func TestWorkersPasswordNeverGoesToADagsServer(t *testing.T) {
	workers := smtptest.Start(t, authed)
	dags := smtptest.Start(t, smtptest.Options{Username: "dagu", Password: "the-dags-own"})
	e, logs := mailEngine(t)
	e.Mail.SMTP = SMTPServer{Host: "127.0.0.1", Port: workers.Port(), Username: "dagu", Password: testPassword}
	run := mailRun(&daguhav1.DagSpec{Smtp: &daguhav1.SmtpSettings{Host: "127.0.0.1", Port: dags.Port()}, MailOn: &daguhav1.MailOn{Failure: true},
		ErrorMail: &daguhav1.MailSettings{From: "dagu@example.com", To: []string{"x@example.com"}}},
		&daguhav1.StepSpec{Name: "a", Command: "false"})
	execute(t, context.Background(), e, run, &fakeHost{})
	fails := dags.AuthFailures()
	if fails != 0 || len(dags.Received()) != 0 || len(workers.Received()) != 0 {
		t.Errorf("the DAG's server saw %d AUTH tries and took %d mails; the worker's took %d: want no AUTH and no mail",
			fails, len(dags.Received()), len(workers.Received()))
	}
	if !strings.Contains(logText(logs), "mail not sent") {
		t.Errorf("want a \"mail not sent\" line (the DAG's server wants AUTH):\n%s", logText(logs))
	}
}

// The worker speaks TLS with a server that offers STARTTLS, and from the
// start on the implicit TLS port, checking the server's certificate.
func TestMailOverTLS(t *testing.T) {
	serverTLS, roots := testCertificate(t)
	for _, implicit := range []bool{false, true} {
		t.Run(map[bool]string{false: "STARTTLS", true: "implicit"}[implicit], func(t *testing.T) {
			options := authed
			options.TLS, options.Implicit = serverTLS, implicit
			server := smtptest.Start(t, options)
			if implicit {
				old := implicitTLSPort
				implicitTLSPort = server.Port()
				t.Cleanup(func() { implicitTLSPort = old })
			}
			e, logs := mailEngine(t)
			e.Mail.roots = roots
			run := mailRun(&daguhav1.DagSpec{Smtp: smtpOf(server), MailOn: &daguhav1.MailOn{Success: true},
				InfoMail: &daguhav1.MailSettings{From: "dagu@example.com", To: []string{"x@example.com"}}},
				&daguhav1.StepSpec{Name: "a", Command: "true"})
			execute(t, context.Background(), e, run, &fakeHost{})
			if got := server.Wait(1)[0]; !got.TLS || got.AuthUser != "dagu" {
				t.Errorf("mail over TLS %v, authenticated as %q", got.TLS, got.AuthUser)
			}
			wantNoPassword(t, logs)
		})
	}
	// A certificate the worker does not trust: nothing is sent.
	options := authed
	options.TLS = serverTLS
	server := smtptest.Start(t, options)
	e, logs := mailEngine(t)
	run := mailRun(&daguhav1.DagSpec{Smtp: smtpOf(server), MailOn: &daguhav1.MailOn{Success: true},
		InfoMail: &daguhav1.MailSettings{From: "dagu@example.com", To: []string{"x@example.com"}}},
		&daguhav1.StepSpec{Name: "a", Command: "true"})
	execute(t, context.Background(), e, run, &fakeHost{})
	if len(server.Received()) != 0 || !strings.Contains(logText(logs), "certificate") {
		t.Errorf("an untrusted certificate: %d mails; log:\n%s", len(server.Received()), logText(logs))
	}
}

// Through a worker, the run's mail goes once the cluster recorded the
// run's end, with the worker's settings filling in the DAG's.
func TestWorkerMailsTheRunsEndAfterItIsRecorded(t *testing.T) {
	coordinator := &fakeCoordinator{finished: make(chan struct{}), task: &daguhav1.Task{LeaseToken: "lease-1", Run: mailRun(&daguhav1.DagSpec{
		MailOn:    &daguhav1.MailOn{Failure: true},
		ErrorMail: &daguhav1.MailSettings{To: []string{"oncall@example.com"}, AttachLogs: true},
	}, &daguhav1.StepSpec{Name: "a", Command: "echo about to fail; exit 9"})}}
	recordedFirst := make(chan bool, 1)
	options := authed
	options.OnData = func() {
		coordinator.mu.Lock()
		recordedFirst <- coordinator.finish != nil
		coordinator.mu.Unlock()
	}
	server := smtptest.Start(t, options)
	listener := bufconn.Listen(1 << 20)
	grpcServer := grpc.NewServer()
	daguhav1.RegisterCoordinatorServiceServer(grpcServer, coordinator)
	go func() { _ = grpcServer.Serve(listener) }()
	defer grpcServer.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return listener.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	logs := &syncBuffer{}
	worker, err := New(conn, Config{ID: "w1", MaxActiveRuns: 1, PollWait: 100 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond,
		LogDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Mail: MailSettings{SMTP: SMTPServer{Host: "127.0.0.1", Port: server.Port(), Username: "dagu", Password: testPassword},
			ErrorMail: MailAddresses{From: "worker@example.com", Prefix: "[daguha]"}, Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = worker.Run(ctx)
	}()
	mails := server.Wait(1)
	cancel()
	<-done
	if !<-recordedFirst {
		t.Error("the mail went before the run's end was recorded")
	}
	m := parseMail(t, mails[0].Data)
	if m.subject != "[daguha] nightly (failed)" || mails[0].From != "worker@example.com" || !strings.Contains(m.attachments["a.log"], "about to fail") {
		t.Errorf("subject %q from %q attachments %v", m.subject, mails[0].From, m.attachments)
	}
	if strings.Contains(logText(logs), testPassword) {
		t.Errorf("the worker's log shows the password:\n%s", logText(logs))
	}
	_ = os.RemoveAll(worker.LogDir())
}

// The worker's settings never print their password.
func TestSMTPServerHidesItsPassword(t *testing.T) {
	s := SMTPServer{Host: "mail", Port: "587", Username: "u", Password: testPassword}
	settings := MailSettings{SMTP: s}
	logs := &syncBuffer{}
	slog.New(slog.NewTextHandler(logs, nil)).Info("settings", "smtp", s, "all", settings)
	slog.New(slog.NewJSONHandler(logs, nil)).Info("settings", "smtp", s, "all", settings)
	for _, text := range []string{s.String(), logText(logs), strings.Join([]string{sprintV(s), sprintV(settings)}, " ")} {
		if strings.Contains(text, testPassword) {
			t.Errorf("shown: %s", text)
		}
	}
}

func sprintV(v any) string { return fmt.Sprintf("%v %+v %#v", v, v, v) }
