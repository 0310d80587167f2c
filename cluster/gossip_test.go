package cluster

import (
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"
)

// freeGossipPort returns a port free on 127.0.0.1 for TCP and UDP.
func freeGossipPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		udp, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		l.Close()
		if err == nil {
			udp.Close()
			return port
		}
	}
	t.Fatal("no free port for gossip")
	return 0
}

// startServerGossip starts a server's gossip member alone (no Raft), as a
// server process would, named name on port.
func startServerGossip(t *testing.T, name string, port int) *memberlist.Memberlist {
	t.Helper()
	meta := &metaDelegate{meta: Meta{Version: metaVersion, Role: RoleServer, GRPCAddr: "127.0.0.1:1"}}
	list, err := newMemberlist(gossipSettings{name: name, bind: "127.0.0.1", advertise: "127.0.0.1", port: port, timings: GossipLocal},
		meta, newMembers(time.Now), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Regression: a worker dropped its servers for good when all of them were
// killed and restarted: the restarted servers joined each other, nobody
// joined the worker, and the worker never polled again.
func TestWorkerRejoinsWhenItsServersAreRestarted(t *testing.T) {
	before := goleak.IgnoreCurrent()
	port := freeGossipPort(t)
	server := startServerGossip(t, "server1", port)
	worker, err := JoinAsWorker(WorkerMemberConfig{
		NodeName: "worker1", BindAddr: "127.0.0.1", AdvertiseAddr: "127.0.0.1", GossipPort: freeGossipPort(t),
		Join: []string{"127.0.0.1:" + strconv.Itoa(port)}, JoinRetryInterval: 100 * time.Millisecond,
		GossipTimings: GossipLocal, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the worker to see the server", func() bool { return len(worker.Servers()) == 1 })

	// A kill: no leave message, the worker finds out by probing.
	if err := server.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the worker to see the server failed", func() bool { return len(worker.Servers()) == 0 })

	restarted := startServerGossip(t, "server1", port)
	waitUntil(t, 20*time.Second, "the worker to see the restarted server", func() bool { return len(worker.Servers()) == 1 })
	waitUntil(t, 20*time.Second, "the restarted server to see the worker", func() bool { return restarted.NumMembers() == 2 })

	worker.Shutdown(time.Second)
	restarted.Shutdown()
	// memberlist's shutdown does not wait for a probe in flight.
	waitUntil(t, 10*time.Second, "the gossip goroutines to end", func() bool { return goleak.Find(before) == nil })
}
