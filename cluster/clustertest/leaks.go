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
		err := goleak.Find()
		for err != nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			err = goleak.Find()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}
