package worker

import (
	"os"
	"path/filepath"
	"strconv"
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
