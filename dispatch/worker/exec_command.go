package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/daguha/daguha/dispatch/dagfile"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// commandExecutor runs a step's command, its commands one after another,
// or its script, each in a process group of its own (see runProcess),
// with the step's variables in its environment and in its directory.
// Its output goes to the step's log and its tail to the report; Dagu's
// stdout and stderr files get a copy of each stream; with output: VAR
// its stdout becomes the variable, and its output map is published when
// it ends. commandArgv says how each is started.
type commandExecutor struct{}

func init() { registerExecutor(kindCommand, commandExecutor{}) }

func (commandExecutor) execute(ctx context.Context, t *stepTry) *daguhav1.StepState {
	x, i, retry, vars := t.x, t.i, t.retry, t.vars
	spec := x.steps[i]
	outside := t.scope()
	env := os.Environ()
	for _, v := range vars {
		env = append(env, v.name+"="+v.value)
	}
	// References with a path become variables of their own, named in the
	// shell text: the text only ever names variables (shellText).
	text := func(s string) string {
		t, refs := shellText(s, outside)
		for _, v := range refs {
			env = append(env, v.name+"="+v.value)
		}
		return t
	}
	script, command := text(spec.GetScript()), text(spec.GetCommand())
	commands := make([]string, len(spec.GetCommands()))
	for n, c := range spec.GetCommands() {
		commands[n] = text(c)
	}
	failed := func(format string, args ...any) *daguhav1.StepState {
		return &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_FAILED, ExitCode: -1, Error: fmt.Sprintf(format, args...)}
	}
	dir, err := x.stepDir(spec, outside)
	if err != nil {
		return failed("%v", err)
	}
	grace := x.e.KillGrace
	if sec := x.run.GetDag().GetMaxCleanUpTimeSec(); sec > 0 {
		grace = time.Duration(sec) * time.Second
	}
	p := process{dir: dir, env: env, grace: grace, tail: &tailBuffer{max: outputTailBytes}}
	if name := spec.GetSignalOnStop(); name != "" {
		p.stop = syscall.Signal(dagfile.SignalNumber(name))
	}
	keep := x.outputLimit()
	if spec.GetOutput() != "" || len(spec.GetContinueOn().GetOutput()) > 0 || usesSource(spec, "stdout") {
		p.stdout = &capBuffer{max: keep}
	}
	if usesSource(spec, "stderr") {
		p.stderr = &capBuffer{max: keep}
	}
	for _, stream := range []struct {
		path string
		to   *io.Writer
	}{{spec.GetStdout(), &p.stdoutTo}, {spec.GetStderr(), &p.stderrTo}} {
		if stream.path == "" {
			continue
		}
		f, err := openStreamFile(resolvePath(expandVars(stream.path, outside), dir))
		if err != nil {
			return failed("%v", err)
		}
		defer f.Close()
		*stream.to = f
	}

	// A step with an id keeps its streams apart for ${id.stdout} and
	// ${id.stderr} (streams.go), beside Dagu's stdout and stderr files.
	idOut, idErr, err := x.openStreams(i)
	if err != nil {
		return failed("opening the files of ${%s.stdout} and .stderr: %v", spec.GetId(), err)
	}
	if idOut != nil {
		defer idOut.Close()
		defer idErr.Close()
		p.stdoutTo, p.stderrTo = alsoTo(p.stdoutTo, idOut), alsoTo(p.stderrTo, idErr)
	}

	logFile, err := x.openLog(spec.GetName(), retry)
	if err != nil {
		x.logger.Warn("step log not kept", "step", spec.GetName(), "error", err)
	} else if logFile != nil {
		defer logFile.Close()
		p.log = logFile
	}
	var argvs [][]string
	switch {
	case spec.GetScript() != "":
		path, err := x.writeScript(spec.GetName(), script)
		if err != nil {
			return failed("writing script: %v", err)
		}
		defer os.Remove(path)
		argvs = [][]string{x.scriptArgv(spec, path)}
	case len(commands) > 0:
		for _, c := range commands {
			argvs = append(argvs, x.commandArgv(spec, c))
		}
	case command != "":
		argvs = [][]string{x.commandArgv(spec, command)}
	}

	st := &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_SUCCEEDED}
	var res processResult
	for n, argv := range argvs {
		p.argv = argv
		res = runProcess(ctx, p)
		st.ExitCode, st.OutputTail = int32(res.exitCode), res.tail
		if res.stopped {
			stopped := stoppedState(ctx)
			st.Status, st.Error = stopped.Status, stopped.Error
			return st
		}
		if res.err != nil {
			st.Status, st.Error = daguhav1.StepStatus_STEP_STATUS_FAILED, startError(res.err, argv)
			if len(argvs) > 1 {
				st.Error = fmt.Sprintf("command %d failed: %s", n+1, st.Error)
			}
			break
		}
	}
	return publishStepOutput(t, st, p.stdout, p.stderr, outside, dir)
}

// alsoTo adds w to the writers a stream is copied to; each one's failure
// stops only its own copy.
func alsoTo(to io.Writer, w io.Writer) io.Writer {
	if to == nil {
		return w
	}
	return io.MultiWriter(&lenientWriter{w: to}, &lenientWriter{w: w})
}

// startError says why a process did not succeed; when it could not start
// at all, which program was missing.
func startError(err error, argv []string) string {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return err.Error()
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return fmt.Sprintf("cannot start %s: it is not installed on this worker (%v)", argv[0], err)
	}
	return err.Error()
}

// unixShells take -e and -c as sh does (Dagu's list).
var unixShells = map[string]bool{"sh": true, "bash": true, "zsh": true, "ksh": true, "ash": true, "dash": true}

// shellOf is the shell a step runs with: its own, else its DAG's, else
// sh; errexit tells whether -e is added, as Dagu adds it to a shell the
// step did not name itself.
func (x *execution) shellOf(spec *daguhav1.StepSpec) (argv []string, errexit bool) {
	if shell := spec.GetShell(); len(shell) > 0 {
		return shell, false
	}
	if shell := x.run.GetDag().GetShell(); len(shell) > 0 {
		return shell, true
	}
	return []string{"sh"}, true
}

// commandArgv is how a command line runs, as in Dagu:
//   - sh and its kin (bash, zsh, ksh, ash, dash): SHELL ARGS [-e] -c
//     COMMAND, then $0 and the run's positional params ($1, $2...);
//   - nix-shell: nix-shell ARGS -p PACKAGE... --pure --run COMMAND (with
//     "set -e; " before it where -e would be added);
//   - pwsh and powershell: SHELL ARGS -Command COMMAND;
//   - any other program: SHELL ARGS -c COMMAND.
func (x *execution) commandArgv(spec *daguhav1.StepSpec, command string) []string {
	shell, errexit := x.shellOf(spec)
	name := strings.TrimSuffix(filepath.Base(shell[0]), ".exe")
	argv := append([]string(nil), shell...)
	switch {
	case name == "nix-shell":
		argv = x.nixShellArgs(spec, argv)
		if errexit {
			command = "set -e; " + command
		}
		return append(argv, command)
	case name == "pwsh" || name == "powershell":
		if !hasArg(argv, "-Command") && !hasArg(argv, "-c") {
			argv = append(argv, "-Command")
		}
		return append(argv, command)
	}
	if errexit && unixShells[name] && !hasArg(argv, "-e") {
		argv = append(argv, "-e")
	}
	if !hasArg(argv, "-c") {
		argv = append(argv, "-c")
	}
	argv = append(argv, command)
	if unixShells[name] {
		argv = append(append(argv, name), x.positional...)
	}
	return argv
}

// scriptArgv is how a script file runs: with the step's command as its
// interpreter (command: python3: python3 FILE ARGS..., the command line
// read by sh), else with the shell as a command would (SHELL ARGS [-e]
// FILE ARGS...; nix-shell runs the file), the run's positional params
// after the file.
func (x *execution) scriptArgv(spec *daguhav1.StepSpec, path string) []string {
	if command := spec.GetCommand(); command != "" {
		// sh only splits the line and expands its variables, as Dagu
		// does before it runs the interpreter.
		return append([]string{"sh", "-c", command + ` "$@"`, "sh", path}, x.positional...)
	}
	shell, errexit := x.shellOf(spec)
	name := strings.TrimSuffix(filepath.Base(shell[0]), ".exe")
	argv := append([]string(nil), shell...)
	if name == "nix-shell" {
		_ = os.Chmod(path, 0o700)
		run := path
		if errexit {
			run = "set -e; " + run
		}
		return append(x.nixShellArgs(spec, argv), run)
	}
	if errexit && unixShells[name] && !hasArg(argv, "-e") {
		argv = append(argv, "-e")
	}
	return append(append(argv, path), x.positional...)
}

func (x *execution) nixShellArgs(spec *daguhav1.StepSpec, argv []string) []string {
	for _, pkg := range spec.GetShellPackages() {
		argv = append(argv, "-p", pkg)
	}
	if !hasArg(argv, "--pure") && !hasArg(argv, "--impure") {
		argv = append(argv, "--pure")
	}
	if !hasArg(argv, "--run") {
		argv = append(argv, "--run")
	}
	return argv
}

func hasArg(argv []string, arg string) bool {
	for _, a := range argv[1:] {
		if a == arg {
			return true
		}
	}
	return false
}

// stepDir is the directory a step runs in, as Dagu resolves it: the
// step's dir (variables expanded, ~ the worker's home, relative to the
// DAG's working directory), else the DAG's workingDir, else the worker's
// own. A directory that is not there fails the step saying so.
func (x *execution) stepDir(spec *daguhav1.StepSpec, lookup resolver) (string, error) {
	base := ""
	if wd := x.run.GetDag().GetWorkingDir(); wd != "" {
		base = resolvePath(expandVars(wd, lookup), "")
	}
	dir := base
	if d := spec.GetDir(); d != "" {
		dir = resolvePath(expandVars(d, lookup), base)
	}
	if dir == "" {
		return "", nil
	}
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("working directory %s does not exist on this worker", dir)
	case err != nil:
		return "", fmt.Errorf("working directory: %w", err)
	case !info.IsDir():
		return "", fmt.Errorf("working directory %s is not a directory", dir)
	}
	return dir, nil
}

// resolvePath makes a path of the step's: ~ (or ~/...) is the worker's
// home; a relative path is taken from base when there is one.
func resolvePath(path, base string) string {
	if path == "~" || strings.HasPrefix(path, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, path[1:])
		}
	}
	if path != "" && !filepath.IsAbs(path) && base != "" {
		path = filepath.Join(base, path)
	}
	return path
}

// openStreamFile opens one of Dagu's stdout/stderr files to append to.
func openStreamFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the step's output file: %w", err)
	}
	return f, nil
}

// outputLimit is how much of a stream a step keeps to capture or match:
// the DAG's maxOutputSize, at most (and by default) what an output
// variable may hold.
func (x *execution) outputLimit() int {
	if n := x.run.GetDag().GetMaxOutputSize(); n > 0 && n < maxOutputValueBytes {
		return int(n)
	}
	return maxOutputValueBytes
}

// usesSource tells whether the step's output map reads a stream.
func usesSource(spec *daguhav1.StepSpec, from string) bool {
	for _, e := range spec.GetOutputEntries() {
		if e.GetFrom() == from {
			return true
		}
	}
	return false
}

// openLog opens the step's log file: created on the first try, appended
// to (after a marker line) on the next ones. nil without a LogDir.
func (x *execution) openLog(step string, retry uint32) (*os.File, error) {
	if x.e.LogDir == "" {
		return nil, nil
	}
	path := x.e.LogPath(x.run.GetId(), x.run.GetAttempt(), step)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if retry > 1 {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, err
	}
	if retry > 1 {
		_, _ = fmt.Fprintf(f, "\n--- daguha: retry %d ---\n", retry)
	}
	return f, nil
}

// writeScript puts a step's script in a private file for sh to read.
func (x *execution) writeScript(step, script string) (string, error) {
	dir := ""
	if x.e.LogDir != "" {
		dir = filepath.Dir(x.e.LogPath(x.run.GetId(), x.run.GetAttempt(), step))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
	}
	f, err := os.CreateTemp(dir, safeName(step)+".*.sh")
	if err != nil {
		return "", err
	}
	if _, err := io.WriteString(f, script); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
