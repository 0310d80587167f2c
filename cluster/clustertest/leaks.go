package clustertest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// leakSettle is how long a package's tests may leave goroutines winding
// down after the last test: memberlist's probe of a peer, for one, waits
// out its probe interval (a second) after Shutdown before it returns.
const leakSettle = 10 * time.Second

// knownWaiters are goroutines the check does not count, each with why it
// may outlive a test.
var knownWaiters = []goleak.Option{
	// A new leader's barrier (cluster.Server.leaderLoop) waits on a Raft
	// future, and hashicorp/raft never answers a future still queued when
	// Raft shuts down (hashicorp/raft#498, open). A server shut down just
	// as it won an election leaves that one goroutine waiting for good;
	// only a shutdown does, since a running Raft answers every future
	// (losing leadership included), and a server's process ends with it.
	goleak.IgnoreAnyFunction("github.com/daguha/daguha/cluster.(*Server).leaderLoop.func1"),
}

// MainWithLeakCheck runs a package's tests (call it from TestMain), then
// fails the run if goroutines are still running once leakSettle has
// passed; goleak's own retries last well under a second, too short for
// goroutines that end on a timer.
func MainWithLeakCheck(m *testing.M, after ...func()) {
	code := m.Run()
	for _, f := range after {
		f()
	}
	if code == 0 {
		deadline := time.Now().Add(leakSettle)
		err := goleak.Find(knownWaiters...)
		for err != nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			err = goleak.Find(knownWaiters...)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}
