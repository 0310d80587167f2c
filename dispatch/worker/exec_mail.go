package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"mime"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// kindMail is Dagu's mail executor: the step sends one mail.
const kindMail = "mail"

// mailStepSettings are the mail executor's settings
// (dagfile/executors_mail.go).
type mailStepSettings struct {
	From        string   `json:"from"`
	To          []string `json:"to"`
	Subject     string   `json:"subject"`
	Message     string   `json:"message"`
	Attachments []string `json:"attachments"`
}

// mailExecutor sends the step's mail through the SMTP server the run's
// mails go through (the DAG's smtp, else the worker's: see mail.go) with
// the same code, so the same TLS (STARTTLS when offered, implicit on port
// 465) and the same care for the password. The variables in every
// setting are expanded (the step's, then the worker's environment); a to
// value may hold several addresses separated by commas. The message is
// text, sent as HTML with its line breaks kept, as Dagu sends it; one that
// is a whole HTML document (<!DOCTYPE html or <html) goes as it is.
// Attachments are files on the worker (relative to the step's working
// directory), each at most 4 MiB and 16 MiB in all; one missing or too big
// fails the step before anything is sent. The output says what was sent
// (as Dagu's does), a mail the server did not take fails the step.
type mailExecutor struct{}

func init() { registerExecutor(kindMail, mailExecutor{}) }

func (mailExecutor) execute(ctx context.Context, t *stepTry) *daguhav1.StepState {
	x, spec := t.x, t.spec()
	var s mailStepSettings
	if cfg := spec.GetExecutorConfigJson(); cfg != "" {
		if err := json.Unmarshal([]byte(cfg), &s); err != nil {
			return executorResult(t, nil, fmt.Sprintf("mail settings: %v", err))
		}
	}
	own := t.scope()
	server := x.smtpServer(own, resolver{x: x, osEnv: true})
	if server.Host == "" {
		return executorResult(t, nil, "mail step: no SMTP server: set smtp.host in the DAG, or the worker's smtp host")
	}
	msg := &mailMessage{subject: strings.TrimSpace(expandVars(s.Subject, own))}
	from, err := mail.ParseAddress(strings.TrimSpace(expandVars(s.From, own)))
	if err != nil {
		return executorResult(t, nil, fmt.Sprintf("mail step: from %q: %v", expandVars(s.From, own), err))
	}
	msg.from = from
	for _, value := range s.To {
		value = strings.TrimSpace(expandVars(value, own))
		if value == "" {
			continue
		}
		list, err := mail.ParseAddressList(value)
		if err != nil {
			return executorResult(t, nil, fmt.Sprintf("mail step: to %q: %v", value, err))
		}
		msg.to = append(msg.to, list...)
	}
	if len(msg.to) == 0 {
		return executorResult(t, nil, "mail step: no to address (after expanding variables)")
	}
	message := expandVars(s.Message, own)
	msg.html = messageHTML(message)
	if len(s.Attachments) > 0 {
		dir, err := x.stepDir(spec, own)
		if err != nil {
			return executorResult(t, nil, fmt.Sprintf("mail step: %v", err))
		}
		total := int64(0)
		for _, name := range s.Attachments {
			path := resolvePath(expandVars(name, own), dir)
			info, err := os.Stat(path)
			switch {
			case err != nil:
				return executorResult(t, nil, fmt.Sprintf("mail step: attachment %s: %v", path, err))
			case !info.Mode().IsRegular():
				return executorResult(t, nil, fmt.Sprintf("mail step: attachment %s is not a file", path))
			case info.Size() > maxAttachmentBytes:
				return executorResult(t, nil, fmt.Sprintf("mail step: attachment %s is %d bytes, more than the %d a mail step attaches", path, info.Size(), maxAttachmentBytes))
			}
			total += info.Size()
			if total > maxAttachedBytes {
				return executorResult(t, nil, fmt.Sprintf("mail step: the attachments are more than the %d bytes a mail step attaches in all", maxAttachedBytes))
			}
			contentType := mime.TypeByExtension(filepath.Ext(path))
			if contentType == "" {
				contentType = "application/octet-stream"
			}
			msg.attachments = append(msg.attachments, attachment{name: filepath.Base(path), path: path, contentType: contentType})
		}
	}

	var out strings.Builder
	to := make([]string, len(msg.to))
	for i, a := range msg.to {
		to[i] = a.String()
	}
	fmt.Fprintf(&out, "sending mail\n-----\nfrom: %s\nto: %s\nsubject: %s\n", msg.from, strings.Join(to, ", "), msg.subject)
	for _, a := range msg.attachments {
		fmt.Fprintf(&out, "attachment: %s\n", a.path)
	}
	fmt.Fprintf(&out, "message: %s\n-----\n", message)
	address := net.JoinHostPort(server.Host, orDefault(server.Port, DefaultSMTPPort))
	if err := deliver(ctx, server, msg, x.e.Mail.Timeout, x.e.Mail.roots); err != nil {
		if ctx.Err() != nil {
			st := stoppedState(ctx)
			st.OutputTail = out.String()
			return st
		}
		return executorResult(t, []byte(out.String()), fmt.Sprintf("mail step: not sent through %s: %v", address, err))
	}
	fmt.Fprintf(&out, "sent through %s\n", address)
	return executorResult(t, []byte(out.String()), "")
}

// messageHTML is a mail step's message as the HTML a mail carries.
func messageHTML(message string) string {
	head := strings.ToLower(strings.TrimSpace(message))
	if strings.HasPrefix(head, "<!doctype html") || strings.HasPrefix(head, "<html") {
		return message
	}
	text := html.EscapeString(strings.ReplaceAll(message, "\r\n", "\n"))
	return "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"></head>\n<body>\n" +
		strings.ReplaceAll(text, "\n", "<br>\n") + "\n</body>\n</html>\n"
}
