package main

// Process-level tests of operating a cluster: rolling restarts, operator
// commands, snapshots.

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
)

// Acceptance 6 of the operations issue: restart each of three servers in
// turn (SIGTERM, start again on the same data directory) while runs keep
// coming; every run finishes exactly once.
func TestRollingRestartUnderRuns(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents))
	for i := 0; i < 2; i++ {
		startProcess(t, c.NewWorker(fmt.Sprintf("roller-%d", i), "-max-active-runs=8"))
	}
	var (
		mu  sync.Mutex
		ids []string
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 1000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("rolling-%d", i)
			for attempt := 0; attempt < 3; attempt++ {
				target := c.Agents[(i+attempt)%len(c.Agents)]
				var resp struct{}
				code, err := target.PostJSONTimeout("/api/v2/dag-runs", inlineRun(id, nil, "sleep 0.2"), &resp, 30*time.Second)
				if err == nil && (code == 201 || code == 200) {
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
					break
				}
			}
			time.Sleep(50 * time.Millisecond) // pace of the client
		}
	}()
	for _, a := range c.Agents {
		a.Stop()
		if code := a.ExitCode(); code != 0 {
			t.Fatalf("%s exited %d on SIGTERM", a.Name, code)
		}
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		c.WaitLeader(t, 30*time.Second)
		waitVoters(t, c, names(c.Agents))
	}
	close(stop)
	<-done
	mu.Lock()
	enqueued := append([]string(nil), ids...)
	mu.Unlock()
	if len(enqueued) < 30 {
		t.Fatalf("only %d runs were enqueued during the restarts", len(enqueued))
	}
	runs := waitFinished(t, c, enqueued, "succeeded", 120*time.Second)
	for _, id := range enqueued {
		succeeded := 0
		for _, a := range runs[id].Attempts {
			if a.Outcome == "succeeded" {
				succeeded++
			}
		}
		if succeeded != 1 {
			t.Errorf("run %s: %d succeeded attempts (%+v)", id, succeeded, runs[id].Attempts)
		}
	}
	t.Logf("%d runs enqueued during the rolling restart of three servers, each finished once", len(enqueued))
}
