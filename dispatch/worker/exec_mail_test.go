package worker

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/daguha/daguha/dispatch/worker/smtptest"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's mail executor against the test SMTP server (smtptest).

// The step sends its mail through the DAG's smtp server in both syntaxes,
// plain, with STARTTLS and with TLS from the start: the envelope and the
// headers are the settings with their variables expanded, the message
// is the body with its lines kept, the attachment goes as a file of its
// type; the password (a reference, or written) goes only to the server.
func TestMailExecutorSendsTheMailInBothSyntaxes(t *testing.T) {
	serverTLS, roots := testCertificate(t)
	for _, tc := range []struct {
		name      string
		tls       bool
		implicit  bool
		password  string
		stepsYAML string
	}{
		{"1.x, plain", false, false, "${SMTP_PASS}", `
  - name: tell
    executor:
      type: mail
      config:
        from: Dagu <dagu@example.com>
        to: "team@example.com, Lead <lead@example.com>"
        subject: ${DAG_NAME} loaded ${ROWS} rows
        message: |
          Loaded ${ROWS} rows.
          <b>not bold</b>
        attachments: report.csv
    dir: $D
    depends: count
`},
		{"type and with, STARTTLS", true, false, testPassword, `
  - name: tell
    type: mail
    with:
      from: dagu@example.com
      to: [team@example.com, Lead <lead@example.com>]
      subject: ${DAG_NAME} loaded ${ROWS} rows
      message: "Loaded ${ROWS} rows.\n<b>not bold</b>\n"
      attachments: ["$D/report.csv"]
    depends: count
`},
		{"type and with, implicit TLS", true, true, "${SMTP_PASS}", `
  - name: tell
    type: mail
    with:
      from: dagu@example.com
      to: [team@example.com, lead@example.com]
      subject: ${DAG_NAME} loaded ${ROWS} rows
      message: "Loaded ${ROWS} rows.\n<b>not bold</b>\n"
      attachments: ["$D/report.csv"]
    depends: count
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			options := authed
			if tc.tls {
				options.TLS, options.Implicit = serverTLS, tc.implicit
			}
			server := smtptest.Start(t, options)
			if tc.implicit {
				old := implicitTLSPort
				implicitTLSPort = server.Port()
				t.Cleanup(func() { implicitTLSPort = old })
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "report.csv"), []byte("id,rows\n1,42\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			e, logs := mailEngine(t)
			e.Mail.roots = roots
			run := yamlRun(t, dir, `name: nightly
env:
  - SMTP_PASS: `+testPassword+`
smtp:
  host: 127.0.0.1
  port: "`+server.Port()+`"
  username: dagu
  password: "`+tc.password+`"
steps:
  - name: count
    command: echo 42
    output: ROWS`+tc.stepsYAML, "")
			host := &fakeHost{}
			r := execute(t, context.Background(), e, run, host)
			wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
			got := server.Wait(1)[0]
			if got.AuthUser != "dagu" || got.TLS != tc.tls || got.From != "dagu@example.com" || !slices.Equal(got.To, []string{"team@example.com", "lead@example.com"}) {
				t.Errorf("envelope: auth %q, tls %v, from %q, to %v", got.AuthUser, got.TLS, got.From, got.To)
			}
			m := parseMail(t, got.Data)
			if m.subject != "nightly loaded 42 rows" || !strings.Contains(m.header.Get("To"), "lead@example.com") {
				t.Errorf("subject %q, To %q", m.subject, m.header.Get("To"))
			}
			if !strings.Contains(m.html, "Loaded 42 rows.<br>\n&lt;b&gt;not bold&lt;/b&gt;") {
				t.Errorf("body:\n%s", m.html)
			}
			if m.attachments["report.csv"] != "id,rows\n1,42\n" {
				t.Errorf("attachments %v", m.attachments)
			}
			if !strings.Contains(string(got.Data), "Content-Type: text/csv") {
				t.Errorf("the attachment is not sent as text/csv:\n%s", got.Data)
			}
			if out := host.last()["tell"].GetOutputTail(); !strings.Contains(out, "subject: nightly loaded 42 rows") || !strings.Contains(out, "sent through 127.0.0.1:"+server.Port()) {
				t.Errorf("output %q", out)
			}
			if strings.Contains(string(got.Data), testPassword) || strings.Contains(host.last()["tell"].GetOutputTail(), testPassword) {
				t.Error("the mail or the output holds the SMTP password")
			}
			wantNoPassword(t, logs)
		})
	}
}

// A mail that cannot go fails the step with why, never with the password:
// the server refuses the login, an attachment is missing (nothing is
// sent), no SMTP server is set.
func TestMailExecutorFailures(t *testing.T) {
	server := smtptest.Start(t, authed)
	const step = `
steps:
  - name: tell
    type: mail
    with:
      from: dagu@example.com
      to: team@example.com
      subject: hi
      ATTACH
`
	for _, tc := range []struct{ name, smtp, attach, want string }{
		{"wrong password", "smtp: {host: 127.0.0.1, port: \"" + server.Port() + "\", username: dagu, password: " + testPassword + "-not}\n", "",
			"not sent through 127.0.0.1:" + server.Port()},
		{"missing attachment", "smtp: {host: 127.0.0.1, port: \"" + server.Port() + "\", username: dagu, password: " + testPassword + "}\n",
			"attachments: [\"$D/none.pdf\"]", "attachment $D/none.pdf"},
		{"no server", "", "", "no SMTP server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			e, logs := mailEngine(t)
			run := yamlRun(t, dir, tc.smtp+strings.Replace(step, "ATTACH", tc.attach, 1), "")
			host := &fakeHost{}
			r := execute(t, context.Background(), e, run, host)
			wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "")
			st := host.last()["tell"]
			if want := strings.ReplaceAll(tc.want, "$D", dir); !strings.Contains(st.GetError(), want) {
				t.Errorf("error %q, want …%s…", st.GetError(), want)
			}
			if strings.Contains(st.GetError(), testPassword) || strings.Contains(st.GetOutputTail(), testPassword) {
				t.Errorf("the step shows the password: %q %q", st.GetError(), st.GetOutputTail())
			}
			wantNoPassword(t, logs)
		})
	}
	if n := len(server.Received()); n != 0 {
		t.Errorf("%d mails taken, want none", n)
	}
}
