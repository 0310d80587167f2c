package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

// Dagu's named queue across the cluster: two DAGs name queue "batch",
// which the servers' -queues setting limits to one run at once. With a
// worker that has four free slots, the second run waits in its queue (and
// says why) while the first runs, also after the leader that granted the
// first is killed, and runs once the first ends.
func TestANamedQueueHoldsItsRunsAcrossTheClusterAndAFailover(t *testing.T) {
	t.Parallel() // waits more than it computes: see TestMain
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ExtraArgs: []string{"-queues=batch=1"}})
	leader := c.WaitLeader(t, 30*time.Second)
	startProcess(t, c.NewWorker("queue-worker", "-max-active-runs=4"))
	gate := filepath.Join(t.TempDir(), "open")
	file := func(name string) string {
		return fmt.Sprintf("name: %s\nqueue: batch\nmaxActiveRuns: 4\nsteps:\n  - name: wait\n    command: while [ ! -e %s ]; do sleep 0.1; done\n", name, gate)
	}
	for _, r := range []struct{ id, dag string }{{"q1", "load-a"}, {"q2", "load-b"}} {
		var resp wire.Enqueued
		if code, err := leader.PostJSONTimeout("/api/v2/dag-runs", wire.EnqueueRequest{DagRunID: r.id, Yaml: file(r.dag), File: r.dag + ".yaml"}, &resp, 30*time.Second); err != nil || code != 201 {
			t.Fatalf("enqueue %s: HTTP %d %v", r.id, code, err)
		}
	}
	clustertest.WaitFor(t, 30*time.Second, "q1 to run", func() (bool, string) {
		run, err := getRun(leader, "q1")
		return err == nil && run.Status == "running", fmt.Sprintf("%s %v", run.Status, err)
	})
	held := func(a *clustertest.Agent) {
		t.Helper()
		clustertest.WaitFor(t, 15*time.Second, "q2 to wait for its queue", func() (bool, string) {
			run, err := getRun(a, "q2")
			return err == nil && run.Status == "queued" && strings.Contains(run.Reason, `queue "batch" runs its limit of 1 at once`),
				fmt.Sprintf("%s %q %v", run.Status, run.Reason, err)
		})
	}
	held(leader)

	leader.Kill()
	newLeader := c.WaitLeader(t, 30*time.Second)
	// The new leader counts q1, still running on the worker, against the
	// queue: q2 stays queued for as long as the worker's slots would
	// have let it start many times over.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if run, err := getRun(newLeader, "q2"); err == nil && run.Status != "queued" {
			t.Fatalf("q2 is %s while q1 runs: the queue's limit did not hold through the failover", run.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	held(newLeader)

	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	runs := waitFinished(t, c, []string{"q1", "q2"}, "succeeded", 60*time.Second)
	firstEnded, err1 := time.Parse(time.RFC3339Nano, runs["q1"].FinishedAt)
	secondStarted, err2 := time.Parse(time.RFC3339Nano, runs["q2"].StartedAt)
	if err1 != nil || err2 != nil {
		t.Fatalf("times: %v %v", err1, err2)
	}
	if secondStarted.Before(firstEnded) {
		t.Fatalf("q2 started at %s, before q1 ended at %s", secondStarted, firstEnded)
	}
}
