package dagfile

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's docker executor and its DAG-level container. Both become the
// same JSON of settings (DockerSettings below): a docker step's in
// StepSpec.executor_config_json, a DAG's container in
// DagSpec.container_json. Values are kept as written; the worker
// expands their variables when the step (or the run's container) starts.

func init() {
	executorKeys["docker"] = newKeyTable("image", "platform", "containerName", "pull", "autoRemove",
		"workingDir", "volumes", "container", "host", "exec")
	dagKeys.add("container")
}

// The maps inside a docker step's settings, with the keys of Docker's own
// structures that daguha passes on (Dagu passes them all; any other is
// refused here by name).
var (
	dockerContainerKeys = newKeyTable("env", "workingDir", "user", "entrypoint")
	dockerHostKeys      = newKeyTable("binds", "autoRemove", "memory", "cpuShares", "networkMode")
	dockerExecKeys      = newKeyTable("user", "workingDir", "env")
)

// containerKeys are the keys of a DAG's container (current Dagu's).
var containerKeys = newKeyTable("image", "exec", "name", "pullPolicy", "env", "volumes", "user", "workingDir",
	"platform", "keepContainer", "startup", "command", "network")

// DockerSettings are the settings of a docker step or of a DAG's
// container, as the worker decodes them.
type DockerSettings struct {
	// Image makes a new container of this image. Without it,
	// ContainerName is a running container the commands are executed in.
	Image    string `json:"image,omitempty"`
	Platform string `json:"platform,omitempty"`
	// ContainerName names the new container, or is the running one.
	ContainerName string `json:"containerName,omitempty"`
	// Pull is always, missing (the default) or never.
	Pull string `json:"pull,omitempty"`
	// AutoRemove removes the container when the step (or the run) ends.
	AutoRemove  bool     `json:"autoRemove,omitempty"`
	Env         []string `json:"env,omitempty"`
	WorkingDir  string   `json:"workingDir,omitempty"`
	User        string   `json:"user,omitempty"`
	Entrypoint  []string `json:"entrypoint,omitempty"`
	Binds       []string `json:"binds,omitempty"`
	Memory      int64    `json:"memory,omitempty"`
	CPUShares   int64    `json:"cpuShares,omitempty"`
	NetworkMode string   `json:"networkMode,omitempty"`
	// Exec are the settings of each command executed in a running
	// container (ContainerName without Image).
	Exec *DockerExec `json:"exec,omitempty"`
	// Of a DAG's container only: how it starts (keepalive, entrypoint or
	// command) and the command of startup: command.
	Startup      string   `json:"startup,omitempty"`
	StartCommand []string `json:"startCommand,omitempty"`
}

// DockerExec are the settings of a command executed in a running
// container.
type DockerExec struct {
	User       string   `json:"user,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	Env        []string `json:"env,omitempty"`
}

// CommandWords splits a docker step's command line into the words the
// container runs, as Dagu does (no shell reads it): white space separates
// them, '...' and "..." keep white space in one.
func CommandWords(command string) ([]string, error) { return splitWords(command) }

// dockerStep reads a docker step's settings (config or with) and checks
// what the step gives with them: an image, or a running container to
// execute its command in; one command line, no script.
func (c *collector) dockerStep(step *daguhav1.StepSpec, fields map[string]entry, path string, config *yaml.Node, configKey string, typAt *yaml.Node, typKey string) {
	s := &DockerSettings{}
	if config != nil && !isNull(resolve(config)) {
		s = c.dockerSettings(config, configKey)
	}
	switch {
	case s.Image == "" && s.ContainerName == "":
		at, key := typAt, typKey
		if config != nil {
			at, key = config, configKey
		}
		c.add(at, key, "the docker executor needs image (a new container) or containerName (a running container to execute the command in)")
	case s.Image != "" && s.Exec != nil && s.ContainerName == "":
		c.add(config, join(configKey, "exec"), "exec settings are for a running container (containerName without image)")
	}
	if e, ok := fields["command"]; ok {
		key := join(path, e.key)
		r := resolve(e.value)
		switch {
		case r != nil && r.Kind == yaml.SequenceNode && len(r.Content) > 1:
			c.add(e.value, key, "a docker step runs one command line in its container (Dagu 1.x read a list as one command's words, current Dagu as several commands): give one line")
		case r != nil && r.Kind == yaml.ScalarNode:
			if _, err := splitWords(r.Value); err != nil {
				c.add(e.value, key, "%v", err)
			}
		}
	} else if s.Image == "" && s.ContainerName != "" {
		c.add(typAt, typKey, "a docker step that executes in the running container %s needs a command", s.ContainerName)
	}
	data, _ := json.Marshal(s)
	step.ExecutorConfigJson = string(data)
}

// dockerSettings reads the settings of a docker step: Dagu 1.x's image,
// pull, autoRemove, containerName, platform and the maps container, host
// and exec; current Dagu's shortcuts working_dir and volumes.
func (c *collector) dockerSettings(n *yaml.Node, key string) *DockerSettings {
	s := &DockerSettings{}
	f := c.fields(n, key, executorKeys["docker"])
	s.Image = c.trimmed(f, "image", key)
	s.Platform = c.trimmed(f, "platform", key)
	s.ContainerName = c.trimmed(f, "containerName", key)
	if e, ok := f["pull"]; ok {
		s.Pull = c.pullPolicy(e.value, join(key, e.key))
	}
	if e, ok := f["container"]; ok {
		ck := join(key, e.key)
		if m := c.submap(e.value, ck); m != nil {
			cf := c.fields(m, ck, dockerContainerKeys)
			if ce, ok := cf["env"]; ok {
				s.Env = envList(c.env(ce.value, join(ck, ce.key)))
			}
			s.WorkingDir = c.trimmed(cf, "workingDir", ck)
			s.User = c.trimmed(cf, "user", ck)
			if ce, ok := cf["entrypoint"]; ok {
				s.Entrypoint = c.argv(ce.value, join(ck, ce.key))
			}
		}
	}
	if e, ok := f["workingDir"]; ok {
		if s.WorkingDir != "" {
			c.add(e.keyAt, join(key, e.key), "container.workingDir is already given: %s is another name for it", e.key)
		} else {
			s.WorkingDir = c.trimmed(f, "workingDir", key)
		}
	}
	if e, ok := f["host"]; ok {
		hk := join(key, e.key)
		if m := c.submap(e.value, hk); m != nil {
			hf := c.fields(m, hk, dockerHostKeys)
			if he, ok := hf["binds"]; ok {
				s.Binds = append(s.Binds, c.nonEmpty(he.value, join(hk, he.key))...)
			}
			if he, ok := hf["autoRemove"]; ok {
				s.AutoRemove, _ = c.boolean(he.value, join(hk, he.key))
			}
			if he, ok := hf["memory"]; ok {
				s.Memory, _ = c.integer(he.value, join(hk, he.key), math.MaxInt64)
			}
			if he, ok := hf["cpuShares"]; ok {
				s.CPUShares, _ = c.integer(he.value, join(hk, he.key), math.MaxInt64)
			}
			s.NetworkMode = c.trimmed(hf, "networkMode", hk)
		}
	}
	if e, ok := f["volumes"]; ok {
		s.Binds = append(s.Binds, c.nonEmpty(e.value, join(key, e.key))...)
	}
	// The top-level autoRemove wins over host.autoRemove, as in Dagu.
	if e, ok := f["autoRemove"]; ok {
		s.AutoRemove, _ = c.boolean(e.value, join(key, e.key))
	}
	if e, ok := f["exec"]; ok {
		xk := join(key, e.key)
		if m := c.submap(e.value, xk); m != nil {
			xf := c.fields(m, xk, dockerExecKeys)
			x := &DockerExec{User: c.trimmed(xf, "user", xk), WorkingDir: c.trimmed(xf, "workingDir", xk)}
			if xe, ok := xf["env"]; ok {
				x.Env = envList(c.env(xe.value, join(xk, xe.key)))
			}
			s.Exec = x
		}
	}
	return s
}

// dagContainer reads a DAG's container (current Dagu's): a map with an
// image for a new container that every command step of a run is executed
// in, or exec: a running container's name (the string form is that name
// too). It also marks the steps read after it as steps of a container.
func (c *collector) dagContainer(dag *daguhav1.DagSpec, fields map[string]entry) {
	c.inContainer = false
	e, ok := fields["container"]
	if !ok || isNull(resolve(e.value)) {
		return
	}
	key := e.key
	s := &DockerSettings{}
	r := resolve(e.value)
	switch r.Kind {
	case yaml.ScalarNode:
		name, _ := c.text(e.value, key)
		if s.ContainerName = strings.TrimSpace(name); s.ContainerName == "" {
			c.add(e.value, key, "want the name of a running container, or a map with image (or exec)")
			return
		}
	case yaml.MappingNode:
		f := c.fields(r, key, containerKeys)
		image, exec := c.trimmed(f, "image", key), c.trimmed(f, "exec", key)
		switch {
		case image != "" && exec != "":
			c.add(f["exec"].keyAt, join(key, "exec"), "image and exec cannot be used together: image makes a new container, exec names a running one")
			return
		case image == "" && exec == "":
			c.add(e.keyAt, key, "a container needs image (a new container for the run) or exec (a running container)")
			return
		}
		var env []string
		if ee, ok := f["env"]; ok {
			env = envList(c.env(ee.value, join(key, ee.key)))
		}
		user, workingDir := c.trimmed(f, "user", key), c.trimmed(f, "workingDir", key)
		if exec != "" {
			for _, name := range []string{"name", "pullPolicy", "volumes", "platform", "keepContainer", "startup", "command", "network"} {
				if fe, ok := f[name]; ok {
					c.add(fe.keyAt, join(key, fe.key), "%s cannot be used with exec: the container is already running", fe.key)
				}
			}
			s.ContainerName = exec
			if env != nil || user != "" || workingDir != "" {
				s.Exec = &DockerExec{User: user, WorkingDir: workingDir, Env: env}
			}
			break
		}
		s.Image, s.ContainerName, s.Env, s.User, s.WorkingDir = image, c.trimmed(f, "name", key), env, user, workingDir
		s.Platform, s.NetworkMode = c.trimmed(f, "platform", key), c.trimmed(f, "network", key)
		if fe, ok := f["pullPolicy"]; ok {
			s.Pull = c.pullPolicy(fe.value, join(key, fe.key))
		}
		if fe, ok := f["volumes"]; ok {
			s.Binds = c.nonEmpty(fe.value, join(key, fe.key))
		}
		keep := false
		if fe, ok := f["keepContainer"]; ok {
			keep, _ = c.boolean(fe.value, join(key, fe.key))
		}
		s.AutoRemove = !keep
		if fe, ok := f["command"]; ok {
			s.StartCommand = c.argv(fe.value, join(key, fe.key))
		}
		if fe, ok := f["startup"]; ok {
			v, _ := c.text(fe.value, join(key, fe.key))
			switch v = strings.ToLower(strings.TrimSpace(v)); v {
			case "", "keepalive", "entrypoint", "command":
				s.Startup = v
			default:
				c.add(fe.value, join(key, fe.key), "want keepalive, entrypoint or command, got %q", v)
			}
		}
		switch {
		case s.Startup == "" && len(s.StartCommand) > 0:
			// A command says how the container starts.
			s.Startup = "command"
		case s.Startup == "command" && len(s.StartCommand) == 0:
			c.add(f["startup"].value, join(key, "startup"), "startup: command needs the command the container starts with (command: [...])")
		case s.Startup != "command" && s.Startup != "" && len(s.StartCommand) > 0:
			c.add(f["command"].keyAt, join(key, "command"), "command is how the container starts with startup: command, not with startup: %s", s.Startup)
		}
	default:
		c.add(e.value, key, "want the name of a running container, or a map with image (or exec), got %s", describe(e.value))
		return
	}
	if len(c.dagShell) > 0 {
		c.add(e.keyAt, key, "the DAG's shell does not apply in its container: the container runs each command's words itself (give sh -c '...' in a command that needs a shell)")
	}
	data, _ := json.Marshal(s)
	dag.ContainerJson = string(data)
	c.inContainer = true
}

// containerStep checks a command step of a DAG with a container: it runs
// in the container, which takes one command line (or a list) and no
// script or shell of the worker's.
func (c *collector) containerStep(fields map[string]entry, path string) {
	if e, ok := fields["run"]; ok && !isNull(resolve(e.value)) {
		return
	}
	if e, ok := fields["call"]; ok && !isNull(resolve(e.value)) {
		return
	}
	for _, name := range []string{"script", "shell", "shellPackages"} {
		if e, ok := fields[name]; ok && !isNull(resolve(e.value)) {
			c.add(e.keyAt, join(path, e.key), "the DAG's container runs each step's command line as words, without a shell: %s is not supported in it (give sh -c '...' as the command)", e.key)
		}
	}
	if e, ok := fields["command"]; ok {
		r := resolve(e.value)
		items := []*yaml.Node{r}
		if r != nil && r.Kind == yaml.SequenceNode {
			items = r.Content
		}
		for _, item := range items {
			if ri := resolve(item); ri != nil && ri.Kind == yaml.ScalarNode {
				if _, err := splitWords(ri.Value); err != nil {
					c.add(item, join(path, e.key), "%v", err)
				}
			}
		}
	}
}

// pullPolicy reads Dagu's pull policy: always, missing or never, or a
// boolean (true: always, false: never).
func (c *collector) pullPolicy(n *yaml.Node, key string) string {
	r := resolve(n)
	if isNull(r) {
		return ""
	}
	if r.Kind == yaml.ScalarNode {
		v := strings.TrimSpace(r.Value)
		switch strings.ToLower(v) {
		case "always", "missing", "never":
			return strings.ToLower(v)
		case "":
			return ""
		}
		if b, err := strconv.ParseBool(v); err == nil {
			if b {
				return "always"
			}
			return "never"
		}
	}
	c.add(n, key, "want always, missing or never (or true for always, false for never), got %s", describe(n))
	return ""
}

// trimmed is the text of the key name of f, trimmed ("" when absent).
func (c *collector) trimmed(f map[string]entry, name, key string) string {
	e, ok := f[name]
	if !ok {
		return ""
	}
	v, _ := c.text(e.value, join(key, e.key))
	return strings.TrimSpace(v)
}

// submap is n when it is a map; a problem otherwise (nil when null).
func (c *collector) submap(n *yaml.Node, key string) *yaml.Node {
	r := resolve(n)
	switch {
	case isNull(r):
		return nil
	case r.Kind != yaml.MappingNode:
		c.add(n, key, "want a map, got %s", describe(n))
		return nil
	}
	return r
}

// nonEmpty reads a string or a list of strings, refusing empty ones.
func (c *collector) nonEmpty(n *yaml.Node, key string) []string {
	values, at := c.texts(n, key)
	var out []string
	for i, v := range values {
		if v = strings.TrimSpace(v); v == "" {
			c.add(at[i], key, "an empty value")
			continue
		}
		out = append(out, v)
	}
	return out
}

// argv reads a program and its arguments: a list, or a line split into
// words.
func (c *collector) argv(n *yaml.Node, key string) []string {
	r := resolve(n)
	if r != nil && r.Kind == yaml.ScalarNode && !isNull(r) {
		words, err := splitWords(r.Value)
		if err != nil {
			c.add(n, key, "%v", err)
		}
		return words
	}
	return c.nonEmpty(n, key)
}

// envList writes variables as Docker takes them: NAME=value.
func envList(vars []*daguhav1.EnvVar) []string {
	var out []string
	for _, v := range vars {
		out = append(out, v.GetName()+"="+v.GetValue())
	}
	return out
}
