package clustertest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// helperEnv makes the test binary a helper process instead of running
// the tests (see trapper).
const helperEnv = "DAGUHA_CLUSTERTEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "trapper" {
		trapper()
	}
	goleak.VerifyTestMain(m)
}

// trapper says it is ready, then waits for SIGTERM and exits 0: a
// process to pause that starts no child. A shell loop that runs sleep
// cannot be relied on to stop: dash starts each command with vfork, and
// a SIGSTOP to the group that lands between a child's vfork and its exec
// stops the child there and leaves the shell waiting for it in state D,
// never T (CI saw exactly that).
func trapper() {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Printf("is%s\n", "-ready")
	<-term
	os.Exit(0)
}

// procState reads the state letter of a process from /proc (T = stopped).
func procState(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatalf("read state of %d: %v", pid, err)
	}
	// The state follows the command name, which is in parentheses.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	return fields[0]
}

func TestProcessPauseResumeKill(t *testing.T) {
	p := NewProcess(t, "sleeper", t.TempDir(), "/bin/sh", "-c", "exec sleep 60")
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	p.Pause()
	WaitFor(t, 5*time.Second, "the paused process to be stopped", func() (bool, string) {
		state := procState(t, pid)
		return state == "T", "state " + state
	})
	p.Resume()
	WaitFor(t, 5*time.Second, "the resumed process to run", func() (bool, string) {
		state := procState(t, pid)
		return state != "T", "state " + state
	})
	p.Pause()
	p.Kill() // a kill must work on a paused process too
	if p.Running() {
		t.Fatal("process still running after Kill")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("pid %d still exists after Kill: %v", pid, err)
	}
}

func TestProcessStopIsGracefulAndRestartAppendsToTheLog(t *testing.T) {
	p := NewProcess(t, "trapper", t.TempDir(), "/bin/sh", "-c", `trap 'echo by""e; exit 0' TERM; printf 'is%s\n' -ready; while :; do sleep 0.05; done`)
	for round := 1; round <= 2; round++ {
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		WaitFor(t, 5*time.Second, "the script to be ready", func() (bool, string) {
			return strings.Count(p.Tail(100), "is-ready") == round, p.Tail(5)
		})
		p.Stop()
		if code := p.ExitCode(); code != 0 {
			t.Fatalf("round %d: exit code %d after SIGTERM, want 0", round, code)
		}
	}
	log := p.Tail(100)
	byes := 0
	for _, line := range strings.Split(log, "\n") {
		if line == "bye" {
			byes++
		}
	}
	if strings.Count(log, "=== start") != 2 || byes != 2 {
		t.Fatalf("log of two runs:\n%s", log)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err == nil {
		t.Fatal("starting a running process twice succeeded")
	}
}

func TestProcessStopContinuesAPausedProcess(t *testing.T) {
	p := NewProcess(t, "paused", t.TempDir(), os.Args[0])
	p.Env = []string{helperEnv + "=trapper"}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	// The marker is assembled by Printf so nothing but the helper, with
	// its handler set, prints it.
	WaitFor(t, 5*time.Second, "the helper to be ready", func() (bool, string) {
		return strings.Contains(p.Tail(10), "is-ready"), p.Tail(5)
	})
	p.Pause()
	WaitFor(t, 30*time.Second, "the process to be stopped", func() (bool, string) {
		state := procState(t, p.Pid())
		return state == "T", "state " + state
	})
	p.Stop()
	// Exit code 0 is the helper's: a paused process that never saw the TERM
	// would have been killed after the grace period instead (-1).
	if code := p.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after Stop of a paused process, want 0", code)
	}
}

func TestFreePortsAreDistinctAndBindable(t *testing.T) {
	ports := FreePorts(t, 20)
	seen := map[int]bool{}
	for _, port := range ports {
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatalf("port %d not bindable on TCP: %v", port, err)
		}
		l.Close()
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatalf("port %d not bindable on UDP: %v", port, err)
		}
		u.Close()
	}
	for _, port := range FreePorts(t, 20) {
		if seen[port] {
			t.Fatalf("port %d handed out again by a second call", port)
		}
	}
}

func TestEventually(t *testing.T) {
	calls := 0
	if !Eventually(5*time.Second, time.Millisecond, func() bool { calls++; return calls == 3 }) {
		t.Fatal("Eventually gave up on a condition that became true")
	}
	if Eventually(30*time.Millisecond, time.Millisecond, func() bool { return false }) {
		t.Fatal("Eventually reported true for a condition that never held")
	}
}

// fatalTB records Fatalf and ends the goroutine like testing.T does, so a
// test can see WaitFor fail without failing itself.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestWaitFor(t *testing.T) {
	calls := 0
	WaitFor(t, 5*time.Second, "the third call", func() (bool, string) {
		calls++
		return calls == 3, ""
	})
	if calls != 3 {
		t.Fatalf("WaitFor returned after %d calls, want 3", calls)
	}

	f := &fatalTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		WaitFor(f, 30*time.Millisecond, "nothing", func() (bool, string) { return false, "still nothing" })
	}()
	<-done
	want := "timed out after 30ms waiting for nothing: last: still nothing"
	if f.msg != want {
		t.Fatalf("WaitFor failed with %q, want %q", f.msg, want)
	}
}
