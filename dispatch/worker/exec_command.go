package worker

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// commandExecutor runs a step's command as `sh -c COMMAND sh ARGS...`,
// or its script as `sh FILE ARGS...`, in a process group of its own (see
// runProcess), with the step's variables in its environment. Its output
// goes to the step's log and its tail to the report; with output: VAR
// its stdout becomes the variable.
type commandExecutor struct{}

func init() { registerExecutor(kindCommand, commandExecutor{}) }

func (commandExecutor) execute(ctx context.Context, t *stepTry) *daguhav1.StepState {
	x, i, retry, vars := t.x, t.i, t.retry, t.vars
	spec := x.steps[i]
	scope := resolver{x: x, vars: vars, osEnv: true, positional: true}
	// References with a path become variables of their own: the shell
	// text only ever names variables.
	text, refs := shellText(spec.GetCommand(), scope)
	if spec.GetScript() != "" {
		text, refs = shellText(spec.GetScript(), scope)
	}
	env := os.Environ()
	for _, v := range vars {
		env = append(env, v.name+"="+v.value)
	}
	for _, v := range refs {
		env = append(env, v.name+"="+v.value)
	}
	p := process{dir: expandVars(spec.GetDir(), scope), env: env, capture: spec.GetOutput() != "", grace: x.e.KillGrace}

	logFile, err := x.openLog(spec.GetName(), retry)
	if err != nil {
		x.logger.Warn("step log not kept", "step", spec.GetName(), "error", err)
	} else if logFile != nil {
		defer logFile.Close()
		p.log = logFile
	}
	stdout, stderr, err := x.openStreams(i)
	if err != nil {
		return &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_FAILED, ExitCode: -1, Error: "opening the files of ${" + spec.GetId() + ".stdout} and .stderr: " + err.Error()}
	}
	if stdout != nil {
		defer stdout.Close()
		defer stderr.Close()
		p.stdout, p.stderr = stdout, stderr
	}
	if spec.GetScript() != "" {
		path, err := x.writeScript(spec.GetName(), text)
		if err != nil {
			return &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_FAILED, ExitCode: -1, Error: "writing script: " + err.Error()}
		}
		defer os.Remove(path)
		p.argv = append([]string{"sh", path}, x.positional...)
	} else {
		p.argv = append([]string{"sh", "-c", text, "sh"}, x.positional...)
	}

	res := runProcess(ctx, p)
	st := &daguhav1.StepState{ExitCode: int32(res.exitCode), OutputTail: res.tail}
	switch {
	case res.stopped:
		stopped := stoppedState(ctx)
		st.Status, st.Error = stopped.Status, stopped.Error
		return st
	case res.err != nil:
		st.Status, st.Error = daguhav1.StepStatus_STEP_STATUS_FAILED, res.err.Error()
	case res.overflow:
		st.Status = daguhav1.StepStatus_STEP_STATUS_FAILED
		st.Error = fmt.Sprintf("output %s: the step printed more than %d bytes", spec.GetOutput(), maxOutputValueBytes)
		return st
	default:
		st.Status = daguhav1.StepStatus_STEP_STATUS_SUCCEEDED
	}
	if spec.GetOutput() != "" && !res.overflow {
		x.setOutput(i, strings.TrimRight(res.stdout, "\r\n"))
	}
	return st
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
