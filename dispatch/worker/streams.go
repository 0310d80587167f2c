package worker

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// A step with an id keeps its stdout and its stderr in files of their
// own, apart from its log, for other steps to read through ${id.stdout}
// and ${id.stderr} as Dagu's do. They are in the run's log directory
// (streams/, which no step log can be named), each try writing them
// anew; on an engine without logs, in a directory of the attempt that
// is removed when the attempt ends. Their names end as Dagu's do, in
// .out and .err, so a script that looks for those finds them.

// streamPath is the file holding one stream ("stdout" or "stderr") of
// step i in this attempt.
func (x *execution) streamPath(i int, stream string) string {
	suffix := ".out"
	if stream == "stderr" {
		suffix = ".err"
	}
	name := safeName(x.steps[i].GetName()) + suffix
	if x.e.LogDir != "" {
		return filepath.Join(x.e.LogDir, safeName(x.run.GetId()), strconv.FormatUint(uint64(x.run.GetAttempt()), 10), "streams", name)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return filepath.Join(x.streamsDir, name)
}

// openStreams creates (or empties) the stdout and stderr files of step i
// for a try; nil files for a step without an id.
func (x *execution) openStreams(i int) (stdout, stderr *os.File, err error) {
	if x.steps[i].GetId() == "" {
		return nil, nil, nil
	}
	if err := x.makeStreamsDir(); err != nil {
		return nil, nil, err
	}
	stdout, err = os.OpenFile(x.streamPath(i, "stdout"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, err
	}
	stderr, err = os.OpenFile(x.streamPath(i, "stderr"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		stdout.Close()
		return nil, nil, err
	}
	return stdout, stderr, nil
}

func (x *execution) makeStreamsDir() error {
	if x.e.LogDir != "" {
		return os.MkdirAll(filepath.Dir(x.streamPath(0, "stdout")), 0o700)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.streamsDir != "" {
		return nil
	}
	dir, err := os.MkdirTemp("", "daguha-streams-")
	if err != nil {
		return err
	}
	x.streamsDir = dir
	return nil
}

// removeStreams removes the attempt's own stream directory, if it made
// one.
func (x *execution) removeStreams() {
	x.mu.Lock()
	dir := x.streamsDir
	x.mu.Unlock()
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}

// stepFiles are Dagu's DAG_RUN_STEP_STDOUT_FILE and
// DAG_RUN_STEP_STDERR_FILE for step i: its stdout and stderr files when
// it has an id (as ${id.stdout} and ${id.stderr}); else its log, which
// holds both streams in the order written; none when the engine keeps
// no logs.
func (x *execution) stepFiles(i int) (stdout, stderr string) {
	switch {
	case x.steps[i].GetId() != "":
		if err := x.makeStreamsDir(); err != nil {
			return "", ""
		}
		return x.streamPath(i, "stdout"), x.streamPath(i, "stderr")
	case x.e.LogDir != "":
		log := x.e.LogPath(x.run.GetId(), x.run.GetAttempt(), x.steps[i].GetName())
		return log, log
	}
	return "", ""
}

// runLogFile is the attempt's run log, beside its steps' logs: Dagu's
// DAG_RUN_LOG_FILE. It starts with a dot, which no step's log can.
const runLogFile = ".run.log"

// openRunLog starts the attempt's run log, when the engine keeps logs:
// what the engine logs about the attempt (retries, repeats, conditions,
// warnings) goes there too, and a line for each step's end (logEnd).
// The function returned closes it.
func (x *execution) openRunLog() func() {
	if x.e.LogDir == "" {
		return nil
	}
	path := filepath.Join(x.e.LogDir, safeName(x.run.GetId()), strconv.FormatUint(uint64(x.run.GetAttempt()), 10), runLogFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		x.logger.Warn("run log not kept", "error", err)
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		x.logger.Warn("run log not kept", "error", err)
		return nil
	}
	file := slog.NewTextHandler(f, nil)
	x.runLog, x.runLogger = path, slog.New(file)
	x.logger = slog.New(slog.NewMultiHandler(x.logger.Handler(), file))
	x.runLogger.Info("attempt started", "dag", dagName(x.run), "run", x.run.GetId(), "attempt", x.run.GetAttempt())
	return func() { _ = f.Close() }
}

// logEnd writes a step's end to the run log.
func (x *execution) logEnd(st *daguhav1.StepState) {
	if x.runLogger == nil {
		return
	}
	attrs := []any{"step", st.GetName(), "status", st.GetStatus().Word(),
		"exit_code", st.GetExitCode()}
	if st.GetError() != "" {
		attrs = append(attrs, "error", st.GetError())
	}
	x.runLogger.Info("step ended", attrs...)
}
