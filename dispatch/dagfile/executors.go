package dagfile

import (
	"encoding/json"
	"strings"

	"gopkg.in/yaml.v3"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's executors: Dagu 1.x writes "executor: http" or
// "executor: {type: http, config: {...}}"; current Dagu writes
// "type: http" and "with: {...}". Both become StepSpec.executor and
// StepSpec.executor_config_json, the settings checked here against the
// keys each executor takes.
func init() { stepKeys.add("executor", "with") }

// executorKeys are the executors daguha runs and the settings each takes.
var executorKeys = map[string]keyTable{
	"http": newKeyTable("method", "url", "headers", "query", "body", "timeout", "silent", "json", "debug",
		"skipTLSVerify"),
	"jq":      newKeyTable("query", "raw", "input"),
	"archive": archiveKeys,
}

// Current Dagu spells it skip_tls_verify, which snakeCase does not make.
func init() { executorKeys["http"]["skip_tls_verify"] = "skipTLSVerify" }

// stepExecutor reads a step's executor and its settings, in either form.
// "command" (or "shell") is the default executor; any other that daguha
// does not run yet is refused by name.
func (c *collector) stepExecutor(step *daguhav1.StepSpec, fields map[string]entry, path string) {
	var typ string
	var typAt, config *yaml.Node
	var configKey, typKey string
	if e, ok := fields["executor"]; ok {
		key := join(path, e.key)
		r := resolve(e.value)
		switch {
		case isNull(r):
		case r.Kind == yaml.ScalarNode:
			typ, typAt, typKey = r.Value, e.value, key
		case r.Kind == yaml.MappingNode:
			ef := c.fields(r, key, newKeyTable("type", "config"))
			if t, ok := ef["type"]; ok {
				typ, _ = c.text(t.value, join(key, "type"))
				typAt, typKey = t.value, join(key, "type")
			}
			if cf, ok := ef["config"]; ok {
				config, configKey = cf.value, join(key, "config")
			}
			if typ == "" {
				c.add(e.value, key, "executor needs a type, such as http or jq")
				return
			}
		default:
			c.add(e.value, key, "want an executor name or {type, config}, got %s", describe(e.value))
			return
		}
	}
	if e, ok := fields["type"]; ok {
		key := join(path, e.key)
		v, ok := c.text(e.value, key)
		if ok && v != "" {
			if typ != "" && v != typ {
				c.add(e.value, key, "type %q and executor %q disagree: give one of them", v, typ)
				return
			}
			typ, typAt, typKey = v, e.value, key
		}
	}
	if e, ok := fields["with"]; ok {
		if config != nil {
			c.add(e.keyAt, join(path, e.key), "with and executor.config both give the executor's settings: give one of them")
			return
		}
		config, configKey = e.value, join(path, e.key)
	}
	switch typ {
	case "", "command", "shell":
		if config != nil && !isNull(resolve(config)) {
			c.add(config, configKey, "settings are for an executor such as http or jq; a command step takes none")
		}
		if c.inContainer {
			c.containerStep(fields, path)
		}
		return
	}
	// Set even when refused below: a step of an executor needs no command,
	// so the executor's refusal is the step's only problem.
	step.Executor = typ
	keys, ok := executorKeys[typ]
	keys = withGoFieldNames(keys)
	if !ok {
		c.add(typAt, typKey, "executor %s is not supported yet (issue #23): daguha runs commands, scripts, run/call, http, jq, archive, docker, ssh and mail", typ)
		return
	}
	for _, name := range []string{"run", "call", "script"} {
		e, given := fields[name]
		switch {
		case !given || isNull(resolve(e.value)):
		case name != "script":
			c.add(e.keyAt, join(path, e.key), "a %s step runs no child DAG: give run/call or the executor, not both", typ)
		case typ == "http":
			c.add(e.keyAt, join(path, e.key), "the http executor's settings go in config (or with); daguha does not read them from script")
		case typ == "docker":
			c.add(e.keyAt, join(path, e.key), "a docker step runs its command line in the container; script is not supported (give sh -c '...' as the command)")
		}
	}
	if typ == "docker" {
		if config != nil && !isNull(resolve(config)) && resolve(config).Kind != yaml.MappingNode {
			c.add(config, configKey, "want a map of the docker executor's settings, got %s", describe(config))
			return
		}
		c.dockerStep(step, fields, path, config, configKey, typAt, typKey)
		return
	}
	settings := map[string]any{}
	given := map[string]entry{}
	if config != nil && !isNull(resolve(config)) {
		if resolve(config).Kind != yaml.MappingNode {
			c.add(config, configKey, "want a map of the %s executor's settings, got %s", typ, describe(config))
			return
		}
		given = c.fields(config, configKey, keys)
		for name, e := range given {
			// The key as written (with.strip_components), not its name.
			if v, ok := c.setting(typ, name, e.value, join(configKey, e.key)); ok {
				settings[name] = v
			}
		}
	}
	if check, ok := executorChecks[typ]; ok {
		step := executorStep{fields: fields, path: path, settings: settings, given: given, configKey: configKey, at: typAt, typKey: typKey, config: config}
		if step.configKey == "" {
			step.configKey = join(path, "with")
		}
		check(c, step)
	}
	data, _ := json.Marshal(settings)
	step.ExecutorConfigJson = string(data)
}

// executorStep is what an executor's check (executorChecks) sees of a
// step: its keys, its settings as read and the entries they came from.
type executorStep struct {
	fields    map[string]entry
	path      string
	settings  map[string]any
	given     map[string]entry
	configKey string
	// at is the step's type (or executor), at typKey, for a problem of
	// the step as a whole; config its settings' map, if given.
	at     *yaml.Node
	typKey string
	config *yaml.Node
}

// settingReaders read the settings of the executors that have a file of
// their own here (executors_ssh.go, executors_mail.go); executorChecks
// check a step of theirs as a whole: keys that go together, keys it needs.
var (
	settingReaders = map[string]func(c *collector, name string, n *yaml.Node, key string) (any, bool){}
	executorChecks = map[string]func(c *collector, s executorStep){}
)

// withGoFieldNames is an executor's key table that also takes each key in
// any case (StrictHostKeyChecking, IP): Dagu 1.x decodes executor settings
// into Go structs, matching names without regard to case, and its own
// examples write them as Go field names.
func withGoFieldNames(keys keyTable) keyTable {
	if keys == nil {
		return nil
	}
	out := make(keyTable, 2*len(keys)+1)
	for written, name := range keys {
		out[written] = name
		out[strings.ToLower(written)] = name
	}
	out[anyCase] = anyCase
	return out
}

// setting reads one executor setting as the type the worker decodes.
func (c *collector) setting(typ, name string, n *yaml.Node, key string) (any, bool) {
	if read, ok := settingReaders[typ]; ok {
		return read(c, name, n, key)
	}
	switch name {
	case "silent", "json", "debug", "skipTLSVerify", "raw":
		return c.boolean(n, key)
	case "timeout":
		return c.integer(n, key, maxSeconds)
	case "headers", "query":
		if typ == "jq" {
			return c.text(n, key)
		}
		r := resolve(n)
		if isNull(r) {
			return map[string]string{}, true
		}
		if r.Kind != yaml.MappingNode {
			c.add(n, key, "want a map of names to values, got %s", describe(n))
			return nil, false
		}
		m := map[string]string{}
		for _, e := range c.entries(r, key) {
			if v, ok := c.text(e.value, join(key, e.key)); ok {
				m[e.key] = v
			}
		}
		return m, true
	case "body", "input":
		// A map or a list is sent as its JSON.
		r := resolve(n)
		if r.Kind == yaml.MappingNode || r.Kind == yaml.SequenceNode {
			return c.jsonValue(n, key)
		}
		return c.text(n, key)
	case "method":
		v, ok := c.text(n, key)
		return strings.ToUpper(v), ok
	}
	return c.text(n, key)
}
