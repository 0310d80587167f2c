//go:build linux

package initproc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// Run makes this process an init when it is PID 1 and not the child of
// one: it runs the same executable with the same arguments as its child,
// passes it the signals a container gets, reaps every process that ends,
// and returns the child's exit code once the child is gone, with true.
// Otherwise it returns false at once and the caller goes on as usual.
func Run() (int, bool) {
	if os.Getpid() != 1 || os.Getenv(ChildEnv) != "" {
		return 0, false
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "daguha init: cannot find its own executable:", err)
		return 1, true
	}
	// Before the child starts: its end must not be missed.
	signals := make(chan os.Signal, 32)
	signal.Notify(signals, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP,
		syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	child := exec.Command(exe, os.Args[1:]...)
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
	child.Env = append(os.Environ(), ChildEnv+"=1")
	// A group of its own: a signal sent to the init's group (a terminal's
	// Ctrl-C, kill -TERM -1) reaches the child once, passed on, not twice
	// (a second one makes daguha exit at once).
	child.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := child.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "daguha init: cannot start daguha:", err)
		return 1, true
	}
	pid := child.Process.Pid
	// reap collects every ended process at each wake-up, so one SIGCHLD
	// standing for several ends is enough; the slow tick covers a signal
	// dropped while the channel was full.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case sig := <-signals:
			if sig != syscall.SIGCHLD {
				_ = syscall.Kill(pid, sig.(syscall.Signal))
			}
		case <-tick.C:
		}
		if code, done := reap(pid); done {
			return code, true
		}
	}
}

// reap collects every ended process; when the main child is among them
// it returns that child's exit code (128 + the signal that killed it).
func reap(main int) (int, bool) {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			// ECHILD: nothing left at all, the main child included.
			return 1, errors.Is(err, syscall.ECHILD)
		}
		if pid != main {
			continue
		}
		if status.Signaled() {
			return 128 + int(status.Signal()), true
		}
		return status.ExitStatus(), true
	}
}
