package rpc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/rpc"
)

// servedClusterService starts three in-process servers, each serving the
// ClusterService on its gRPC address with a message limit just over one
// chunk, so a restore that sent a bigger message would fail.
func servedClusterService(t *testing.T) *clustertest.InProcCluster {
	t.Helper()
	// Slow Raft timings: Raft's in-memory transport has no fast path for
	// heartbeats, so a follower busy installing the restored snapshot
	// stops answering them, and the short test timings would cost the
	// leader its lease on a loaded machine.
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 3, TuneRaft: func(conf *raft.Config) {
		conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 3*time.Second, 3*time.Second, 3*time.Second
	}})
	for _, s := range c.Servers {
		ln, err := net.Listen("tcp", s.GRPCAddr)
		if err != nil {
			t.Fatal(err)
		}
		g := grpc.NewServer(grpc.MaxRecvMsgSize(cluster.ArchiveChunkBytes + 1<<10))
		rpc.RegisterClusterService(g, s.Server, dispatch.NewHeartbeats(time.Now))
		go func() { _ = g.Serve(ln) }()
		t.Cleanup(g.Stop)
	}
	return c
}

// bigArchive is an archive of runs with long params (several MiB: many
// chunks) that carries a signing key of its own, as old archives did.
func bigArchive(t *testing.T, key []byte) ([]byte, int) {
	t.Helper()
	f, err := fsm.New()
	if err != nil {
		t.Fatal(err)
	}
	var runs []*daguhav1.Run
	// Few runs, so the restore is quick enough for the in-process
	// cluster's short leader lease.
	for i := range 25 {
		runs = append(runs, &daguhav1.Run{Id: fmt.Sprintf("restored-%d", i), DagName: "d", Params: strings.Repeat("p", 200<<10)})
	}
	enqueue, err := fsm.Encode(fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: runs})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := fsm.Encode(fsm.SetClusterMetaType, &daguhav1.SetClusterMetaCommand{Meta: &daguhav1.ClusterMeta{SigningKey: key}})
	if err != nil {
		t.Fatal(err)
	}
	f.Apply(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: enqueue})
	f.Apply(&raft.Log{Index: 2, Term: 1, Type: raft.LogCommand, Data: meta})
	var buf bytes.Buffer
	if err := fsm.WriteArchive(&buf, fsm.ArchiveHeader{Index: 2, Term: 1, Node: "old"}, f.State(), 2, fsm.WithSecrets); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), len(runs)
}

// A restore forwarded to the leader streams in chunks no larger than
// cluster.ArchiveChunkBytes; the leader keeps its own signing key, and the
// followers, brought up to date by Raft's snapshot, hold that key too, so
// any of them that leads next verifies the leases already out.
func TestForwardedRestoreStreamsInChunksAndKeepsTheKey(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	c := servedClusterService(t)
	leader := c.Leader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	clusterKey := []byte("the-key-this-cluster-made-up-itself")
	if _, _, err := leader.Server.Apply(ctx, fsm.SetClusterMetaType, &daguhav1.SetClusterMetaCommand{Meta: &daguhav1.ClusterMeta{SigningKey: clusterKey}}); err != nil {
		t.Fatal(err)
	}
	signer, err := dispatch.NewSigner(clusterKey)
	if err != nil {
		t.Fatal(err)
	}
	lease, err := signer.Sign(dispatch.LeaseClaims{RunID: "restored-7", Attempt: 1, WorkerID: "w1", FencingToken: 9})
	if err != nil {
		t.Fatal(err)
	}

	archive, runs := bigArchive(t, []byte("an-old-archives-own-signing-key"))
	if len(archive) < 4*cluster.ArchiveChunkBytes {
		t.Fatalf("the archive is %d bytes: too small to need several chunks", len(archive))
	}
	peers := rpc.NewPeerClient()
	defer peers.Close()

	follower := c.Followers()[0]
	err = peers.RestoreSnapshot(ctx, follower.GRPCAddr, bytes.NewReader(archive))
	if retryable := new(cluster.RetryableError); !errors.As(err, &retryable) || !strings.Contains(err.Error(), "not the leader") {
		t.Fatalf("a restore sent to a follower: %v; want a retryable not-the-leader error", err)
	}
	err = peers.RestoreSnapshot(ctx, leader.GRPCAddr, bytes.NewReader(archive[:len(archive)-1]))
	if command := new(cluster.CommandError); !errors.As(err, &command) || !strings.Contains(err.Error(), "truncated or altered") {
		t.Fatalf("a truncated archive: %v; want it refused as truncated or altered", err)
	}
	if err := peers.RestoreSnapshot(ctx, leader.GRPCAddr, bytes.NewReader(archive)); err != nil {
		t.Fatalf("restore: %v", err)
	}

	clustertest.WaitFor(t, 30*time.Second, "every server to hold the restored runs and the cluster's own key", func() (bool, string) {
		for _, s := range c.Servers {
			state := s.Server.FSM().State()
			count := 0
			_ = state.EachRun(func(*daguhav1.Run) bool { count++; return true })
			if count != runs {
				return false, fmt.Sprintf("%s has %d runs", s.Name, count)
			}
			key := state.ClusterMeta().GetSigningKey()
			if !bytes.Equal(key, clusterKey) {
				return false, fmt.Sprintf("%s has signing key %q", s.Name, key)
			}
		}
		return true, ""
	})
	for _, s := range c.Servers {
		theirs, err := dispatch.NewSigner(s.Server.FSM().State().ClusterMeta().GetSigningKey())
		if err != nil {
			t.Fatal(err)
		}
		if claims, err := theirs.Verify(lease); err != nil || claims.RunID != "restored-7" {
			t.Fatalf("%s cannot verify a lease signed before the restore: %v", s.Name, err)
		}
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("restores left %d files behind, the first %s", len(entries), entries[0].Name())
	}
}
