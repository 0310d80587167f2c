package worker

import (
	"context"
	"crypto/x509"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's mail notifications, sent by the worker that runs the run, which
// has its result and its steps' logs:
//
//   - When the run ends FAILED and the DAG's mailOn.failure is set, an
//     errorMail; when it ends SUCCEEDED and mailOn.success is set, an
//     infoMail. A cancelled run mails nothing. The worker sends the run's
//     mail only once the cluster recorded the run's end, and after
//     reporting it, so a mail never holds the run up; an attempt given up
//     (its lease lost) mails nothing, and the attempt that takes the run
//     over mails its own end.
//   - When a step with mailOnError fails (its last try), an errorMail at
//     once, whether or not mailOn is set, as in Dagu.
//   - The subject is Dagu's: "PREFIX DAG (STATUS)", STATUS in Dagu's words:
//     finished, partial success (a step failed with continueOn), failed,
//     or running for a step's mail. The body is HTML: the run (id,
//     attempt, params, times, error) and a table of its steps. With
//     attachLogs, each step's log is attached (its last 4 MiB; 16 MiB of
//     logs at most, the others named in the body).
//   - The DAG's settings win over the worker's (MailSettings: its config
//     file, flags and DAGU_SMTP_*, DAGU_ERROR_MAIL_*, DAGU_INFO_MAIL_*)
//     key by key, but for the server: a DAG that names its own smtp host
//     uses its own port and credentials only, so the worker's password
//     never goes to a server a DAG chose. A DAG without a host uses the
//     worker's server, with its own port, username and password where it
//     gives them.
//   - References in the DAG's values ($NAME, ${NAME}) are expanded when
//     the mail is sent, from the run's variables (builtins, the DAG's env,
//     params) and then the worker's environment; those in the worker's
//     settings from the worker's environment only. A to value may hold
//     several addresses separated by commas.
//   - A mail that cannot be sent (no SMTP host, no address, the server
//     refused it or could not be reached within the timeout) is logged as
//     a warning and changes nothing about the run. The password never goes
//     into a log line, an error or the mail.

// MailAddresses is Dagu's errorMail or infoMail.
type MailAddresses struct {
	From       string
	To         []string
	Prefix     string
	AttachLogs bool
}

// MailSettings are a worker's own mail settings, Dagu's global ones:
// what a DAG's settings leave empty (see mail.go).
type MailSettings struct {
	SMTP      SMTPServer
	ErrorMail MailAddresses
	InfoMail  MailAddresses
	// Timeout bounds the delivery of one mail (default
	// DefaultMailTimeout).
	Timeout time.Duration

	// roots, when set, are the only CAs an SMTP server's certificate may
	// come from (tests).
	roots *x509.CertPool
}

// outMail is a mail an attempt is to send, or why it cannot be.
type outMail struct {
	what    string // for the log: "run failed", "step load failed"...
	server  SMTPServer
	msg     *mailMessage
	problem string
}

// mailHost is a RunHost that sends the attempt's mails itself: a step's
// at once, the run's once the cluster recorded its end. With other hosts
// the engine sends them before going on.
type mailHost interface {
	sendMail(m *outMail, runEnd bool)
}

// stepEnd is what the mails say of a step that ended.
type stepEnd struct {
	ended              bool
	status             daguhav1.StepStatus
	started, finished  int64
	exitCode           int32
	errorText          string
	continuedOnFailure bool
}

// mailRecord keeps the steps' ends for the mails of one attempt.
type mailRecord struct {
	mu   sync.Mutex
	ends []stepEnd
}

// stepEnded is told each step's final state (setFinal). A failed step
// with mailOnError is mailed at once, unless the attempt is being given
// up.
func (x *execution) stepEnded(i int, st *daguhav1.StepState) {
	x.recordEnd(i, st)
	if st.GetStatus() == daguhav1.StepStatus_STEP_STATUS_FAILED && x.steps[i].GetMailOnError() && x.failure() == nil && x.parent.Err() == nil {
		name := x.steps[i].GetName()
		m := x.composeMail(x.run.GetDag().GetErrorMail(), x.e.Mail.ErrorMail, "running", fmt.Sprintf("step %s failed: %s", name, st.GetError()))
		m.what = "step " + name + " failed"
		x.deliverMail(m, false)
	}
}

// recordEnd keeps step i's end for the mail of the run's end.
func (x *execution) recordEnd(i int, st *daguhav1.StepState) {
	x.mail.mu.Lock()
	defer x.mail.mu.Unlock()
	if x.mail.ends == nil {
		x.mail.ends = make([]stepEnd, len(x.steps))
	}
	x.mail.ends[i] = stepEnd{ended: true, status: st.GetStatus(), started: st.GetStartedAtUnixNano(), finished: st.GetFinishedAtUnixNano(),
		exitCode: st.GetExitCode(), errorText: st.GetError(), continuedOnFailure: x.steps[i].GetContinueOnFailure()}
}

// mailed sends the mail of the run's end, if mailOn asks for one, and
// returns the end as it was given.
func (x *execution) mailed(status daguhav1.RunStatus, message string, outputs map[string]string) (daguhav1.RunStatus, string, map[string]string) {
	dag := x.run.GetDag()
	switch {
	case status == daguhav1.RunStatus_RUN_STATUS_FAILED && dag.GetMailOn().GetFailure():
		m := x.composeMail(dag.GetErrorMail(), x.e.Mail.ErrorMail, "failed", message)
		m.what = "run failed"
		x.deliverMail(m, true)
	case status == daguhav1.RunStatus_RUN_STATUS_SUCCEEDED && dag.GetMailOn().GetSuccess():
		word := "finished"
		if x.partly() {
			word = "partial success"
		}
		m := x.composeMail(dag.GetInfoMail(), x.e.Mail.InfoMail, word, message)
		m.what = "run " + word
		x.deliverMail(m, true)
	}
	return status, message, outputs
}

// partly tells whether a step failed and the run went on (continueOn).
func (x *execution) partly() bool {
	x.mail.mu.Lock()
	defer x.mail.mu.Unlock()
	for _, end := range x.mail.ends {
		if end.status == daguhav1.StepStatus_STEP_STATUS_FAILED && end.continuedOnFailure {
			return true
		}
	}
	return false
}

func (x *execution) deliverMail(m *outMail, runEnd bool) {
	if h, ok := x.host.(mailHost); ok {
		h.sendMail(m, runEnd)
		return
	}
	x.e.sendMail(context.Background(), x.logger, m)
}

// sendMail sends m and logs what came of it.
func (e *Engine) sendMail(ctx context.Context, logger *slog.Logger, m *outMail) {
	if m.problem != "" {
		logger.Warn("mail not sent", "mail", m.what, "reason", m.problem)
		return
	}
	to := make([]string, len(m.msg.to))
	for i, a := range m.msg.to {
		to[i] = a.Address
	}
	server := net.JoinHostPort(m.server.Host, orDefault(m.server.Port, DefaultSMTPPort))
	if err := deliver(ctx, m.server, m.msg, e.Mail.Timeout, e.Mail.roots); err != nil {
		logger.Warn("mail not sent", "mail", m.what, "smtp", server, "to", strings.Join(to, ","), "error", err.Error())
		return
	}
	logger.Info("mail sent", "mail", m.what, "smtp", server, "to", strings.Join(to, ","), "subject", m.msg.subject)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// composeMail makes a mail of the run with the DAG's addresses over the
// worker's; problem says why it cannot go.
func (x *execution) composeMail(dagAddresses *daguhav1.MailSettings, workerAddresses MailAddresses, status, message string) *outMail {
	own := resolver{x: x, vars: x.base, osEnv: true}
	workers := resolver{x: x, osEnv: true}
	m := &outMail{server: x.smtpServer(own, workers)}
	from, fromResolver := dagAddresses.GetFrom(), own
	if from == "" {
		from, fromResolver = workerAddresses.From, workers
	}
	to, toResolver := dagAddresses.GetTo(), own
	if len(to) == 0 {
		to, toResolver = workerAddresses.To, workers
	}
	prefix := dagAddresses.GetPrefix()
	if prefix == "" {
		prefix = expandVars(workerAddresses.Prefix, workers)
	} else {
		prefix = expandVars(prefix, own)
	}
	attach := dagAddresses.GetAttachLogs() || workerAddresses.AttachLogs

	msg := &mailMessage{subject: strings.TrimSpace(fmt.Sprintf("%s %s (%s)", strings.TrimSpace(prefix), dagName(x.run), status))}
	m.msg = msg
	switch {
	case m.server.Host == "":
		m.problem = "no SMTP server: set smtp.host in the DAG, or the worker's smtp host"
		return m
	case strings.TrimSpace(from) == "":
		m.problem = "no from address: set it in the DAG's errorMail/infoMail, or the worker's"
		return m
	}
	sender, err := mail.ParseAddress(strings.TrimSpace(expandVars(from, fromResolver)))
	if err != nil {
		m.problem = fmt.Sprintf("from: %v", err)
		return m
	}
	msg.from = sender
	for _, value := range to {
		value = strings.TrimSpace(expandVars(value, toResolver))
		if value == "" {
			continue
		}
		list, err := mail.ParseAddressList(value)
		if err != nil {
			m.problem = fmt.Sprintf("to %q: %v", value, err)
			return m
		}
		msg.to = append(msg.to, list...)
	}
	if len(msg.to) == 0 {
		m.problem = "no to address: set it in the DAG's errorMail/infoMail, or the worker's"
		return m
	}
	msg.html = x.mailBody(msg.subject, status, message)
	if attach && x.e.LogDir != "" {
		for _, s := range x.steps {
			msg.attachments = append(msg.attachments, attachment{name: safeName(s.GetName()) + ".log",
				path: x.e.LogPath(x.run.GetId(), x.run.GetAttempt(), s.GetName())})
		}
	}
	return m
}

// smtpServer is the server a mail of the run goes through (see mail.go).
func (x *execution) smtpServer(own, workers resolver) SMTPServer {
	dag := x.run.GetDag().GetSmtp()
	global := x.e.Mail.SMTP
	if dag.GetHost() != "" {
		return SMTPServer{Host: expandVars(dag.GetHost(), own), Port: expandVars(dag.GetPort(), own),
			Username: expandVars(dag.GetUsername(), own), Password: expandVars(dag.GetPassword(), own)}
	}
	s := SMTPServer{Host: expandVars(global.Host, workers), Port: expandVars(global.Port, workers),
		Username: expandVars(global.Username, workers), Password: expandVars(global.Password, workers)}
	if dag.GetPort() != "" {
		s.Port = expandVars(dag.GetPort(), own)
	}
	if dag.GetUsername() != "" || dag.GetPassword() != "" {
		s.Username, s.Password = expandVars(dag.GetUsername(), own), expandVars(dag.GetPassword(), own)
	}
	s.Host, s.Port = strings.TrimSpace(s.Host), strings.TrimSpace(s.Port)
	return s
}

// daguStepStatus is a step's status in Dagu's words.
func daguStepStatus(status daguhav1.StepStatus) string {
	switch status {
	case daguhav1.StepStatus_STEP_STATUS_RUNNING:
		return "running"
	case daguhav1.StepStatus_STEP_STATUS_SUCCEEDED:
		return "finished"
	case daguhav1.StepStatus_STEP_STATUS_FAILED:
		return "failed"
	case daguhav1.StepStatus_STEP_STATUS_CANCELLED:
		return "canceled"
	case daguhav1.StepStatus_STEP_STATUS_SKIPPED:
		return "skipped"
	}
	return "not started"
}

// mailBody is the HTML of a mail: the run, then a row per step.
func (x *execution) mailBody(subject, status, message string) string {
	x.mail.mu.Lock()
	ends := append([]stepEnd(nil), x.mail.ends...)
	x.mail.mu.Unlock()
	x.mu.Lock()
	started := append([]bool(nil), x.started...)
	x.mu.Unlock()

	var b strings.Builder
	esc := html.EscapeString
	at := func(unixNano int64) string {
		if unixNano <= 0 {
			return ""
		}
		return time.Unix(0, unixNano).Format("2006-01-02 15:04:05 MST")
	}
	runStarted := x.run.GetStartedAtUnixNano()
	var runFinished int64
	for _, end := range ends {
		if end.started > 0 && (runStarted == 0 || end.started < runStarted) {
			runStarted = end.started
		}
		runFinished = max(runFinished, end.finished)
	}
	if status == "running" {
		runFinished = 0
	}
	params := x.run.GetParams()
	if params == "" {
		params = "(none)"
	}
	b.WriteString("<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>" + esc(subject) + "</title></head>\n")
	b.WriteString("<body style=\"font-family: sans-serif\">\n")
	b.WriteString("<h2>" + esc(dagName(x.run)) + ": " + esc(status) + "</h2>\n")
	b.WriteString("<table cellpadding=\"4\">\n")
	row := func(name, value string) {
		b.WriteString("<tr><th align=\"left\">" + esc(name) + "</th><td>" + esc(value) + "</td></tr>\n")
	}
	row("DAG run ID", x.run.GetId())
	row("Attempt", strconv.FormatUint(uint64(x.run.GetAttempt()), 10))
	row("Params", params)
	row("Started at", at(runStarted))
	row("Finished at", at(runFinished))
	if message != "" {
		row("Error", message)
	}
	b.WriteString("</table>\n<h3>Steps</h3>\n")
	b.WriteString("<table border=\"1\" cellpadding=\"4\" style=\"border-collapse: collapse\">\n<tr>")
	for _, h := range []string{"#", "Step", "Started at", "Finished at", "Status", "Command", "Error"} {
		b.WriteString("<th>" + h + "</th>")
	}
	b.WriteString("</tr>\n")
	for i, s := range x.steps {
		var end stepEnd
		if i < len(ends) {
			end = ends[i]
		}
		state := daguStepStatus(end.status)
		if !end.ended && i < len(started) && started[i] {
			state = "running"
		}
		b.WriteString("<tr><td>" + strconv.Itoa(i+1) + "</td><td>" + esc(s.GetName()) + "</td><td>" + esc(at(end.started)) +
			"</td><td>" + esc(at(end.finished)) + "</td><td>" + esc(state) + "</td><td><code>" + esc(stepCommand(s)) +
			"</code></td><td>" + esc(end.errorText) + "</td></tr>\n")
	}
	b.WriteString("</table>\n</body>\n</html>\n")
	return b.String()
}

// stepCommand is what a step runs, for the mail's table.
func stepCommand(s *daguhav1.StepSpec) string {
	switch {
	case s.GetChildDag() != "":
		if s.GetParallel() != nil {
			return "run " + s.GetChildDag() + " (parallel)"
		}
		return "run " + s.GetChildDag()
	case s.GetScript() != "":
		script := strings.TrimSpace(s.GetScript())
		if len(script) > 500 {
			script = strings.ToValidUTF8(script[:500], "") + "..."
		}
		return script
	}
	return s.GetCommand()
}

// sendMail sends a step's mail at once, and keeps the run's end's for
// mailRunEnd.
func (h *workerHost) sendMail(m *outMail, runEnd bool) {
	if runEnd {
		h.mu.Lock()
		h.endMail = m
		h.mu.Unlock()
		return
	}
	run := h.task.GetRun()
	h.w.mailAsync(h.w.logger.With("run", run.GetId(), "dag", run.GetDagName(), "attempt", run.GetAttempt(), "fencing_token", run.GetFencingToken()), m)
}

// mailRunEnd sends the mail of the run's end, if it has one: the worker
// calls it once the cluster recorded the end.
func (h *workerHost) mailRunEnd(logger *slog.Logger) {
	h.mu.Lock()
	m := h.endMail
	h.endMail = nil
	h.mu.Unlock()
	if m != nil {
		h.w.mailAsync(logger, m)
	}
}

// mailAsync sends m without holding the run's slot; the worker waits for
// its mails when it stops (each within the mail timeout).
func (w *Worker) mailAsync(logger *slog.Logger, m *outMail) {
	w.mails.Add(1)
	go func() {
		defer w.mails.Done()
		w.engine.sendMail(context.Background(), logger, m)
	}()
}
