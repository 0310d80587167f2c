package main

// Process-level tests of operating a cluster: rolling restarts, operator
// commands, snapshots.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/client"
	"github.com/daguha/daguha/ops/wire"
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

// Acceptance 5 of the operations issue (operator commands): list-peers
// shows every server with its state and last index; transfer-leadership
// moves leadership where asked; remove-peer takes a dead server out.
func TestOperatorRaftCommands(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents))
	bin := clustertest.BuildBinary(t)
	follower := followerOf(c, leader)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append(args, "-address="+follower.HTTPAddr())...).CombinedOutput()
		if err != nil {
			t.Fatalf("daguha %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := run("operator", "raft", "list-peers")
	for _, a := range c.Agents {
		if !strings.Contains(out, a.Name) {
			t.Fatalf("list-peers does not show %s:\n%s", a.Name, out)
		}
	}
	if !strings.Contains(out, "leader") || strings.Contains(out, "unreachable") || strings.Count(out, "true") != 3 {
		t.Fatalf("list-peers:\n%s", out)
	}
	// Each server's version, schema and protocol, from gossip: one version,
	// so no warning.
	var health wire.SharedHealth
	if code, err := leader.GetJSON("/api/v2/health", &health); err != nil || code != 200 {
		t.Fatalf("health: HTTP %d %v", code, err)
	}
	if !strings.Contains(out, "VERSION") || strings.Count(strings.Join(strings.Fields(out), " "), health.Version+" 1 1") != 3 ||
		strings.Contains(out, "different versions") {
		t.Fatalf("list-peers does not show every server at %s, schema 1, protocol 1:\n%s", health.Version, out)
	}

	leader = c.WaitLeader(t, 30*time.Second)
	var target *clustertest.Agent
	for _, a := range c.Agents {
		if a != leader {
			target = a
		}
	}
	run("operator", "raft", "transfer-leadership", "-id="+target.Name)
	clustertest.WaitFor(t, 30*time.Second, "leadership to move to "+target.Name, func() (bool, string) {
		h, err := target.Health()
		return err == nil && h.Role == "leader", fmt.Sprintf("%+v %v", h, err)
	})
	follower = followerOf(c, target)

	leader = target
	var victim *clustertest.Agent
	for _, a := range c.Agents {
		if a != leader && a != follower {
			victim = a
		}
	}
	victim.Kill()
	run("operator", "raft", "remove-peer", "-id="+victim.Name)
	var rest []string
	for _, a := range c.Running() {
		rest = append(rest, a.Name)
	}
	waitVoters(t, c, rest)
	bad, err := exec.Command(bin, "operator", "raft", "remove-peer", "-id=no-such-server", "-address="+follower.HTTPAddr()).CombinedOutput()
	if err == nil || !strings.Contains(string(bad), "no-such-server") {
		t.Fatalf("removing an unknown server: %v\n%s", err, bad)
	}
	bad, err = exec.Command(bin, "operator", "raft", "remove-peer", "-id="+leader.Name, "-address="+follower.HTTPAddr()).CombinedOutput()
	if err == nil || !strings.Contains(string(bad), "transfer leadership first") {
		t.Fatalf("removing the leader: %v\n%s", err, bad)
	}
}

// Acceptance 4 of the operations issue: snapshot save, wipe every server,
// snapshot restore gives back every run and worker; a truncated or
// altered file is refused, by the command and by the server.
func TestSnapshotSaveWipeRestore(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	worker := startProcess(t, c.NewWorker("snap-worker", "-labels=gpu=true"))
	var ids []string
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("snap-%d", i)
		selector := map[string]string(nil)
		if i%4 == 0 {
			selector = map[string]string{"zone": "nowhere"} // stays queued
		}
		mustEnqueue(t, c.Agents[i%3], id, selector, "echo kept")
		ids = append(ids, id)
	}
	var done []string
	for i, id := range ids {
		if i%4 != 0 {
			done = append(done, id)
		}
	}
	waitFinished(t, c, done, "succeeded", 60*time.Second)
	worker.Stop()
	before, err := listRuns(c)
	if err != nil {
		t.Fatal(err)
	}

	bin := clustertest.BuildBinary(t)
	file := filepath.Join(t.TempDir(), "cluster.snap")
	address := "-address=" + followerOf(c, leader).HTTPAddr()
	if out, err := exec.Command(bin, "snapshot", "save", address, file).CombinedOutput(); err != nil {
		t.Fatalf("snapshot save: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "snapshot", "inspect", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "runs      20") || !strings.Contains(string(out), "workers   1") {
		t.Fatalf("snapshot inspect: %v\n%s", err, out)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	truncated, altered := filepath.Join(t.TempDir(), "truncated.snap"), filepath.Join(t.TempDir(), "altered.snap")
	os.WriteFile(truncated, data[:len(data)/2], 0o600)
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/2] ^= 0x20
	os.WriteFile(altered, flipped, 0o600)
	for _, bad := range []string{truncated, altered} {
		out, err := exec.Command(bin, "snapshot", "restore", address, bad).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "truncated or altered") {
			t.Fatalf("restore of %s: %v\n%s", filepath.Base(bad), err, out)
		}
		_, err = leader.API().RestoreSnapshot(context.Background(), bytes.NewReader(mustRead(t, bad)))
		var refused *client.Error
		if !errors.As(err, &refused) || refused.Status != 409 || !strings.Contains(refused.Message, "truncated or altered") {
			t.Fatalf("the server took %s: %v", filepath.Base(bad), err)
		}
	}

	// Wipe: every server loses its data directory and a new cluster forms.
	for _, a := range c.Agents {
		a.Kill()
		if err := os.RemoveAll(a.DataDir); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range c.Agents {
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
	}
	leader = c.WaitLeader(t, 30*time.Second)
	if runs, err := listRuns(c); err != nil || len(runs) != 0 {
		t.Fatalf("the wiped cluster still has %d runs (%v)", len(runs), err)
	}
	address = "-address=" + followerOf(c, leader).HTTPAddr()
	if out, err := exec.Command(bin, "snapshot", "restore", address, file).CombinedOutput(); err != nil {
		t.Fatalf("snapshot restore: %v\n%s", err, out)
	}
	clustertest.WaitFor(t, 30*time.Second, "every server to have every run back", func() (bool, string) {
		for _, a := range c.Agents {
			for _, id := range ids {
				run, err := getRunStale(a, id)
				if err != nil || run.Status != before[id].Status || run.WorkerID != before[id].WorkerID {
					return false, fmt.Sprintf("%s: %s is %+v (%v), was %+v", a.Name, id, run, err, before[id])
				}
			}
		}
		return true, ""
	})
	for _, a := range c.Agents {
		workers, err := workersOf(a, true)
		if err != nil || len(workers) != 1 {
			t.Fatalf("%s after the restore: workers %v %v", a.Name, workers, err)
		}
		if _, ok := workers["snap-worker"]; !ok {
			t.Fatalf("%s after the restore: the worker record is missing: %v", a.Name, workers)
		}
	}
}

func getRunStale(a *clustertest.Agent, id string) (wire.Run, error) {
	var run wire.Run
	code, err := a.GetJSON("/api/v2/dag-runs/"+id+"?stale", &run)
	if err == nil && code != 200 {
		err = fmt.Errorf("HTTP %d", code)
	}
	return run, err
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Acceptance 3 of the operations issue: the seed's command lines
// (start-all, coordinator, and the three worker examples) work against
// each other on loopback. The coordinator host of the worker examples is
// 127.0.0.1 here, and the cluster flags keep Raft and gossip on loopback.
func TestSeedCommandLines(t *testing.T) {
	bin := clustertest.BuildBinary(t)
	workerLines := map[string][]string{
		"gpu-worker":    {"--worker.labels", "gpu=true,cuda=11.8,memory=64G"},
		"cpu-worker":    {"--worker.labels", "cpu-arch=amd64,cpu-cores=32,region=us-east-1"},
		"region-worker": {"--worker.labels", "region=eu-west-1,compliance=gdpr"},
	}
	for _, server := range []string{"start-all", "coordinator"} {
		t.Run(server, func(t *testing.T) {
			dir := t.TempDir()
			ports := clustertest.FreePorts(t, 4)
			var args []string
			if server == "start-all" {
				args = []string{"start-all", "--host=0.0.0.0", fmt.Sprintf("--port=%d", ports[0]), fmt.Sprintf("--coordinator.port=%d", ports[1])}
			} else {
				args = []string{"coordinator", "--coordinator.host=0.0.0.0", fmt.Sprintf("--coordinator.port=%d", ports[1]), fmt.Sprintf("--port=%d", ports[0])}
			}
			args = append(args, "-bind=127.0.0.1", fmt.Sprintf("-raft-port=%d", ports[2]), fmt.Sprintf("-gossip-port=%d", ports[3]))
			p := clustertest.NewProcess(t, server, dir, bin, args...)
			p.Env = []string{"DAGU_HOME=" + dir}
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			a := &clustertest.Agent{Process: p, Name: server, HTTPPort: ports[0], GRPCPort: ports[1]}
			clustertest.WaitFor(t, 30*time.Second, server+" to lead its own cluster", func() (bool, string) {
				h, err := a.Health()
				return err == nil && h.Role == "leader", fmt.Sprintf("%+v %v", h, err)
			})
			for id, labels := range workerLines {
				w := clustertest.NewProcess(t, id, dir, bin, append([]string{"worker"}, append(labels,
					"--worker.coordinator-host=127.0.0.1", fmt.Sprintf("--worker.coordinator-port=%d", ports[1]), "--worker.id="+id)...)...)
				// Only the seed's labels: a fingerprinted cpu-cores=32 on
				// a 32-core host would route cpu-run anywhere.
				w.Env = []string{clustertest.NoAutoLabels}
				startProcess(t, w)
			}
			routes := map[string]map[string]string{
				"gpu-run":    {"gpu": "true"},
				"cpu-run":    {"cpu-cores": "32"},
				"region-run": {"region": "eu-west-1"},
			}
			want := map[string]string{"gpu-run": "gpu-worker", "cpu-run": "cpu-worker", "region-run": "region-worker"}
			for id, selector := range routes {
				mustEnqueue(t, a, id, selector, "echo "+id)
			}
			clustertest.WaitFor(t, 60*time.Second, "each run on its worker", func() (bool, string) {
				for id, worker := range want {
					run, err := getRun(a, id)
					if err != nil || run.Status != "succeeded" || run.WorkerID != worker {
						return false, fmt.Sprintf("%s: %+v %v", id, run, err)
					}
				}
				return true, ""
			})
			if _, err := os.Stat(filepath.Join(dir, "data", "raft", "raft.db")); err != nil {
				t.Fatalf("%s did not keep its state under $DAGU_HOME/data: %v", server, err)
			}
		})
	}
}

// Autopilot-style clean-up: a dead server is kept while no replacement
// exists (removing it would leave fewer live voters than the cluster is
// meant to have), and removed once a new server has joined.
func TestDeadServerIsReplaced(t *testing.T) {
	c := clustertest.NewCluster(t, clustertest.ClusterOptions{Servers: 4, BootstrapExpect: 3, ExtraArgs: []string{"-dead-server-timeout=2s"}})
	for _, a := range c.Agents[:3] {
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents[:3]))
	var dead *clustertest.Agent
	for _, a := range c.Agents[:3] {
		if a != leader {
			dead = a
		}
	}
	dead.Kill()
	killed := time.Now()
	// Watch well past the timeout: with no replacement the dead server stays.
	for time.Since(killed) < 6*time.Second {
		voters, err := votersOf(leader)
		if err != nil {
			t.Fatal(err)
		}
		if len(voters) != 3 {
			t.Fatalf("with no replacement the configuration changed to %v", voters)
		}
		time.Sleep(200 * time.Millisecond) // sampling interval of the observation
	}
	if err := c.Agents[3].Start(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, a := range c.Agents {
		if a != dead {
			want = append(want, a.Name)
		}
	}
	waitVoters(t, c, want)
	if !strings.Contains(leader.Tail(300), "removing dead server") {
		t.Fatal("the leader did not log the clean-up")
	}
}
