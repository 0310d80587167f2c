package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/daguha/daguha/dispatch/dagfile"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// kindContainer is a command step of a DAG with a container (Dagu's
// DAG-level container): it is executed in the run's one container.
const kindContainer = "container"

// keepaliveCommand keeps a DAG's container running until the run ends
// (startup: keepalive, the default): the image needs sh and sleep. The
// container's init (Docker's --init) reaps what the steps leave behind.
var keepaliveCommand = []string{"sh", "-c", "while :; do sleep 3600; done"}

// containerExecutor executes a command step of a DAG with a container in
// the run's container (runContainer), as Dagu does: each command line's
// words, variables expanded by the worker, no shell; the commands of a
// list in turn, stopping at the first that fails. The step's variables
// (the DAG's env and params, outputs, DAG_RUN_ID, the step's env) are in
// the command's environment beside the container's; the step's dir, if
// any, is its working directory in the container. Its output and exit
// code are the step's, as with the docker executor.
type containerExecutor struct{}

func init() { registerExecutor(kindContainer, containerExecutor{}) }

func (containerExecutor) execute(ctx context.Context, t *stepTry) *daguhav1.StepState {
	x, spec := t.x, t.spec()
	r := t.scope()
	commands := spec.GetCommands()
	if c := spec.GetCommand(); c != "" {
		commands = []string{c}
	}
	var argvs [][]string
	for _, c := range commands {
		argv, err := commandArgs(c, r)
		if err != nil {
			return failedState("%v", err)
		}
		if len(argv) > 0 {
			argvs = append(argvs, argv)
		}
	}
	// The step's dir is the container's: files of the worker (Dagu's
	// stdout and stderr files, an output map's files) are the DAG's
	// working directory's.
	dir, err := x.stepDir(&daguhav1.StepSpec{}, r)
	if err != nil {
		return failedState("%v", err)
	}
	out, err := x.openStreamOutput(t, dir, r)
	if err != nil {
		return failedState("%v", err)
	}
	defer out.close()
	if len(argvs) == 0 {
		// Only an output map to publish.
		return x.finishStreamOutput(ctx, t, out, dockerResult{}, r, dir)
	}
	box, err := x.runContainer(ctx)
	if err != nil {
		return x.finishStreamOutput(ctx, t, out, notRun(ctx, err), r, dir)
	}
	exec := dagfile.DockerExec{}
	var env []string
	if e := box.settings.Exec; e != nil {
		exec.User, exec.WorkingDir, env = e.User, e.WorkingDir, e.Env
	}
	for _, v := range lastOfEach(t.vars) {
		env = append(env, v.name+"="+v.value)
	}
	exec.Env = env
	if d := strings.TrimSpace(spec.GetDir()); d != "" {
		exec.WorkingDir = expandVars(d, r)
	}
	stop := x.stopSpec(spec)
	res := dockerResult{}
	for n, argv := range argvs {
		res = execIn(ctx, box.cli, box.id, box.name, argv, exec, out, stop, x.logger)
		if res.stopped || res.err != nil {
			if res.err != nil && len(argvs) > 1 {
				res.err = fmt.Errorf("command %d failed: %w", n+1, res.err)
			}
			break
		}
	}
	return x.finishStreamOutput(ctx, t, out, res, r, dir)
}

// lastOfEach is vars with each name once, at its last value (Docker
// takes an environment without repeats).
func lastOfEach(vars []envVar) []envVar {
	last := map[string]int{}
	for i, v := range vars {
		last[v.name] = i
	}
	var out []envVar
	for i, v := range vars {
		if last[v.name] == i {
			out = append(out, v)
		}
	}
	return out
}

// dagContainer is a run's container: made (or found, for a running one)
// when the first step needs it, and stopped and removed (or only
// stopped, with keepContainer) when the attempt ends.
type dagContainer struct {
	mu       sync.Mutex
	cli      *client.Client
	settings dagfile.DockerSettings
	// id is the container's full id and name what messages call it, once
	// it runs.
	id, name string
	// made: this attempt made the container; it goes when the attempt
	// ends.
	made bool
	// err: the container could not be had; every step that needs it
	// fails with this.
	err error
}

// runContainer is the run's container, made or found on the first call.
// A failure that is not ctx's is kept: the steps after fail with it at
// once.
func (x *execution) runContainer(ctx context.Context) (*dagContainer, error) {
	c := &x.container
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.id != "" && c.err == nil:
		return c, nil
	case c.err != nil:
		return nil, c.err
	}
	if err := x.startContainer(ctx, c); err != nil {
		err = fmt.Errorf("the DAG's container: %w", err)
		if ctx.Err() == nil {
			c.err = err
		}
		return nil, err
	}
	return c, nil
}

// startContainer makes and starts the DAG's container, or finds the
// running one it names. Its settings' variables are the run's (the
// DAG's env and params).
func (x *execution) startContainer(ctx context.Context, c *dagContainer) error {
	var s dagfile.DockerSettings
	if err := json.Unmarshal([]byte(x.run.GetDag().GetContainerJson()), &s); err != nil {
		return fmt.Errorf("settings: %v", err)
	}
	r := resolver{x: x, vars: x.base, osEnv: true, positional: true}
	s = expandSettings(s, r)
	if c.cli == nil {
		cli, err := newDockerClient()
		if err != nil {
			return err
		}
		c.cli = cli
	}
	c.settings = s
	if s.Image == "" {
		id, err := runningContainer(ctx, c.cli, s.ContainerName)
		if err != nil {
			return err
		}
		c.id, c.name = id, s.ContainerName
		return nil
	}
	dir, err := x.stepDir(&daguhav1.StepSpec{}, r)
	if err != nil {
		return err
	}
	platform, err := parsePlatform(s.Platform)
	if err != nil {
		return err
	}
	if err := ensureImage(ctx, c.cli, s.Image, s.Pull, platform, io.Discard); err != nil {
		return err
	}
	config := &container.Config{Image: s.Image, Env: s.Env, WorkingDir: s.WorkingDir, User: s.User,
		Labels: map[string]string{LabelRunID: x.run.GetId(), LabelAttempt: strconv.FormatUint(uint64(x.run.GetAttempt()), 10)}}
	switch s.Startup {
	case "", "keepalive":
		config.Entrypoint, config.Cmd = []string{}, keepaliveCommand
	case "command":
		config.Entrypoint, config.Cmd = []string{}, s.StartCommand
	}
	init := true
	host := &container.HostConfig{Binds: resolveBinds(s.Binds, dir), NetworkMode: container.NetworkMode(s.NetworkMode), Init: &init}
	created, err := c.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: config, HostConfig: host, Platform: platform, Name: s.ContainerName})
	if err != nil {
		return fmt.Errorf("creating a container of %s: %w", s.Image, err)
	}
	c.id, c.made, c.name = created.ID, true, s.ContainerName
	if c.name == "" {
		c.name = shortID(created.ID)
	}
	fail := func(err error) error {
		removeContainer(c.cli, c.id)
		c.id, c.made = "", false
		return err
	}
	if _, err := c.cli.ContainerStart(ctx, c.id, client.ContainerStartOptions{}); err != nil {
		return fail(fmt.Errorf("starting container %s of %s: %w", c.name, s.Image, err))
	}
	got, err := c.cli.ContainerInspect(ctx, c.id, client.ContainerInspectOptions{})
	switch {
	case err != nil:
		return fail(fmt.Errorf("container %s: %w", c.name, err))
	case got.Container.State == nil || !got.Container.State.Running:
		code := -1
		if got.Container.State != nil {
			code = got.Container.State.ExitCode
		}
		return fail(fmt.Errorf("container %s of %s stopped as it started (exit code %d): its startup (%s) must keep it running", c.name, s.Image, code, startupName(s.Startup)))
	}
	x.logger.Info("the DAG's container runs", "container", c.name, "image", s.Image)
	return nil
}

func startupName(s string) string {
	if s == "" {
		return "keepalive"
	}
	return s
}

// closeContainer ends the run's container when the attempt ends: one it
// made is removed, or only stopped with keepContainer; a running one it
// was given is left as it is.
func (x *execution) closeContainer() {
	c := &x.container
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cli == nil {
		return
	}
	if c.made {
		if c.settings.AutoRemove {
			removeContainer(c.cli, c.id)
		} else {
			stopContainer(c.cli, c.id, stopSpec{signal: syscall.SIGTERM, grace: defaultKillGrace})
		}
	}
	_ = c.cli.Close()
	c.cli = nil
}

// resolveBinds makes the host side of binds written relative (./data,
// ~/data) absolute: from base, else the worker's directory. Named volumes
// and absolute paths stay as written.
func resolveBinds(binds []string, base string) []string {
	if binds == nil {
		return nil
	}
	out := make([]string, len(binds))
	for i, b := range binds {
		hostPath, rest, ok := strings.Cut(b, ":")
		if ok && (strings.HasPrefix(hostPath, ".") || hostPath == "~" || strings.HasPrefix(hostPath, "~/")) {
			p := resolvePath(hostPath, base)
			if abs, err := filepath.Abs(p); err == nil {
				p = abs
			}
			b = p + ":" + rest
		}
		out[i] = b
	}
	return out
}
