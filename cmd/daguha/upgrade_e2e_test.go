package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

// The leader's version check across real processes: with one server of
// three killed, what it runs is unknown, so dequeue (state schema 1) sent
// to the other follower is forwarded to the leader over gRPC, refused
// there without being written, and comes back as 409 with the leader's
// message (on Dagu's route too), which daguha dequeue prints; the run stays queued. Once the
// server is back, the same dequeue goes through.
func TestDequeueRefusedWhileAServerIsDownAcceptedOnceBack(t *testing.T) {
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
	want := fmt.Sprintf("dequeue needs every server at state schema 1 or later (daguha 0.1.0); %s is failed in gossip, so what it runs is unknown "+
		"(it last ran daguha %s, state schema 1): finish upgrading the servers first", victim.Name, health.Version)
	var refusal map[string]any
	code, err := follower.PostJSON("/api/v2/dag-runs/q-1/dequeue", nil, &refusal)
	if err != nil || code != 409 || refusal["error"] != want {
		t.Fatalf("dequeue through %s: HTTP %d %v %v\nwant 409 with %q", follower.Name, code, err, refusal, want)
	}
	// Dagu's route turns a run in the wrong status into a 400: the
	// refusal must arrive from the leader marked as what it is, not as
	// any refused command, to stay a 409.
	var daguRefusal map[string]any
	code, err = follower.GetJSON("/api/v1/dag-runs/e2e/q-1/dequeue", &daguRefusal)
	if err != nil || code != 409 || daguRefusal["message"] != want || daguRefusal["code"] != "bad_request" {
		t.Fatalf("Dagu's dequeue through %s: HTTP %d %v %v\nwant 409 with %q", follower.Name, code, err, daguRefusal, want)
	}
	_, stderr, exit := runCLI(t, "dequeue", "--run-id=q-1", "-address="+follower.HTTPAddr())
	if exit == 0 || !strings.Contains(stderr, want) {
		t.Fatalf("daguha dequeue: exit %d, stderr %q; want the refusal", exit, stderr)
	}
	var run wire.Run
	if code, err := leader.GetJSON("/api/v2/dag-runs/q-1", &run); err != nil || code != 200 || run.Status != "queued" {
		t.Fatalf("q-1 after the refusals: HTTP %d %v %+v, want it queued", code, err, run)
	}

	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 60*time.Second, "dequeue to go through once "+victim.Name+" is back", func() (bool, string) {
		var out map[string]any
		code, err := follower.PostJSON("/api/v2/dag-runs/q-1/dequeue", nil, &out)
		return err == nil && code == 200, fmt.Sprintf("HTTP %d %v %v", code, err, out)
	})
}
