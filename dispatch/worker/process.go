package worker

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/daguha/daguha/dispatch/valid"
)

// outputTailBytes is how much of a step's output is kept and reported:
// what the cluster takes.
const outputTailBytes = valid.MaxOutputTailBytes

// maxOutputValueBytes bounds the stdout a step may capture into an output
// variable; a step printing more fails rather than pass on a cut value.
const maxOutputValueBytes = valid.MaxOutputValueBytes

// defaultKillGrace is how long a stopped step's processes get between
// SIGTERM and SIGKILL.
const defaultKillGrace = 5 * time.Second

// tailBuffer keeps the last max bytes written to it. It grows up to twice
// max before moving the tail to the front, so a long output costs linear
// time rather than a copy of max bytes per write.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return len(p), nil
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		n := copy(t.buf, t.buf[len(t.buf)-t.max:])
		t.buf = t.buf[:n]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) > t.max {
		return string(t.buf[len(t.buf)-t.max:])
	}
	return string(t.buf)
}

// capBuffer keeps the first max bytes written to it and remembers whether
// more came.
type capBuffer struct {
	max      int
	buf      []byte
	overflow bool
}

func (c *capBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := c.max - len(c.buf); n > room {
		c.overflow = true
		p = p[:max(room, 0)]
	}
	c.buf = append(c.buf, p...)
	return n, nil
}

// lenientWriter passes writes on and swallows the first failure and all
// after it: a full disk must not stall the copier (and so the step
// writing into its pipe); the tail is still kept.
type lenientWriter struct {
	w   io.Writer
	err error
}

func (l *lenientWriter) Write(p []byte) (int, error) {
	if l.err == nil {
		_, l.err = l.w.Write(p)
	}
	return len(p), nil
}

// lockedWriter serialises writes from the stdout and stderr copiers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// process is one command a step runs.
type process struct {
	argv []string
	dir  string
	env  []string
	// log receives the whole combined output when not nil.
	log   io.Writer
	grace time.Duration

	// Set by the steps of several commands or with Dagu's output keys,
	// and by backquotes and conditions (stdout); nil or zero: a tail of
	// the process's own, nothing kept apart, SIGTERM.
	// tail keeps the last of the combined output: one for all the
	// commands of a step.
	tail *tailBuffer
	// stdout and stderr, when set, keep each stream apart (up to their
	// max): what a step captures, or what a backquote or a condition
	// expands to (maxOutputValueBytes).
	stdout, stderr *capBuffer
	// stdoutTo and stderrTo receive a copy of each stream (Dagu's stdout
	// and stderr files).
	stdoutTo, stderrTo io.Writer
	// stop is the signal that stops the process group before SIGKILL
	// (default SIGTERM).
	stop syscall.Signal
}

// processResult is how a process ended.
type processResult struct {
	exitCode int
	tail     string
	// err is the start or exit error; nil for exit status 0.
	err error
	// stopped: ctx ended while the process ran and it was killed.
	stopped bool
}

// runProcess runs p in its own process group. Its output goes through
// pipes the worker owns (not os/exec's copiers), so a background process
// that keeps them open cannot hold the step up. When ctx ends the whole
// group gets SIGTERM, then SIGKILL after the grace; when the command ends
// by itself, processes it left behind in its group are stopped the same
// way: a step's processes never outlive it.
func runProcess(ctx context.Context, p process) processResult {
	grace := p.grace
	if grace <= 0 {
		grace = defaultKillGrace
	}
	tail := p.tail
	if tail == nil {
		tail = &tailBuffer{max: outputTailBytes}
	}
	stop := p.stop
	if stop == 0 {
		stop = syscall.SIGTERM
	}
	var combined io.Writer = tail
	if p.log != nil {
		combined = io.MultiWriter(&lenientWriter{w: p.log}, tail)
	}
	combined = &lockedWriter{w: combined}
	// A stream kept apart or copied somewhere gets a pipe of its own.
	var stdoutCopies, stderrCopies []io.Writer
	if p.stdout != nil {
		stdoutCopies = append(stdoutCopies, p.stdout)
	}
	if p.stdoutTo != nil {
		stdoutCopies = append(stdoutCopies, &lenientWriter{w: p.stdoutTo})
	}
	if p.stderr != nil {
		stderrCopies = append(stderrCopies, p.stderr)
	}
	if p.stderrTo != nil {
		stderrCopies = append(stderrCopies, &lenientWriter{w: p.stderrTo})
	}

	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Dir = p.dir
	cmd.Env = p.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	var readers []*os.File
	var writers []*os.File
	closeAll := func(files []*os.File) {
		for _, f := range files {
			_ = f.Close()
		}
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return processResult{exitCode: -1, err: err}
	}
	readers, writers = append(readers, outR), append(writers, outW)
	cmd.Stdout, cmd.Stderr = outW, outW
	copies := []io.Writer{combined}
	if len(stdoutCopies) > 0 || len(stderrCopies) > 0 {
		errR, errW, err := os.Pipe()
		if err != nil {
			closeAll(readers)
			closeAll(writers)
			return processResult{exitCode: -1, err: err}
		}
		readers, writers = append(readers, errR), append(writers, errW)
		cmd.Stderr = errW
		copies = []io.Writer{
			io.MultiWriter(append([]io.Writer{combined}, stdoutCopies...)...),
			io.MultiWriter(append([]io.Writer{combined}, stderrCopies...)...),
		}
	}
	if err := cmd.Start(); err != nil {
		closeAll(readers)
		closeAll(writers)
		return processResult{exitCode: -1, err: err}
	}
	closeAll(writers)
	pgid := cmd.Process.Pid

	var copying sync.WaitGroup
	for i, r := range readers {
		copying.Add(1)
		go func() {
			defer copying.Done()
			_, _ = io.Copy(copies[i], r)
		}()
	}
	drained := make(chan struct{})
	go func() {
		copying.Wait()
		close(drained)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var waitErr error
	stopped := false
	select {
	case waitErr = <-exited:
		if ctx.Err() != nil {
			// Ended as the context did: still clear the group.
			stopped = true
		}
		if groupExists(pgid) {
			stopGroup(pgid, stop, grace, nil, drained)
		}
	case <-ctx.Done():
		stopped = true
		stopGroup(pgid, stop, grace, exited, drained)
		waitErr = <-exited
	}
	// Everything in the group is dead; output still open now belongs to
	// processes that left the group. Give the copiers a moment, then cut.
	select {
	case <-drained:
	case <-time.After(time.Second):
		closeAll(readers)
		<-drained
	}
	closeAll(readers)

	return processResult{exitCode: exitCode(waitErr), tail: tail.String(), err: waitErr, stopped: stopped}
}

// stopGroup sends sig to the process group, waits until the leader
// has exited (when exited is not nil; the value is put back) and the
// output pipes are closed, or the grace passed, then sends SIGKILL.
// Killing the group even after everything looked gone is cheap and covers
// members that closed their output.
func stopGroup(pgid int, sig syscall.Signal, grace time.Duration, exited chan error, drained <-chan struct{}) {
	_ = syscall.Kill(-pgid, sig)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	if exited != nil {
		select {
		case err := <-exited:
			exited <- err
		case <-timer.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			return
		}
	}
	select {
	case <-drained:
	case <-timer.C:
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// groupExists tells whether any process (zombies included) is in the
// group.
func groupExists(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode()
	}
	return -1
}
