package main

import (
	"fmt"
	"net/mail"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/dispatch/worker"
)

// A worker's own mail settings: Dagu's global smtp, errorMail and infoMail
// (its config file's keys and DAGU_SMTP_*, DAGU_ERROR_MAIL_*,
// DAGU_INFO_MAIL_*), which the DAGs' own settings override. The worker
// that runs a run sends its mails, so these are the worker commands'
// flags (worker, and agent for worker agents and -dev), never the
// servers'.

// mailFlags are the flags of the worker's mail settings.
func mailFlags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "smtp.host", EnvVars: []string{"DAGU_SMTP_HOST"}, Usage: "workers: the SMTP server of the DAGs' mails (mailOn, mailOnError) when a DAG names none"},
		&cli.StringFlag{Name: "smtp.port", EnvVars: []string{"DAGU_SMTP_PORT"}, Usage: "workers: its port (default " + worker.DefaultSMTPPort + "; 465: TLS from the start, else STARTTLS when the server offers it)"},
		&cli.StringFlag{Name: "smtp.username", EnvVars: []string{"DAGU_SMTP_USERNAME"}, Usage: "workers: the SMTP username (AUTH PLAIN, over TLS only)"},
		&cli.StringFlag{Name: "smtp.password", EnvVars: []string{"DAGU_SMTP_PASSWORD"}, Usage: "workers: the SMTP password; sent only to -smtp.host, never to a server a DAG names"},
	}
	for _, kind := range []struct{ flag, key, env, what string }{
		{"error-mail", "errorMail", "DAGU_ERROR_MAIL", "failure"},
		{"info-mail", "infoMail", "DAGU_INFO_MAIL", "success"},
	} {
		flags = append(flags,
			&cli.StringFlag{Name: kind.flag + ".from", EnvVars: []string{kind.env + "_FROM"}, Usage: "workers: the sender of " + kind.what + " mails when a DAG's " + kind.key + " names none"},
			&cli.StringSliceFlag{Name: kind.flag + ".to", EnvVars: []string{kind.env + "_TO"}, Usage: "workers: the recipients of " + kind.what + " mails (comma separated) when a DAG's " + kind.key + " names none"},
			&cli.StringFlag{Name: kind.flag + ".prefix", EnvVars: []string{kind.env + "_PREFIX"}, Usage: "workers: the subject's prefix of " + kind.what + " mails when a DAG's " + kind.key + " gives none"},
			&cli.BoolFlag{Name: kind.flag + ".attach-logs", EnvVars: []string{kind.env + "_ATTACH_LOGS"}, Usage: "workers: attach the steps' logs to " + kind.what + " mails (as does a DAG's " + kind.key + ".attachLogs)"},
		)
	}
	return flags
}

// mailFlag tells the flags of mailFlags, which servers do not take.
func mailFlag(name string) bool {
	return strings.HasPrefix(name, "smtp.") || strings.HasPrefix(name, "error-mail.") || strings.HasPrefix(name, "info-mail.")
}

// mailSettings are the worker's mail settings from its flags.
func mailSettings(c *cli.Context) worker.MailSettings {
	addresses := func(kind string) worker.MailAddresses {
		var to []string
		for _, address := range c.StringSlice(kind + ".to") {
			if address = strings.TrimSpace(address); address != "" {
				to = append(to, address)
			}
		}
		return worker.MailAddresses{From: strings.TrimSpace(c.String(kind + ".from")), To: to,
			Prefix: strings.TrimSpace(c.String(kind + ".prefix")), AttachLogs: c.Bool(kind + ".attach-logs")}
	}
	return worker.MailSettings{
		SMTP: worker.SMTPServer{Host: strings.TrimSpace(c.String("smtp.host")), Port: strings.TrimSpace(c.String("smtp.port")),
			Username: c.String("smtp.username"), Password: c.String("smtp.password")},
		ErrorMail: addresses("error-mail"),
		InfoMail:  addresses("info-mail"),
	}
}

// checkMail reports mail settings that cannot work: a port that is no
// port, an address that is no address (values naming a variable are the
// worker's to expand when it sends). No message shows the password.
func checkMail(c *cli.Context, from sources) []string {
	if !hasFlag(c, "smtp.host") {
		return nil
	}
	var problems []string
	if port := strings.TrimSpace(c.String("smtp.port")); port != "" && !strings.Contains(port, "$") {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			problems = append(problems, fmt.Sprintf("smtp.port: %q (from %s) is not a port from 1 to 65535", port, from.where("smtp.port")))
		}
	}
	if host := c.String("smtp.host"); strings.ContainsAny(host, " \t\r\n/") {
		problems = append(problems, fmt.Sprintf("smtp.host: %q (from %s) is not a host name or address", host, from.where("smtp.host")))
	}
	for _, kind := range []string{"error-mail", "info-mail"} {
		values := []string{c.String(kind + ".from")}
		values = append(values, c.StringSlice(kind+".to")...)
		for i, value := range values {
			flag := kind + ".to"
			if i == 0 {
				flag = kind + ".from"
			}
			value = strings.TrimSpace(value)
			if value == "" || strings.Contains(value, "$") {
				continue
			}
			if _, err := mail.ParseAddress(value); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %q (from %s) is not an e-mail address", flag, value, from.where(flag)))
			}
		}
		if prefix := c.String(kind + ".prefix"); strings.ContainsAny(prefix, "\r\n") {
			problems = append(problems, fmt.Sprintf("%s.prefix: a subject's prefix is one line (from %s)", kind, from.where(kind+".prefix")))
		}
	}
	return problems
}
