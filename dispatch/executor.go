package dispatch

import (
	"context"
	"errors"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// outputTailBytes is how much of a step's output is kept and reported.
const outputTailBytes = 4 << 10

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append([]byte(nil), t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// stepResult is how one command ended.
type stepResult struct {
	exitCode int
	output   string
	err      error
}

// runCommand runs command with `sh -c` in its own process group, so that
// cancelling ctx stops it and everything it started.
func runCommand(ctx context.Context, command string) stepResult {
	out := &tailBuffer{max: outputTailBytes}
	cmd := exec.Command("sh", "-c", command)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return stepResult{exitCode: -1, err: err}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			err = <-done
		}
		return stepResult{exitCode: exitCode(err), output: out.String(), err: ctx.Err()}
	}
	return stepResult{exitCode: exitCode(err), output: out.String(), err: err}
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
