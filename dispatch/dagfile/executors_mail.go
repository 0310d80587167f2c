package dagfile

import (
	"net/mail"
	"strings"

	"gopkg.in/yaml.v3"
)

// Dagu's mail executor: the step sends one mail through the DAG's smtp
// server (or the worker's; see mail.go). Its settings are Dagu's: from,
// to (an address, a list, or addresses separated by commas), subject,
// message and attachments (files on the worker). The worker sends it
// (package worker, exec_mail.go); this file reads the settings.
func init() {
	executorKeys["mail"] = newKeyTable("from", "to", "subject", "message", "attachments")
	settingReaders["mail"] = (*collector).mailSetting
	executorChecks["mail"] = (*collector).checkMailStep
}

// mailSetting reads one mail setting: to and attachments as lists.
func (c *collector) mailSetting(name string, n *yaml.Node, key string) (any, bool) {
	switch name {
	case "from":
		v, ok := c.text(n, key)
		v = strings.TrimSpace(v)
		return v, ok && c.checkAddress(n, key, v)
	case "to":
		list := resolve(n).Kind == yaml.SequenceNode
		values, at := c.texts(n, key)
		to, ok := []string{}, true
		for i, v := range values {
			v = strings.TrimSpace(v)
			itemKey := key
			if list {
				itemKey = index(key, i)
			}
			if v == "" {
				continue
			}
			if !strings.Contains(v, "$") {
				if _, err := mail.ParseAddressList(v); err != nil {
					c.add(at[i], itemKey, "want e-mail addresses such as ops@example.com (several separated by commas), got %q", v)
					ok = false
					continue
				}
			}
			to = append(to, v)
		}
		return to, ok
	case "subject":
		v, ok := c.text(n, key)
		if ok && strings.ContainsAny(v, "\r\n") {
			c.add(n, key, "a subject is one line")
			return nil, false
		}
		return v, ok
	case "attachments":
		paths, _ := c.texts(n, key)
		kept := []string{}
		for _, p := range paths {
			if p = strings.TrimSpace(p); p != "" {
				kept = append(kept, p)
			}
		}
		return kept, true
	}
	return c.text(n, key)
}

// checkMailStep wants a from and a to, and no command or script: the
// settings are the mail.
func (c *collector) checkMailStep(s executorStep) {
	// A setting given but refused has its problem already.
	from, set := s.settings["from"].(string)
	if _, given := s.given["from"]; !given || set && from == "" {
		c.add(s.at, join(s.configKey, "from"), "a mail step needs a from address in the executor's settings")
	}
	to, set := s.settings["to"].([]string)
	if _, given := s.given["to"]; !given || set && len(to) == 0 {
		c.add(s.at, join(s.configKey, "to"), "a mail step needs a to address (or a list) in the executor's settings")
	}
	for _, name := range []string{"command", "script"} {
		if e, ok := s.fields[name]; ok && !isNull(resolve(e.value)) {
			c.add(e.keyAt, join(s.path, e.key), "a mail step sends its settings (from, to, subject, message): give no %s", name)
		}
	}
}
