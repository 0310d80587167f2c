package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/daguha/daguha/dispatch/dagfile"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// kindDocker is Dagu's docker executor: the step runs its command in a
// new container of an image, or executes it in a running container.
const kindDocker = "docker"

// The labels of every container the worker makes, so that they can be
// found (and cleared away) by run.
const (
	LabelRunID   = "daguha.run-id"
	LabelAttempt = "daguha.attempt"
	LabelStep    = "daguha.step"
)

// dockerPingTimeout bounds the probe of the worker's Docker engine.
const dockerPingTimeout = 2 * time.Second

// dockerCleanupTimeout bounds the calls that stop and remove a container
// once its step (or run) has ended, whatever ended it.
const dockerCleanupTimeout = 30 * time.Second

// dockerExecutor runs a docker step as Dagu's docker executor does. With
// an image it makes a new container: the image is pulled as the pull
// policy says (missing by default), the command's words (split as Dagu
// splits them, variables expanded by the worker, no shell) are its
// command after the image's entrypoint, and the settings give its
// environment, working directory, user, binds, memory, CPU shares and
// network mode. Without an image the words are executed in the running
// container containerName, with the exec settings. What the container
// prints is the step's output as a command's stdout and stderr are, its
// exit code the step's. A step that is stopped (cancel, timeout) stops
// its container: signalOnStop (default SIGTERM), then SIGKILL after the
// clean-up time. autoRemove removes the container when the step ends,
// however it ends; without it the container is left, stopped. The
// Docker engine is the worker's: DOCKER_HOST, else /var/run/docker.sock.
type dockerExecutor struct{}

func init() { registerExecutor(kindDocker, dockerExecutor{}) }

// probe answers whether the worker's Docker engine answers a ping: only
// then does the worker say it runs docker steps.
func (dockerExecutor) probe(ctx context.Context) error {
	cli, err := newDockerClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, dockerPingTimeout)
	defer cancel()
	_, err = cli.Ping(ctx, client.PingOptions{})
	return err
}

// newDockerClient is a client of the worker's Docker engine (DOCKER_HOST
// and the other DOCKER_ variables, else the default socket); it agrees an
// API version with the engine on its first call.
func newDockerClient() (*client.Client, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	return cli, nil
}

func (dockerExecutor) execute(ctx context.Context, t *stepTry) *daguhav1.StepState {
	x, spec := t.x, t.spec()
	var s dagfile.DockerSettings
	if cfg := spec.GetExecutorConfigJson(); cfg != "" {
		if err := json.Unmarshal([]byte(cfg), &s); err != nil {
			return failedState("docker settings: %v", err)
		}
	}
	r := t.scope()
	s = expandSettings(s, r)
	argv, err := commandArgs(spec.GetCommand(), r)
	if err != nil {
		return failedState("%v", err)
	}
	dir, err := x.stepDir(spec, r)
	if err != nil {
		return failedState("%v", err)
	}
	out, err := x.openStreamOutput(t, dir, r)
	if err != nil {
		return failedState("%v", err)
	}
	defer out.close()
	cli, err := newDockerClient()
	if err != nil {
		return failedState("%v", err)
	}
	defer cli.Close()
	stop := x.stopSpec(spec)
	var res dockerResult
	if s.Image == "" {
		var exec dagfile.DockerExec
		if s.Exec != nil {
			exec = *s.Exec
		}
		id, err := runningContainer(ctx, cli, s.ContainerName)
		switch {
		case len(argv) == 0:
			res = dockerResult{exitCode: -1, err: fmt.Errorf("a docker step that executes in the running container %s needs a command", s.ContainerName)}
		case err != nil:
			res = notRun(ctx, err)
		default:
			res = execIn(ctx, cli, id, s.ContainerName, argv, exec, out, stop, x.logger)
		}
	} else {
		labels := map[string]string{LabelRunID: x.run.GetId(), LabelAttempt: strconv.FormatUint(uint64(x.run.GetAttempt()), 10), LabelStep: spec.GetName()}
		s.Binds = resolveBinds(s.Binds, dir)
		res = runContainer(ctx, cli, s, argv, labels, out, stop)
	}
	return x.finishStreamOutput(ctx, t, out, res, r, dir)
}

// failedState is a step that failed before anything ran.
func failedState(format string, args ...any) *daguhav1.StepState {
	return &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_FAILED, ExitCode: -1, Error: fmt.Sprintf(format, args...)}
}

// expandSettings expands the variables of the settings that name things
// (Dagu evaluates them when the step runs); the pull policy, booleans and
// numbers are taken as written.
func expandSettings(s dagfile.DockerSettings, r resolver) dagfile.DockerSettings {
	one := func(v string) string { return strings.TrimSpace(expandVars(v, r)) }
	all := func(vs []string) []string {
		if vs == nil {
			return nil
		}
		out := make([]string, len(vs))
		for i, v := range vs {
			out[i] = expandVars(v, r)
		}
		return out
	}
	s.Image, s.Platform, s.ContainerName = one(s.Image), one(s.Platform), one(s.ContainerName)
	s.WorkingDir, s.User, s.NetworkMode = one(s.WorkingDir), one(s.User), one(s.NetworkMode)
	s.Env, s.Binds, s.Entrypoint, s.StartCommand = all(s.Env), all(s.Binds), all(s.Entrypoint), all(s.StartCommand)
	if s.Exec != nil {
		s.Exec = &dagfile.DockerExec{User: one(s.Exec.User), WorkingDir: one(s.Exec.WorkingDir), Env: all(s.Exec.Env)}
	}
	return s
}

// commandArgs are a command line's words, each with its variables
// expanded: a value stays one word, whatever it holds.
func commandArgs(command string, r resolver) ([]string, error) {
	if strings.TrimSpace(command) == "" {
		return nil, nil
	}
	words, err := dagfile.CommandWords(command)
	if err != nil {
		return nil, fmt.Errorf("command %q: %v", command, err)
	}
	for i, w := range words {
		words[i] = expandVars(w, r)
	}
	return words, nil
}

// stopSpec is how a step's container, or command in one, is stopped.
type stopSpec struct {
	signal syscall.Signal
	grace  time.Duration
}

// stopSpec is the step's: its signalOnStop (default SIGTERM), then
// SIGKILL after the DAG's clean-up time (default the engine's).
func (x *execution) stopSpec(spec *daguhav1.StepSpec) stopSpec {
	s := stopSpec{signal: syscall.SIGTERM, grace: x.e.KillGrace}
	if sec := x.run.GetDag().GetMaxCleanUpTimeSec(); sec > 0 {
		s.grace = time.Duration(sec) * time.Second
	}
	if s.grace <= 0 {
		s.grace = defaultKillGrace
	}
	if name := spec.GetSignalOnStop(); name != "" {
		s.signal = syscall.Signal(dagfile.SignalNumber(name))
	}
	return s
}

// dockerResult is how a command in a container ended.
type dockerResult struct {
	exitCode int
	// err: the command failed (its exit status) or could not run.
	err error
	// stopped: the step's context ended and the command was stopped.
	stopped bool
}

// parsePlatform reads os/arch[/variant].
func parsePlatform(p string) (*ocispec.Platform, error) {
	if p == "" {
		return nil, nil
	}
	parts := strings.Split(p, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return nil, fmt.Errorf("platform %q: want os/arch or os/arch/variant, such as linux/amd64", p)
	}
	out := &ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		out.Variant = parts[2]
	}
	return out, nil
}

// ensureImage makes sure the engine has image, as policy says: always
// pull it; never pull it (its absence fails the step); missing (the
// default): pull it when it is not there, or not for the platform.
func ensureImage(ctx context.Context, cli *client.Client, image, policy string, platform *ocispec.Platform, log io.Writer) error {
	if policy != "always" {
		got, err := cli.ImageInspect(ctx, image)
		switch {
		case err == nil && (platform == nil || got.Os == platform.OS && got.Architecture == platform.Architecture &&
			(platform.Variant == "" || got.Variant == platform.Variant)):
			return nil
		case err == nil && policy == "never":
			return fmt.Errorf("image %s on this worker's Docker engine is for %s/%s, not %s, and pull is never", image, got.Os, got.Architecture, formatPlatform(platform))
		case err != nil && !cerrdefs.IsNotFound(err):
			return fmt.Errorf("image %s: %w", image, err)
		case err != nil && policy == "never":
			return fmt.Errorf("image %s is not on this worker's Docker engine, and pull is never", image)
		}
	}
	_, _ = fmt.Fprintf(log, "[daguha: pulling image %s]\n", image)
	opts := client.ImagePullOptions{}
	if platform != nil {
		opts.Platforms = []ocispec.Platform{*platform}
	}
	resp, err := cli.ImagePull(ctx, image, opts)
	if err == nil {
		err = resp.Wait(ctx)
		_ = resp.Close()
	}
	if err != nil {
		return fmt.Errorf("pulling image %s: %w", image, err)
	}
	return nil
}

func formatPlatform(p *ocispec.Platform) string {
	if p.Variant != "" {
		return p.OS + "/" + p.Architecture + "/" + p.Variant
	}
	return p.OS + "/" + p.Architecture
}

// runContainer makes a container of the settings' image running argv
// (nil: the image's command), copies its output to out until it exits,
// and returns its exit status. When ctx ends first the container is
// stopped. With autoRemove it is removed at the end, however it ends.
func runContainer(ctx context.Context, cli *client.Client, s dagfile.DockerSettings, argv []string, labels map[string]string, out *streamOutput, stop stopSpec) dockerResult {
	platform, err := parsePlatform(s.Platform)
	if err != nil {
		return dockerResult{exitCode: -1, err: err}
	}
	if err := ensureImage(ctx, cli, s.Image, s.Pull, platform, out.stderr); err != nil {
		return notRun(ctx, err)
	}
	config := &container.Config{Image: s.Image, Cmd: argv, Env: s.Env, WorkingDir: s.WorkingDir, User: s.User,
		Entrypoint: s.Entrypoint, Labels: labels, AttachStdout: true, AttachStderr: true}
	host := &container.HostConfig{Binds: s.Binds, NetworkMode: container.NetworkMode(s.NetworkMode),
		Resources: container.Resources{Memory: s.Memory, CPUShares: s.CPUShares}}
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: config, HostConfig: host, Platform: platform, Name: s.ContainerName})
	if err != nil {
		return notRun(ctx, fmt.Errorf("creating a container of %s: %w", s.Image, err))
	}
	id := created.ID
	if s.AutoRemove {
		defer removeContainer(cli, id)
	}
	attached, err := cli.ContainerAttach(ctx, id, client.ContainerAttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return notRun(ctx, fmt.Errorf("attaching to container %s: %w", shortID(id), err))
	}
	defer attached.Close()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = stdcopy.StdCopy(out.stdout, out.stderr, attached.Reader)
	}()
	// Registered before the start, so that no exit is missed.
	waited := cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return notRun(ctx, fmt.Errorf("starting container %s of %s: %w", shortID(id), s.Image, err))
	}
	res := dockerResult{}
	select {
	case w := <-waited.Result:
		res.exitCode = int(w.StatusCode)
		if w.Error != nil && w.Error.Message != "" {
			res.err = fmt.Errorf("container %s: %s", shortID(id), w.Error.Message)
		}
	case err := <-waited.Error:
		if ctx.Err() == nil {
			res = dockerResult{exitCode: -1, err: fmt.Errorf("waiting for container %s: %w", shortID(id), err)}
			stopContainer(cli, id, stop)
			break
		}
		res = dockerResult{stopped: true, exitCode: stopContainer(cli, id, stop)}
	case <-ctx.Done():
		res = dockerResult{stopped: true, exitCode: stopContainer(cli, id, stop)}
	}
	drain(copied, attached.Close)
	if res.err == nil && !res.stopped && res.exitCode != 0 {
		res.err = fmt.Errorf("exit status %d", res.exitCode)
	}
	return res
}

// notRun is the result of a container or command that never ran: stopped
// when ctx ended meanwhile, else failed with err.
func notRun(ctx context.Context, err error) dockerResult {
	if ctx.Err() != nil {
		return dockerResult{stopped: true, exitCode: -1}
	}
	return dockerResult{exitCode: -1, err: err}
}

// drain waits for the output copier to finish once the command has
// ended; output held open past it (a process that outlived the command)
// is cut after a second.
func drain(copied <-chan struct{}, cut func()) {
	select {
	case <-copied:
	case <-time.After(time.Second):
		cut()
		<-copied
	}
}

// stopContainer stops a container: stop's signal, SIGKILL after its
// grace. It returns the container's exit code (-1 when unknown).
func stopContainer(cli *client.Client, id string, stop stopSpec) int {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCleanupTimeout)
	defer cancel()
	_, _ = cli.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: strconv.Itoa(int(stop.signal))})
	if code, ok := waitExited(ctx, cli, id, stop.grace); ok {
		return code
	}
	_, _ = cli.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: "SIGKILL"})
	code, _ := waitExited(ctx, cli, id, dockerCleanupTimeout)
	return code
}

// waitExited waits up to d for the container to be no longer running.
func waitExited(ctx context.Context, cli *client.Client, id string, d time.Duration) (int, bool) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	waited := cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case w := <-waited.Result:
		return int(w.StatusCode), true
	case <-waited.Error:
		return -1, false
	}
}

// removeContainer removes a container, running or not.
func removeContainer(cli *client.Client, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCleanupTimeout)
	defer cancel()
	_, _ = cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// runningContainer is the full id of the running container name; an error
// naming it when it is not there or not running.
func runningContainer(ctx context.Context, cli *client.Client, name string) (string, error) {
	got, err := cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		return "", fmt.Errorf("container %s is not on this worker's Docker engine", name)
	case err != nil:
		return "", fmt.Errorf("container %s: %w", name, err)
	case got.Container.State == nil || !got.Container.State.Running:
		return "", fmt.Errorf("container %s is not running", name)
	}
	return got.Container.ID, nil
}

// execIn executes argv in the running container id (called name in
// messages) and copies its output to out until it ends. When ctx ends
// first the command is stopped (see stopExec).
func execIn(ctx context.Context, cli *client.Client, id, name string, argv []string, e dagfile.DockerExec, out *streamOutput, stop stopSpec, logger *slog.Logger) dockerResult {
	created, err := cli.ExecCreate(ctx, id, client.ExecCreateOptions{User: e.User, Env: e.Env, WorkingDir: e.WorkingDir, Cmd: argv,
		AttachStdout: true, AttachStderr: true})
	if err != nil {
		return notRun(ctx, fmt.Errorf("executing %s in container %s: %w", argv[0], name, err))
	}
	attached, err := cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return notRun(ctx, fmt.Errorf("executing %s in container %s: %w", argv[0], name, err))
	}
	defer attached.Close()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = stdcopy.StdCopy(out.stdout, out.stderr, attached.Reader)
	}()
	select {
	case <-copied:
	case <-ctx.Done():
		if !stopExec(cli, id, created.ID, stop) {
			logger.Warn("a stopped step's command may go on in its container: the worker cannot signal it", "container", name, "command", argv[0])
			_, _ = fmt.Fprintf(out.stderr, "[daguha: the command may go on in container %s: this worker cannot signal it]\n", name)
		}
		drain(copied, attached.Close)
		return dockerResult{stopped: true, exitCode: execExitCode(cli, created.ID)}
	}
	// The output ended: the command has, or is about to.
	code, err := waitExec(ctx, cli, created.ID)
	switch {
	case err != nil && ctx.Err() != nil:
		stopExec(cli, id, created.ID, stop)
		return dockerResult{stopped: true, exitCode: -1}
	case err != nil:
		return dockerResult{exitCode: -1, err: fmt.Errorf("command %s in container %s: %w", argv[0], name, err)}
	case code != 0:
		return dockerResult{exitCode: code, err: fmt.Errorf("exit status %d", code)}
	}
	return dockerResult{}
}

// execPoll is how often an executed command is asked whether it ended
// after its output did.
const execPoll = 20 * time.Millisecond

// execStartWait bounds the wait for the engine to name the process of a
// command it has just started.
const execStartWait = 5 * time.Second

// waitExec waits until the executed command is no longer running and
// returns its exit code; the engine only tells when asked.
func waitExec(ctx context.Context, cli *client.Client, execID string) (int, error) {
	ticker := time.NewTicker(execPoll)
	defer ticker.Stop()
	for {
		got, err := cli.ExecInspect(ctx, execID, client.ExecInspectOptions{})
		if err != nil {
			return -1, err
		}
		if !got.Running {
			return got.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-ticker.C:
		}
	}
}

func execExitCode(cli *client.Client, execID string) int {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCleanupTimeout)
	defer cancel()
	got, err := cli.ExecInspect(ctx, execID, client.ExecInspectOptions{})
	if err != nil || got.Running {
		return -1
	}
	return got.ExitCode
}

// stopExec stops an executed command: the engine has no call for it, so
// the worker signals the process itself, which it can only where the
// engine runs on its own host and it sees the engine's processes. The
// process the engine names is signalled only when /proc says it is in
// the container's cgroup, so a process of the same number elsewhere (a
// worker in a container of its own sees other numbers) is never hit.
// stop's signal, then SIGKILL after its grace. False when the process
// could not be signalled.
func stopExec(cli *client.Client, containerID, execID string, stop stopSpec) bool {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCleanupTimeout)
	defer cancel()
	// Just after its start the engine may not know the process yet.
	ticker := time.NewTicker(execPoll)
	defer ticker.Stop()
	known := time.Now().Add(execStartWait)
	var got client.ExecInspectResult
	for running := false; !running; {
		var err error
		if got, err = cli.ExecInspect(ctx, execID, client.ExecInspectOptions{}); err != nil {
			return false
		}
		switch {
		case got.Running && got.PID > 0:
			running = true
			continue
		case !got.Running && got.PID > 0:
			// It has ended.
			return true
		case time.Now().After(known):
			// Never started, nothing to stop; or running with no process
			// named, none to signal.
			return !got.Running
		}
		<-ticker.C
	}
	if !inCgroupOf(got.PID, containerID) {
		return false
	}
	if syscall.Kill(got.PID, stop.signal) != nil {
		return false
	}
	deadline := time.Now().Add(stop.grace)
	for time.Now().Before(deadline) {
		if got, err := cli.ExecInspect(ctx, execID, client.ExecInspectOptions{}); err != nil || !got.Running {
			return true
		}
		<-ticker.C
	}
	if inCgroupOf(got.PID, containerID) {
		_ = syscall.Kill(got.PID, syscall.SIGKILL)
	}
	return true
}

// inCgroupOf tells whether process pid is in the cgroup of the container
// with that full id.
func inCgroupOf(pid int, containerID string) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	return err == nil && containerID != "" && strings.Contains(string(data), containerID)
}

// streamOutput is where what a step prints in a container goes, as a
// command's output does (exec_command.go): its log and the report's tail
// (both streams in the order written), Dagu's stdout and stderr files,
// ${id.stdout} and ${id.stderr}, and the streams kept for output,
// continueOn.output and the output map.
type streamOutput struct {
	stdout, stderr      io.Writer
	tail                *tailBuffer
	keptOut, keptStderr *capBuffer
	files               []*os.File
}

func (o *streamOutput) close() {
	for _, f := range o.files {
		_ = f.Close()
	}
}

// openStreamOutput opens what the step's output goes to; Dagu's stdout
// and stderr files are relative to dir.
func (x *execution) openStreamOutput(t *stepTry, dir string, outside resolver) (*streamOutput, error) {
	spec := t.spec()
	o := &streamOutput{tail: &tailBuffer{max: outputTailBytes}}
	var combined io.Writer = o.tail
	if f, err := x.openLog(spec.GetName(), t.retry); err != nil {
		x.logger.Warn("step log not kept", "step", spec.GetName(), "error", err)
	} else if f != nil {
		o.files = append(o.files, f)
		combined = io.MultiWriter(&lenientWriter{w: f}, o.tail)
	}
	combined = &lockedWriter{w: combined}
	outs, errs := []io.Writer{combined}, []io.Writer{combined}
	keep := x.outputLimit()
	if spec.GetOutput() != "" || len(spec.GetContinueOn().GetOutput()) > 0 || usesSource(spec, "stdout") {
		o.keptOut = &capBuffer{max: keep}
		outs = append(outs, o.keptOut)
	}
	if usesSource(spec, "stderr") {
		o.keptStderr = &capBuffer{max: keep}
		errs = append(errs, o.keptStderr)
	}
	for _, stream := range []struct {
		path string
		to   *[]io.Writer
	}{{spec.GetStdout(), &outs}, {spec.GetStderr(), &errs}} {
		if stream.path == "" {
			continue
		}
		f, err := openStreamFile(resolvePath(expandVars(stream.path, outside), dir))
		if err != nil {
			o.close()
			return nil, err
		}
		o.files = append(o.files, f)
		*stream.to = append(*stream.to, &lenientWriter{w: f})
	}
	idOut, idErr, err := x.openStreams(t.i)
	if err != nil {
		o.close()
		return nil, fmt.Errorf("opening the files of ${%s.stdout} and .stderr: %v", spec.GetId(), err)
	}
	if idOut != nil {
		o.files = append(o.files, idOut, idErr)
		outs, errs = append(outs, &lenientWriter{w: idOut}), append(errs, &lenientWriter{w: idErr})
	}
	o.stdout, o.stderr = io.MultiWriter(outs...), io.MultiWriter(errs...)
	return o, nil
}

// finishStreamOutput turns how the command ended into the step's state
// and keeps its output as a command's is kept: the tail, the output
// variable, ${id.stdout}, the output map.
func (x *execution) finishStreamOutput(ctx context.Context, t *stepTry, o *streamOutput, res dockerResult, outside resolver, dir string) *daguhav1.StepState {
	st := &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_SUCCEEDED, ExitCode: int32(res.exitCode), OutputTail: o.tail.String()}
	switch {
	case res.stopped:
		stopped := stoppedState(ctx)
		st.Status, st.Error = stopped.Status, stopped.Error
		return st
	case res.err != nil:
		st.Status, st.Error = daguhav1.StepStatus_STEP_STATUS_FAILED, res.err.Error()
	}
	return publishStepOutput(t, st, o.keptOut, o.keptStderr, outside, dir)
}
