package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
)

// healthOf runs `daguha health` against a server's gRPC port and returns
// what it printed and its exit code.
func healthOf(t *testing.T, a *clustertest.Agent, extra ...string) (string, int) {
	t.Helper()
	args := append([]string{"health", "-address=127.0.0.1:" + strconv.Itoa(a.GRPCPort), "-timeout=2s"}, extra...)
	stdout, stderr, code := runCLI(t, args...)
	return strings.TrimSpace(stdout) + strings.TrimSpace(stderr), code
}

// TestHealthCommandFollowsLeader: a server alone, waiting for the two
// others its -bootstrap-expect=3 asks for, has no leader: daguha health
// says NOT_SERVING and exits 1, while its liveness service is SERVING.
// Once the others start and a leader is elected, every server is SERVING
// (exit 0). With two servers killed, the survivor loses its leader and
// goes back to NOT_SERVING.
func TestHealthCommandFollowsLeader(t *testing.T) {
	c := clustertest.NewCluster(t, clustertest.ClusterOptions{Servers: 3})
	first := c.Agents[0]
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 30*time.Second, "the lone server's health service answers NOT_SERVING", func() (bool, string) {
		out, code := healthOf(t, first)
		return code == 1 && out == "NOT_SERVING", "exit " + strconv.Itoa(code) + ": " + out
	})
	if out, code := healthOf(t, first, "-service=liveness"); code != 0 || out != "SERVING" {
		t.Fatalf("liveness of a server without a leader: exit %d, %q; want 0, SERVING", code, out)
	}

	for _, a := range c.Agents[1:] {
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitLeader(t, 60*time.Second)
	for _, a := range c.Agents {
		clustertest.WaitFor(t, 10*time.Second, a.Name+" health SERVING", func() (bool, string) {
			out, code := healthOf(t, a)
			return code == 0 && out == "SERVING", "exit " + strconv.Itoa(code) + ": " + out
		})
	}

	// Killed (not stopped: a graceful stop would shrink the configuration
	// and leave the survivor a one-server cluster with itself as leader).
	c.Agents[1].Kill()
	c.Agents[2].Kill()
	clustertest.WaitFor(t, 30*time.Second, "the survivor without a quorum reports NOT_SERVING", func() (bool, string) {
		out, code := healthOf(t, first)
		return code == 1 && out == "NOT_SERVING", "exit " + strconv.Itoa(code) + ": " + out
	})
}
