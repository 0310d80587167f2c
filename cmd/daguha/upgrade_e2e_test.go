package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

// The leader's version check across real processes, when nothing is
// mixed: every server shows the others' versions from gossip, and with one
// server of three killed (it last advertised this release) dequeue (state
// schema 1) sent to the other follower is forwarded to the leader and
// taken: a server down counts by what it last ran, so an outage does not
// stop retries and dequeues. The refusal while versions are really mixed,
// through a follower, on Dagu's route and from the CLI, is in ops/chaos's
// TestUpgradeFromPreviousRelease, against servers of the previous release.
func TestDequeueGoesOnWhileAServerIsDown(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ExtraArgs: []string{"-forward-hold=10s"}})
	leader := c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents))
	var follower, victim *clustertest.Agent
	for _, a := range c.Agents {
		switch {
		case a == leader:
		case follower == nil:
			follower = a
		default:
			victim = a
		}
	}
	if code, err := enqueue(follower, "q-1"); err != nil || code != 201 {
		t.Fatalf("enqueue: HTTP %d %v", code, err)
	}
	var health wire.SharedHealth
	if code, err := victim.GetJSON("/api/v2/health", &health); err != nil || code != 200 {
		t.Fatalf("health of %s: HTTP %d %v", victim.Name, code, err)
	}
	// Every server shows the others' versions from gossip.
	clustertest.WaitFor(t, 30*time.Second, "the peers' versions", func() (bool, string) {
		var peers wire.Peers
		if code, err := follower.GetJSON("/api/v2/cluster/peers", &peers); err != nil || code != 200 {
			return false, fmt.Sprintf("HTTP %d %v", code, err)
		}
		for _, p := range peers.Peers {
			if p.Version != health.Version || p.StateSchema != 1 || p.WireProtocol != 1 {
				return false, fmt.Sprintf("%+v", peers.Peers)
			}
		}
		return len(peers.Peers) == 3, fmt.Sprintf("%+v", peers.Peers)
	})

	victim.Kill()
	clustertest.WaitFor(t, 30*time.Second, "the leader's gossip to see "+victim.Name+" failed", func() (bool, string) {
		var members wire.Members
		if code, err := leader.GetJSON("/api/v2/cluster/members", &members); err != nil || code != 200 {
			return false, fmt.Sprintf("HTTP %d %v", code, err)
		}
		for _, m := range members.Members {
			if m.Name == victim.Name {
				return m.Status == cluster.MemberFailed, m.Status
			}
		}
		return false, "not a member"
	})
	var out wire.Dequeued
	if code, err := follower.PostJSON("/api/v2/dag-runs/q-1/dequeue", nil, &out); err != nil || code != 200 {
		t.Fatalf("dequeue through %s while %s is down: HTTP %d %v %+v; want 200", follower.Name, victim.Name, code, err, out)
	}
	var run wire.Run
	if code, err := leader.GetJSON("/api/v2/dag-runs/q-1", &run); err != nil || code != 200 || run.Status != "cancelled" {
		t.Fatalf("q-1 after the dequeue: HTTP %d %v %+v, want it cancelled", code, err, run)
	}
	// The server comes back and applies the entry it missed.
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 60*time.Second, victim.Name+" to apply the dequeue it missed", func() (bool, string) {
		var run wire.Run
		code, err := victim.GetJSON("/api/v2/dag-runs/q-1?stale", &run)
		return err == nil && code == 200 && run.Status == "cancelled", fmt.Sprintf("HTTP %d %v %s", code, err, run.Status)
	})
}
