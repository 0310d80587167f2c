package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// The leader's version check with real servers: once one server
// advertises state schema 0 (as a server built before 0.1.0 does), the
// leader refuses retry and dequeue (schema 1) without writing them, from
// its own API and when a follower forwards them, naming that server;
// schema-0 commands still go through; when the server advertises schema 1
// again, retry is written.
func TestLeaderRefusesCommandsAServerCannotApply(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 3})
	leader := c.Leader(10 * time.Second)
	var old, other *clustertest.InProcServer
	for _, s := range c.Followers() {
		if old == nil {
			old = s
		} else {
			other = s
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := enqueue(ctx, leader.Server, "run-1"); err != nil {
		t.Fatal(err)
	}
	waitPeerSchema(t, leader.Server, old.Name, fsm.SchemaVersion)

	// Every server reads schema 1: retry reaches the FSM, which refuses
	// a run that has not finished (a CommandError, not the version check).
	_, _, err := leader.Server.Apply(ctx, fsm.RetryRunsType, retryOf("run-1"))
	var upgrade *cluster.UpgradeError
	if errors.As(err, &upgrade) {
		t.Fatalf("retry refused by the version check while every server reads schema 1: %v", err)
	}

	if err := old.Server.AdvertiseVersionsForTest("", 0, 0); err != nil {
		t.Fatal(err)
	}
	waitPeerSchema(t, leader.Server, old.Name, 0)
	want := fmt.Sprintf("retry needs every server at state schema 1 or later (daguha 0.1.0); %s runs daguha before 0.1.0 (state schema 0): finish upgrading the servers first", old.Name)
	for _, via := range []*clustertest.InProcServer{leader, other, old} {
		before := leader.Server.Raft().LastIndex()
		_, _, err := via.Server.Apply(ctx, fsm.RetryRunsType, retryOf("run-1"))
		if !errors.As(err, &upgrade) || err.Error() != want {
			t.Fatalf("retry through %s: got %T %v\nwant UpgradeError %q", via.Name, err, err, want)
		}
		_, _, err = via.Server.Apply(ctx, fsm.DequeueRunsType, &daguhav1.DequeueRunsCommand{RunIds: []string{"run-1"}})
		if !errors.As(err, &upgrade) {
			t.Fatalf("dequeue through %s: got %T %v, want an UpgradeError", via.Name, err, err)
		}
		if after := leader.Server.Raft().LastIndex(); after != before {
			t.Fatalf("refused commands through %s moved the leader's log from %d to %d", via.Name, before, after)
		}
	}
	// Commands every server reads are not held up.
	if err := enqueue(ctx, other.Server, "run-2"); err != nil {
		t.Fatalf("enqueue (schema 0) with an old server: %v", err)
	}

	if err := old.Server.AdvertiseVersionsForTest("0.1.0", 1, 1); err != nil {
		t.Fatal(err)
	}
	waitPeerSchema(t, leader.Server, old.Name, 1)
	if _, _, err := other.Server.Apply(ctx, fsm.DequeueRunsType, &daguhav1.DequeueRunsCommand{RunIds: []string{"run-2"}}); err != nil {
		t.Fatalf("dequeue once every server reads schema 1: %v", err)
	}
}

func retryOf(id string) *daguhav1.RetryRunsCommand {
	return &daguhav1.RetryRunsCommand{Retries: []*daguhav1.RetryRun{{RunId: id}}}
}

// waitPeerSchema waits until s's peers show server name at schema.
func waitPeerSchema(t *testing.T, s *cluster.Server, name string, schema int) {
	t.Helper()
	clustertest.WaitFor(t, 10*time.Second, fmt.Sprintf("%s to be seen at state schema %d", name, schema), func() (bool, string) {
		peers, err := s.Peers()
		if err != nil {
			return false, err.Error()
		}
		for _, p := range peers {
			if p.ID == name {
				return p.StateSchema == schema && p.Version != cluster.UnknownVersion, fmt.Sprintf("%+v", p)
			}
		}
		return false, fmt.Sprintf("%s not in %+v", name, peers)
	})
}
