package dagfile

import (
	"net/mail"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's mail settings: the DAG's smtp server, mailOn (when a run's end
// is mailed), errorMail and infoMail (from, to, prefix, attachLogs), and
// a step's mailOnError. The worker that runs the run sends the mails
// (package worker, mail.go); this file only reads them.

var (
	smtpKeys   = newKeyTable("host", "port", "username", "password")
	mailOnKeys = newKeyTable("success", "failure", "wait")
	mailKeys   = newKeyTable("from", "to", "prefix", "attachLogs")
)

// dagMail reads a DAG's smtp, mailOn, errorMail and infoMail.
func (c *collector) dagMail(dag *daguhav1.DagSpec, fields map[string]entry) {
	if e, ok := fields["smtp"]; ok {
		dag.Smtp = c.smtp(e.value, e.key)
	}
	if e, ok := fields["mailOn"]; ok {
		dag.MailOn = c.mailOn(e.value, e.key)
	}
	if e, ok := fields["errorMail"]; ok {
		dag.ErrorMail = c.mailSettings(e.value, e.key)
	}
	if e, ok := fields["infoMail"]; ok {
		dag.InfoMail = c.mailSettings(e.value, e.key)
	}
}

// stepMail reads a step's mailOnError.
func (c *collector) stepMail(step *daguhav1.StepSpec, fields map[string]entry, path string) {
	if e, ok := fields["mailOnError"]; ok {
		step.MailOnError, _ = c.boolean(e.value, join(path, e.key))
	}
}

// mapOf resolves n as a map, reporting anything else but null; nil for
// null or a problem.
func (c *collector) mapOf(n *yaml.Node, path, example string) *yaml.Node {
	r := resolve(n)
	if isNull(r) {
		return nil
	}
	if r.Kind != yaml.MappingNode {
		c.add(n, path, "want a map such as %s, got %s", example, describe(n))
		return nil
	}
	return r
}

// smtp reads the SMTP server: nil when no key says anything. The
// password's value never goes into a problem's message.
func (c *collector) smtp(n *yaml.Node, path string) *daguhav1.SmtpSettings {
	r := c.mapOf(n, path, "{host: smtp.example.com, port: 587}")
	if r == nil {
		return nil
	}
	fields := c.fields(r, path, smtpKeys)
	s := &daguhav1.SmtpSettings{}
	if e, ok := fields["host"]; ok {
		key := join(path, e.key)
		if v, ok := c.text(e.value, key); ok {
			if strings.ContainsAny(v, " \t\r\n/") {
				c.add(e.value, key, "want a host name or address, got %q", v)
			} else {
				s.Host = v
			}
		}
	}
	if e, ok := fields["port"]; ok {
		key := join(path, e.key)
		// A number or a string, as in Dagu; a reference is the worker's.
		if v, ok := c.text(e.value, key); ok {
			v = strings.TrimSpace(v)
			if port, err := strconv.Atoi(v); v != "" && !strings.Contains(v, "$") && (err != nil || port < 1 || port > 65535) {
				c.add(e.value, key, "want a port number from 1 to 65535 (or a reference such as ${SMTP_PORT}), got %q", v)
			} else {
				s.Port = v
			}
		}
	}
	if e, ok := fields["username"]; ok {
		s.Username, _ = c.text(e.value, join(path, e.key))
	}
	if e, ok := fields["password"]; ok {
		s.Password, _ = c.text(e.value, join(path, e.key))
	}
	if s.Host == "" && s.Port == "" && s.Username == "" && s.Password == "" {
		return nil
	}
	return s
}

func (c *collector) mailOn(n *yaml.Node, path string) *daguhav1.MailOn {
	r := c.mapOf(n, path, "{failure: true, success: false}")
	if r == nil {
		return nil
	}
	fields := c.fields(r, path, mailOnKeys)
	on := &daguhav1.MailOn{}
	if e, ok := fields["success"]; ok {
		on.Success, _ = c.boolean(e.value, join(path, e.key))
	}
	if e, ok := fields["failure"]; ok {
		on.Failure, _ = c.boolean(e.value, join(path, e.key))
	}
	if e, ok := fields["wait"]; ok {
		c.add(e.keyAt, join(path, e.key), "not supported: current Dagu's wait mail is for runs waiting for a person's approval, which daguha does not have")
	}
	return on
}

// mailSettings reads errorMail or infoMail: nil when no key says
// anything. to is an address or a list of them.
func (c *collector) mailSettings(n *yaml.Node, path string) *daguhav1.MailSettings {
	r := c.mapOf(n, path, "{from: dagu@example.com, to: ops@example.com}")
	if r == nil {
		return nil
	}
	fields := c.fields(r, path, mailKeys)
	m := &daguhav1.MailSettings{}
	if e, ok := fields["from"]; ok {
		key := join(path, e.key)
		if v, ok := c.text(e.value, key); ok {
			m.From = strings.TrimSpace(v)
			c.checkAddress(e.value, key, m.From)
		}
	}
	if e, ok := fields["to"]; ok {
		key := join(path, e.key)
		list := resolve(e.value).Kind == yaml.SequenceNode
		values, at := c.texts(e.value, key)
		for i, v := range values {
			v = strings.TrimSpace(v)
			if v == "" {
				continue
			}
			itemKey := key
			if list {
				itemKey = index(key, i)
			}
			if c.checkAddress(at[i], itemKey, v) {
				m.To = append(m.To, v)
			}
		}
	}
	if e, ok := fields["prefix"]; ok {
		key := join(path, e.key)
		if v, ok := c.text(e.value, key); ok {
			if strings.ContainsAny(v, "\r\n") {
				c.add(e.value, key, "a subject's prefix is one line")
			} else {
				m.Prefix = strings.TrimSpace(v)
			}
		}
	}
	if e, ok := fields["attachLogs"]; ok {
		m.AttachLogs, _ = c.boolean(e.value, join(path, e.key))
	}
	if m.From == "" && len(m.To) == 0 && m.Prefix == "" && !m.AttachLogs {
		return nil
	}
	return m
}

// checkAddress reports an address that is not one (net/mail's form:
// a@example.com or "Name <a@example.com>"); one holding a reference is
// the worker's to expand and check.
func (c *collector) checkAddress(n *yaml.Node, path, address string) bool {
	if address == "" || strings.Contains(address, "$") {
		return true
	}
	if _, err := mail.ParseAddress(address); err != nil {
		c.add(n, path, "want an e-mail address such as ops@example.com, got %q", address)
		return false
	}
	return true
}
