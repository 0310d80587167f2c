package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

// Five servers tolerate two lost, as Raft promises: with the leader and a
// follower killed, the other three elect a leader and dispatch goes on;
// with a third gone there is no majority, and an enqueue is refused with
// an error that says so, not acknowledged; one server back makes three
// again, and the same enqueue retried is one run that finishes. Every
// run is on every server once all five are back.
func TestFiveServersLoseTwoAndKeepDispatching(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 5})
	leader := c.WaitLeader(t, 60*time.Second)
	waitVoters(t, c, names(c.Agents))
	startProcess(t, c.NewWorker("five-worker"))

	mustEnqueue(t, leader, "five-0", nil, "echo five")
	waitFinished(t, c, []string{"five-0"}, "succeeded", 60*time.Second)

	var follower *clustertest.Agent
	for _, a := range c.Agents {
		if a != leader {
			follower = a
			break
		}
	}
	leader.Kill()
	follower.Kill()
	survivor := c.WaitLeader(t, 60*time.Second)
	if survivor == leader || survivor == follower {
		t.Fatalf("a killed server %s reports leader", survivor.Name)
	}
	mustEnqueue(t, survivor, "five-1", nil, "echo three of five")
	waitFinished(t, c, []string{"five-1"}, "succeeded", 60*time.Second)

	// A third server gone: two of five, no majority.
	survivor.Kill()
	running := c.Running()
	if len(running) != 2 {
		t.Fatalf("%d servers running, want 2", len(running))
	}
	var resp map[string]any
	code, err := running[0].PostJSONTimeout("/api/v2/dag-runs", inlineRun("five-2", nil, "echo back to three"), &resp, 60*time.Second)
	if err != nil {
		t.Fatalf("enqueue without a majority: %v", err)
	}
	if code == 201 || code == 200 {
		t.Fatalf("an enqueue was acknowledged by two of five servers: HTTP %d %v", code, resp)
	}
	if msg := fmt.Sprint(resp["error"]); code != 503 || !strings.Contains(msg, "leader") {
		t.Fatalf("enqueue without a majority: HTTP %d %q; want 503 naming the missing leader", code, msg)
	}
	t.Logf("two of five servers answer an enqueue with HTTP %d: %s", code, resp["error"])

	if err := follower.Start(); err != nil {
		t.Fatal(err)
	}
	c.WaitLeader(t, 60*time.Second)
	mustEnqueue(t, running[1], "five-2", nil, "echo back to three")
	waitFinished(t, c, []string{"five-0", "five-1", "five-2"}, "succeeded", 60*time.Second)

	for _, a := range []*clustertest.Agent{leader, survivor} {
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
	}
	final := c.WaitLeader(t, 60*time.Second)
	waitVoters(t, c, names(c.Agents))
	waitCaughtUp(t, c, final)
	for _, a := range c.Agents {
		for _, id := range []string{"five-0", "five-1", "five-2"} {
			var run wire.Run
			if code, err := a.GetJSON("/api/v2/dag-runs/"+id+"?stale", &run); err != nil || code != 200 || run.Status != "succeeded" {
				t.Errorf("%s on %s: HTTP %d %q %v", id, a.Name, code, run.Status, err)
			}
		}
	}
}
