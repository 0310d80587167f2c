package dagfile

import (
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Dagu's ssh executor: the step's command (or commands, or script) runs on
// another host over SSH. Dagu 1.x's settings are user, ip, port, key,
// password (and strictHostKeyChecking, which 1.x refused when true);
// current Dagu's add host (ip stays as its alias), strictHostKey (default
// true), knownHostFile, timeout, shell, shellArgs and bastion. The worker
// connects (package worker, exec_ssh.go); this file reads the settings.
func init() {
	executorKeys["ssh"] = newKeyTable("user", "host", "ip", "port", "key", "password", "strictHostKey",
		"strictHostKeyChecking", "knownHostFile", "timeout", "shell", "shellArgs", "bastion")
	settingReaders["ssh"] = (*collector).sshSetting
	executorChecks["ssh"] = (*collector).checkSSHStep
}

// sshSetting reads one ssh setting; ip becomes host, and 1.x's
// strictHostKeyChecking strictHostKey (checkSSHStep refuses both given).
// The password's value never goes into a problem's message.
func (c *collector) sshSetting(name string, n *yaml.Node, key string) (any, bool) {
	switch name {
	case "strictHostKey", "strictHostKeyChecking":
		return c.boolean(n, key)
	case "port":
		v, ok := c.text(n, key)
		if !ok {
			return nil, false
		}
		v = strings.TrimSpace(v)
		if port, err := strconv.Atoi(v); v != "" && !strings.Contains(v, "$") && (err != nil || port < 0 || port > 65535) {
			c.add(n, key, "want a port number from 1 to 65535 (or a reference such as ${SSH_PORT}), got %q", v)
			return nil, false
		}
		return v, true
	case "host", "ip":
		v, ok := c.text(n, key)
		if ok && strings.ContainsAny(v, " \t\r\n/@") {
			c.add(n, key, "want a host name or address (the user goes in user), got %q", v)
			return nil, false
		}
		return strings.TrimSpace(v), ok
	case "timeout":
		return c.sshTimeout(n, key)
	case "shellArgs":
		r := resolve(n)
		if !isNull(r) && r.Kind != yaml.SequenceNode {
			c.add(n, key, "want a list of arguments, got %s", describe(n))
			return nil, false
		}
		args, _ := c.texts(n, key)
		return args, true
	case "bastion":
		c.add(n, key, "not supported yet: daguha connects to the host directly, with no jump host")
		return nil, false
	}
	return c.text(n, key)
}

// sshTimeout reads the connection timeout: a duration as current Dagu
// writes it ("30s", "1m") or a number of seconds; kept as Go's duration
// text.
func (c *collector) sshTimeout(n *yaml.Node, key string) (any, bool) {
	v, ok := c.text(n, key)
	if !ok {
		return nil, false
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, false
	}
	d, err := time.ParseDuration(v)
	if seconds, serr := strconv.ParseInt(v, 10, 64); serr == nil {
		d, err = time.Duration(seconds)*time.Second, nil
		if seconds > maxSeconds {
			err = strconv.ErrRange
		}
	}
	if err != nil || d <= 0 {
		c.add(n, key, "want a duration such as 30s or 1m (or a number of seconds), above zero, got %q", v)
		return nil, false
	}
	return d.String(), true
}

// checkSSHStep wants a host, a user and something to run, and one
// spelling of each setting that has two.
func (c *collector) checkSSHStep(s executorStep) {
	for _, pair := range [][2]string{{"host", "ip"}, {"strictHostKey", "strictHostKeyChecking"}} {
		_, first := s.given[pair[0]]
		second, both := s.given[pair[1]]
		if first && both {
			c.add(second.keyAt, join(s.configKey, second.key), "%s and %s are the same setting: give one of them", pair[0], pair[1])
			continue
		}
		if v, ok := s.settings[pair[1]]; ok {
			s.settings[pair[0]] = v
			delete(s.settings, pair[1])
		}
	}
	// A setting given but refused has its problem already.
	for _, need := range []struct{ name, alias, what string }{{"host", "ip", "the host to connect to: set host (or ip)"},
		{"user", "", "the user to log in as: set user"}} {
		v, set := s.settings[need.name].(string)
		_, given := s.given[need.name]
		_, aliased := s.given[need.alias]
		if !given && !aliased || set && v == "" {
			c.add(s.at, join(s.configKey, need.name), "an ssh step needs %s in the executor's settings", need.what)
		}
	}
	runs := false
	for _, name := range []string{"command", "script"} {
		if e, ok := s.fields[name]; ok && !isNull(resolve(e.value)) {
			runs = true
		}
	}
	if !runs {
		c.add(s.at, s.path, "an ssh step needs a command (or a script) to run on the host")
	}
}
