package agent_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/agent"
	"github.com/daguha/daguha/ops/tlsutil"
)

// A start that fails at its last step (HTTPS certificates that cannot be
// read, found after the listeners, Raft, gossip and gRPC are up) closes
// everything the earlier steps opened, through the one clean-up stack:
// no goroutine is left, and a start on the same four ports and the same
// data directory (whose Raft store a leftover would hold locked) succeeds.
func TestAFailedStartReleasesEverythingItOpened(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	ports := clustertest.FreePorts(t, 4)
	dataDir := t.TempDir()
	config := func() agent.Config {
		return agent.Config{
			Cluster: cluster.Config{
				NodeName: "solo", DataDir: dataDir, BindAddr: "127.0.0.1", AdvertiseAddr: "127.0.0.1",
				RaftPort: ports[0], GossipPort: ports[1], GRPCPort: ports[2], HTTPPort: ports[3],
				BootstrapExpect: 1, GossipTimings: cluster.GossipLocal,
			},
			HTTPBind: "127.0.0.1", GRPCBind: "127.0.0.1",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		}
	}
	bad := config()
	missing := filepath.Join(t.TempDir(), "missing.pem")
	bad.HTTPTLS = tlsutil.Files{CertFile: missing, KeyFile: missing}
	if a, err := agent.Start(bad); err == nil {
		a.Shutdown(context.Background())
		t.Fatal("a start with unreadable HTTPS certificates succeeded")
	} else if !strings.Contains(err.Error(), "HTTP TLS") {
		t.Fatalf("the start failed at another step: %v", err)
	}
	goleak.VerifyNone(t, ignore)

	started := make(chan error, 1)
	var a *agent.Agent
	go func() {
		var err error
		a, err = agent.Start(config())
		started <- err
	}()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("a start on the same ports and data directory after the failed one: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a start on the same data directory hangs: the failed start left its Raft store open")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
