package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/daguha/daguha/dispatch/valid"
	"github.com/daguha/daguha/dispatch/yamlmap"
)

// configKey ties a config.yaml key to the flag it sets. The flag carries
// the environment variable and the default, so each setting is written
// down once: here for the file, in the flag for the rest.
type configKey struct {
	key  string // dotted path in config.yaml
	flag string
}

// configKeys are the keys config.yaml may hold: the seed's coordinator
// and worker sections, Dagu's host and port, and daguha's cluster and api
// sections. A key sets its flag only in the commands that have the flag,
// so one file can serve servers and workers.
var configKeys = []configKey{
	{"host", "host"},
	{"port", "port"},
	{"coordinator.host", "coordinator.host"},
	{"coordinator.port", "coordinator.port"},
	{"coordinator.signingKey", "coordinator.signing-key"},
	{"coordinator.tls.certFile", "coordinator.tls-cert"},
	{"coordinator.tls.keyFile", "coordinator.tls-key"},
	{"coordinator.tls.caFile", "coordinator.tls-ca"},
	{"worker.id", "worker.id"},
	{"worker.maxActiveRuns", "worker.max-active-runs"},
	{"worker.coordinatorHost", "worker.coordinator-host"},
	{"worker.coordinatorPort", "worker.coordinator-port"},
	{"worker.labels", "worker.labels"},
	// One key, two spellings: Dagu's worker command and the worker agent.
	{"worker.noAutoLabels", "worker.no-auto-labels"},
	{"worker.noAutoLabels", "no-auto-labels"},
	{"worker.insecure", "worker.insecure"},
	{"worker.heartbeatInterval", "worker.heartbeat-interval"},
	{"worker.stepLogDir", "worker.step-log-dir"},
	{"worker.stepLogAddr", "worker.step-log-addr"},
	// One key, two spellings, as worker.metricsAddr below.
	{"worker.stepLogRetention", "worker.step-log-retention"},
	{"worker.stepLogRetention", "step-log-retention"},
	{"worker.tls.certFile", "worker.tls-cert"},
	{"worker.tls.keyFile", "worker.tls-key"},
	{"worker.tls.caFile", "worker.tls-ca"},
	// One key, two spellings: Dagu's worker command and the worker agent.
	{"worker.metricsAddr", "worker.metrics-addr"},
	{"worker.metricsAddr", "metrics-addr"},
	// Dagu's global mail settings: the worker's, under the DAGs' own.
	{"smtp.host", "smtp.host"},
	{"smtp.port", "smtp.port"},
	{"smtp.username", "smtp.username"},
	{"smtp.password", "smtp.password"},
	{"errorMail.from", "error-mail.from"},
	{"errorMail.to", "error-mail.to"},
	{"errorMail.prefix", "error-mail.prefix"},
	{"errorMail.attachLogs", "error-mail.attach-logs"},
	{"infoMail.from", "info-mail.from"},
	{"infoMail.to", "info-mail.to"},
	{"infoMail.prefix", "info-mail.prefix"},
	{"infoMail.attachLogs", "info-mail.attach-logs"},
	{"dagsDir", "dags"},
	// Dagu's time zone setting: here, the zone of schedules without CRON_TZ=.
	{"tz", "tz"},
	// Dagu's queues: config is a list of {name, maxActiveRuns}.
	{"queues.config", "queues"},
	{"queues.enabled", "queues-enabled"},
	{"cluster.nodeName", "node"},
	{"cluster.dataDir", "data-dir"},
	{"cluster.bind", "bind"},
	{"cluster.advertise", "advertise"},
	{"cluster.bootstrapExpect", "bootstrap-expect"},
	{"cluster.raftPort", "raft-port"},
	{"cluster.gossipPort", "gossip-port"},
	{"cluster.join", "join"},
	{"cluster.encrypt", "encrypt"},
	{"cluster.tokens", "cluster-token"},
	{"cluster.certifiedLabels", "certified-labels"},
	{"cluster.forwardHold", "forward-hold"},
	{"cluster.raftTimeout", "raft-timeout"},
	{"debug.pprof", "pprof"},
	{"ui.glanceEvery", "glance-every"},
	{"cluster.leaseTTL", "lease-ttl"},
	{"cluster.deadServerTimeout", "dead-server-timeout"},
	{"cluster.health.warning", "health-warning"},
	{"cluster.health.unhealthy", "health-unhealthy"},
	{"cluster.health.offline", "health-offline"},
	{"cluster.workerRetention", "worker-retention"},
	{"cluster.runRetention", "run-retention"},
	{"api.tokens", "api-token"},
	{"api.readTokens", "api-read-token"},
	{"api.tls.certFile", "http-tls-cert"},
	{"api.tls.keyFile", "http-tls-key"},
	{"api.tls.caFile", "http-tls-ca"},
}

// configFlag is the --config flag of the commands that read config.yaml.
func configFlag() cli.Flag {
	return &cli.StringFlag{Name: "config", EnvVars: []string{"DAGU_CONFIG"}, Usage: "config.yaml (default: $DAGU_HOME/config.yaml, else ~/.config/dagu/config.yaml, when present)"}
}

// configPath is --config, else $DAGU_HOME/config.yaml, else
// ~/.config/dagu/config.yaml; "" when none is given and none exists.
func configPath(c *cli.Context) string {
	if path := c.String("config"); path != "" {
		return path
	}
	var candidates []string
	if home := os.Getenv("DAGU_HOME"); home != "" {
		candidates = append(candidates, filepath.Join(home, "config.yaml"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".config", "dagu", "config.yaml"))
	}
	for _, path := range candidates {
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	return ""
}

func hasFlag(c *cli.Context, name string) bool {
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// sources records where each flag's value came from, for error messages.
type sources map[string]string

// configFile is config.yaml read and checked on its own, before any
// command's flags: the text form of each known key's value, and the keys
// it does not know.
type configFile struct {
	path    string
	values  map[string]string
	unknown []string
}

// maxConfigKeys bounds the keys a config file may spell out, aliases
// expanded, so a small file of nested aliases cannot take the memory.
const maxConfigKeys = 10000

// readConfig decodes config.yaml. It touches no flags, so a fuzz test can
// call it on any bytes; an error names the file, the line and the key.
//
// A value is taken as written, as it would be given on the command line
// or in a DAGU_ variable: YAML's typing would turn a worker id 0123 into
// 83, a label 11.80 into 11.8 (which a DAG's workerSelector "11.80" would
// then not match) and an empty value into "<nil>".
func readConfig(path string, data []byte) (*configFile, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	file := &configFile{path: path, values: map[string]string{}}
	if len(doc.Content) == 0 {
		return file, nil
	}
	root := resolveAlias(doc.Content[0])
	if isNullNode(root) {
		return file, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config file %s: line %d: want a map of settings, got a %s", path, root.Line, kindName(root))
	}
	known := map[string]bool{}
	prefixes := map[string]bool{}
	for _, k := range configKeys {
		known[k.key] = true
		for i := range k.key {
			if k.key[i] == '.' {
				prefixes[k.key[:i]] = true
			}
		}
	}
	count := 0
	var walk func(prefix string, n *yaml.Node) error
	walk = func(prefix string, n *yaml.Node) error {
		entries, err := mapEntries(n, prefix)
		if err != nil {
			return err
		}
		for _, e := range entries {
			key := e.key
			if prefix != "" {
				key = prefix + "." + e.key
			}
			if count++; count > maxConfigKeys {
				return fmt.Errorf("line %d: more than %d keys", e.line, maxConfigKeys)
			}
			value := resolveAlias(e.value)
			switch {
			case known[key]:
				text, err := configText(key, value)
				if err != nil {
					return fmt.Errorf("line %d: %s: %w", value.Line, key, err)
				}
				file.values[key] = text
			case prefixes[key] && value.Kind == yaml.MappingNode:
				if err := walk(key, value); err != nil {
					return err
				}
			default:
				// Unknown keys are reported, not read: their contents
				// may be anything.
				file.unknown = append(file.unknown, key)
			}
		}
		return nil
	}
	if err := walk("", root); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	sort.Strings(file.unknown)
	return file, nil
}

type mapEntry struct {
	key   string
	line  int
	value *yaml.Node
}

// mapEntries lists a mapping's entries in order, merge keys (<<)
// expanded as package yamlmap reads them (as DAG files are read); a key
// given twice is an error naming both lines.
func mapEntries(n *yaml.Node, prefix string) ([]mapEntry, error) {
	list, problems := yamlmap.Entries(n)
	if len(problems) > 0 {
		p := problems[0]
		return nil, fmt.Errorf("line %d: %s: %s", p.Node.Line, orTop(prefix), p.Msg)
	}
	out := make([]mapEntry, 0, len(list))
	lines := map[string]int{}
	for _, e := range list {
		// Merged keys that the map gives itself are dropped by Entries,
		// so a key listed twice was written twice in this map.
		if first, dup := lines[e.Key]; dup {
			name := e.Key
			if prefix != "" {
				name = prefix + "." + e.Key
			}
			return nil, fmt.Errorf("line %d: %s is given twice (first on line %d)", e.KeyNode.Line, name, first)
		}
		lines[e.Key] = e.KeyNode.Line
		out = append(out, mapEntry{key: e.Key, line: e.KeyNode.Line, value: e.Value})
	}
	return out, nil
}

// configText renders a value as its flag's text: a scalar as written, a
// list as its items joined by commas, a map (worker.labels) as k=v,k=v.
func configText(key string, n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if isNullNode(n) {
			return "", nil
		}
		return n.Value, nil
	case yaml.SequenceNode:
		if key == "queues.config" {
			return queuesText(n)
		}
		parts := make([]string, 0, len(n.Content))
		for i, item := range n.Content {
			item = resolveAlias(item)
			if item.Kind != yaml.ScalarNode {
				return "", fmt.Errorf("item %d: want a value, not a %s", i, kindName(item))
			}
			if !isNullNode(item) {
				parts = append(parts, item.Value)
			}
		}
		return strings.Join(parts, ","), nil
	case yaml.MappingNode:
		if key != "worker.labels" {
			return "", fmt.Errorf("want a value, not a map")
		}
		entries, err := mapEntries(n, key)
		if err != nil {
			return "", err
		}
		parts := make([]string, 0, len(entries))
		for _, e := range entries {
			v := resolveAlias(e.value)
			if v.Kind != yaml.ScalarNode {
				return "", fmt.Errorf("%s: want a value, not a %s", e.key, kindName(v))
			}
			text := v.Value
			if isNullNode(v) {
				text = ""
			}
			parts = append(parts, e.key+"="+text)
		}
		sort.Strings(parts)
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("want a value, not a %s", kindName(n))
}

// resolveAlias follows *alias to its anchored node.
func resolveAlias(n *yaml.Node) *yaml.Node { return yamlmap.Resolve(n) }

func isNullNode(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "map"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "value"
	}
	return "YAML node"
}

func orTop(prefix string) string {
	if prefix == "" {
		return "top level"
	}
	return prefix
}

// applyConfig reads config.yaml (if any) into the flags that neither the
// command line nor the environment set: flag > env > file > default. It
// returns the keys it did not know, to be reported as warnings.
func applyConfig(c *cli.Context) (sources, []string, error) {
	path := configPath(c)
	if path == "" {
		return setBy(c), nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config file: %w", err)
	}
	file, err := readConfig(path, data)
	if err != nil {
		return nil, nil, err
	}
	from, err := file.apply(c)
	return from, file.unknown, err
}

// setBy records the flags the command line or the environment set.
func setBy(c *cli.Context) sources {
	from := sources{}
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if c.IsSet(name) {
			from[name] = "flag or environment"
		}
	}
	return from
}

// apply sets each flag of the command that the file has a value for and
// the command line and the environment left alone.
func (file *configFile) apply(c *cli.Context) (sources, error) {
	from := setBy(c)
	keys := make([]string, 0, len(file.values))
	for k := range file.values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	flagsOf := map[string][]string{}
	for _, k := range configKeys {
		flagsOf[k.key] = append(flagsOf[k.key], k.flag)
	}
	for _, key := range keys {
		text := file.values[key]
		for _, flag := range flagsOf[key] {
			if !hasFlag(c, flag) || c.IsSet(flag) {
				continue
			}
			if err := c.Set(flag, text); err != nil {
				return nil, fmt.Errorf("%s in %s: %q is not a valid value: %v", key, file.path, text, err)
			}
			from[flag] = fmt.Sprintf("%s in %s", key, file.path)
		}
	}
	return from, nil
}

// where names the source of a flag's value for an error message.
func (s sources) where(flag string) string {
	if src, ok := s[flag]; ok {
		return src
	}
	return "default"
}

// checkSettings validates what flags, environment and file produced,
// naming the key and where its value came from.
func checkSettings(c *cli.Context, from sources) error {
	var problems []string
	for _, name := range []string{"port", "coordinator.port", "http-port", "grpc-port", "raft-port", "gossip-port", "worker.coordinator-port", "worker.gossip-port"} {
		if !hasFlag(c, name) {
			continue
		}
		if port := c.Int(name); port < 0 || port > 65535 {
			problems = append(problems, fmt.Sprintf("%s: port %d (from %s) is out of range 0-65535", name, port, from.where(name)))
		}
	}
	for _, name := range []string{"coordinator.tls-cert", "coordinator.tls-key", "coordinator.tls-ca", "worker.tls-cert", "worker.tls-key",
		"worker.tls-ca", "http-tls-cert", "http-tls-key", "http-tls-ca"} {
		if !hasFlag(c, name) || c.String(name) == "" {
			continue
		}
		if _, err := os.Stat(c.String(name)); err != nil {
			problems = append(problems, fmt.Sprintf("%s: file %q (from %s) cannot be read: %v", name, c.String(name), from.where(name), errors.Unwrap(err)))
		}
	}
	for _, name := range []string{"labels", "worker.labels"} {
		if !hasFlag(c, name) {
			continue
		}
		if err := validateLabels(c.String(name)); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v (from %s)", name, err, from.where(name)))
		}
	}
	// Names left empty get a default from the host name, checked where
	// it is made.
	for _, id := range []struct {
		flag  string
		check func(string) error
	}{{"node", valid.NodeName}, {"worker-id", valid.WorkerID}, {"worker.id", valid.WorkerID}} {
		if !hasFlag(c, id.flag) || c.String(id.flag) == "" {
			continue
		}
		if err := id.check(c.String(id.flag)); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v (from %s)", id.flag, err, from.where(id.flag)))
		}
	}
	problems = append(problems, checkMail(c, from)...)
	if len(problems) > 0 {
		return &settingsError{problems: problems}
	}
	return nil
}

// settingsError is every problem checkSettings found, each naming its
// flag and where the value came from, shown on one line.
type settingsError struct{ problems []string }

func (e *settingsError) Error() string { return strings.Join(e.problems, "; ") }

func validateLabels(text string) error {
	_, err := valid.ParseLabels(text)
	return err
}

// loadSettings applies config.yaml and checks the result; every command
// that runs a server or a worker calls it first.
func loadSettings(c *cli.Context, warn func(string, ...any)) error {
	from, unknown, err := applyConfig(c)
	if err != nil {
		return err
	}
	for _, key := range unknown {
		warn("unknown key in the config file; ignored", "key", key)
	}
	return checkSettings(c, from)
}

// envName is the environment variable a config key gets when its flag
// has none of its own: DAGU_ and the key in upper snake case
// (cluster.dataDir: DAGU_CLUSTER_DATA_DIR), the seed's naming scheme.
func envName(key string) string {
	var b strings.Builder
	b.WriteString("DAGU_")
	for i, r := range key {
		switch {
		case r == '.':
			b.WriteByte('_')
		case r >= 'A' && r <= 'Z':
			if i > 0 && key[i-1] != '.' {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		default:
			b.WriteString(strings.ToUpper(string(r)))
		}
	}
	return b.String()
}

// annotateConfigKeys adds "(config: key)" to the usage of every flag that
// config.yaml can set, and an environment variable named after the key to
// those without one, so --help shows flag, variable and config key of
// each setting side by side.
func annotateConfigKeys(commands []*cli.Command) {
	keyOf := map[string]string{}
	for _, k := range configKeys {
		keyOf[k.flag] = k.key
	}
	for _, cmd := range commands {
		for _, f := range cmd.Flags {
			key, ok := keyOf[f.Names()[0]]
			if !ok {
				continue
			}
			note, env := " (config: "+key+")", envName(key)
			switch flag := f.(type) {
			case *cli.StringFlag:
				flag.Usage += note
				if len(flag.EnvVars) == 0 {
					flag.EnvVars = []string{env}
				}
			case *cli.IntFlag:
				flag.Usage += note
				if len(flag.EnvVars) == 0 {
					flag.EnvVars = []string{env}
				}
			case *cli.BoolFlag:
				flag.Usage += note
				if len(flag.EnvVars) == 0 {
					flag.EnvVars = []string{env}
				}
			case *cli.DurationFlag:
				flag.Usage += note
				if len(flag.EnvVars) == 0 {
					flag.EnvVars = []string{env}
				}
			case *cli.StringSliceFlag:
				flag.Usage += note
				if len(flag.EnvVars) == 0 {
					flag.EnvVars = []string{env}
				}
			}
		}
		annotateConfigKeys(cmd.Subcommands)
	}
}

// queuesText renders Dagu's queues.config, a list of {name,
// maxActiveRuns}, as the -queues flag's NAME=N,NAME=N.
func queuesText(n *yaml.Node) (string, error) {
	parts := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		item = resolveAlias(item)
		if item.Kind != yaml.MappingNode {
			return "", fmt.Errorf("item %d: want a map with name and maxActiveRuns, not a %s", i, kindName(item))
		}
		entries, err := mapEntries(item, fmt.Sprintf("item %d", i))
		if err != nil {
			return "", err
		}
		name, limit := "", "1"
		for _, e := range entries {
			v := resolveAlias(e.value)
			if v.Kind != yaml.ScalarNode {
				return "", fmt.Errorf("item %d: %s: want a value, not a %s", i, e.key, kindName(v))
			}
			switch e.key {
			case "name":
				name = v.Value
			case "maxActiveRuns", "max_active_runs":
				limit = v.Value
			default:
				return "", fmt.Errorf("item %d: unknown key %q (want name and maxActiveRuns)", i, e.key)
			}
		}
		if name == "" {
			return "", fmt.Errorf("item %d: a queue needs a name", i)
		}
		parts = append(parts, name+"="+limit)
	}
	return strings.Join(parts, ","), nil
}

// parseQueues reads -queues: NAME=N,NAME=N, each name by package valid's
// rule for queue names, each N a whole number (0 counts as 1, as in Dagu).
func parseQueues(text string) (map[string]int, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	queues := map[string]int{}
	for _, part := range strings.Split(text, ",") {
		name, limit, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("-queues: %q: want NAME=N", part)
		}
		if err := valid.QueueName(name); err != nil {
			return nil, fmt.Errorf("-queues: %w", err)
		}
		n, err := strconv.Atoi(limit)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("-queues: queue %q: maxActiveRuns %q: want a whole number of at least 0", name, limit)
		}
		if _, dup := queues[name]; dup {
			return nil, fmt.Errorf("-queues: queue %q is given twice", name)
		}
		queues[name] = n
	}
	return queues, nil
}
