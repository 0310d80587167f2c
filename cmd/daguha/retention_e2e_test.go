package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

// Ended runs leave every server's state once the run retention has passed
// (with -run-retention=2s, the leader looks every second); runs still
// queued stay whatever their age; the freed run id is a new run when
// enqueued again; and a negative retention is refused by name.
func TestEndedRunsArePrunedAfterTheRunRetention(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ExtraArgs: []string{"-run-retention=2s"}})
	leader := c.WaitLeader(t, 30*time.Second)
	follower := followerOf(c, leader)
	startProcess(t, c.NewWorker("pruned-worker"))
	mustEnqueue(t, follower, "short-lived", nil, "true")
	mustEnqueue(t, follower, "stays-queued", map[string]string{"nobody": "here"}, "true")
	waitFinished(t, c, []string{"short-lived"}, "succeeded", 30*time.Second)
	for _, a := range c.Agents {
		clustertest.WaitFor(t, 30*time.Second, "the ended run to leave "+a.Name+"'s state", func() (bool, string) {
			code, err := a.GetJSON("/api/v2/dag-runs/short-lived?stale", nil)
			return err == nil && code == 404, fmt.Sprintf("HTTP %d %v", code, err)
		})
	}
	var pruned string
	clustertest.WaitFor(t, 10*time.Second, "the leader to count the pruned run", func() (bool, string) {
		body, err := metricsText(leader)
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "daguha_runs_pruned_total ") {
				pruned = line
			}
		}
		return err == nil && pruned == "daguha_runs_pruned_total 1", fmt.Sprintf("%q %v", pruned, err)
	})
	for _, a := range c.Agents {
		var run wire.Run
		if code, err := a.GetJSON("/api/v2/dag-runs/stays-queued?stale", &run); err != nil || code != 200 || run.Status != "queued" {
			t.Fatalf("%s: the queued run after the retention: HTTP %d %+v %v", a.Name, code, run, err)
		}
	}
	var resp wire.Enqueued
	if code, err := leader.PostJSON("/api/v2/dag-runs", inlineRun("short-lived", nil, "true"), &resp); err != nil || code != 201 || !resp.Created {
		t.Fatalf("enqueue the pruned id again: HTTP %d created=%v %v; want a new run", code, resp.Created, err)
	}

	bad := clustertest.NewProcess(t, "bad-retention", t.TempDir(), clustertest.BuildBinary(t), "agent", "-dev", "-run-retention=-1h",
		"-http-port=0", "-grpc-port=0", "-raft-port=0", "-gossip-port=0")
	if err := bad.Start(); err != nil {
		t.Fatal(err)
	}
	<-bad.Exited()
	if code := bad.ExitCode(); code == 0 || !strings.Contains(bad.Tail(5), "-run-retention=-1h0m0s") {
		t.Fatalf("a negative retention: exit %d, log:\n%s", code, bad.Tail(5))
	}
}

// metricsText is a server's /metrics page.
func metricsText(a *clustertest.Agent) (string, error) {
	resp, err := http.Get(a.HTTPAddr() + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return string(data), err
}
