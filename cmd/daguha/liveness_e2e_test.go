package main

// Process-level tests of worker liveness and the /api/v2/workers API.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/buildinfo"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/client"
	"github.com/daguha/daguha/ops/wire"
)

// workersOf reads a server's own view (stale=true) or the leader's.
func workersOf(a *clustertest.Agent, own bool) (map[string]wire.Worker, error) {
	path := "/api/v2/workers"
	if own {
		path += "?stale=true"
	}
	var body wire.Workers
	code, err := a.GetJSON(path, &body)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("%s: HTTP %d", path, code)
	}
	out := map[string]wire.Worker{}
	for _, w := range body.Workers {
		out[w.ID] = w
	}
	return out, nil
}

// livenessArgs make the seed's thresholds short enough for a test:
// warning after 1 s, unhealthy after 2 s, offline after 4 s.
var livenessArgs = []string{"-health-warning=1s", "-health-unhealthy=2s", "-health-offline=4s", "-lease-ttl=60s"}

// Acceptance 2: a paused worker goes HEALTHY -> WARNING -> UNHEALTHY ->
// OFFLINE on every server; its run is taken back when it is declared
// OFFLINE; resumed, it is HEALTHY again and its old lease is refused.
func TestPausedWorkerGoesOfflineAndComesBack(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ExtraArgs: livenessArgs})
	leader := c.WaitLeader(t, 30*time.Second)
	sleepy := startProcess(t, c.NewWorker("sleepy", "-heartbeat-interval=200ms", "-max-active-runs=1"))
	mustEnqueue(t, leader, "sleepy-run", nil, "sleep 6; echo done")
	clustertest.WaitFor(t, 30*time.Second, "the run to start on sleepy, healthy on every server", func() (bool, string) {
		run, err := getRun(leader, "sleepy-run")
		if err != nil || run.Status != "running" {
			return false, fmt.Sprintf("run %+v %v", run, err)
		}
		for _, a := range c.Agents {
			workers, err := workersOf(a, true)
			if err != nil || workers["sleepy"].HealthStatus != "HEALTHY" {
				return false, fmt.Sprintf("%s: %+v %v", a.Name, workers["sleepy"], err)
			}
		}
		return true, ""
	})

	sleepy.Pause()
	seen := map[string][]string{}
	clustertest.WaitFor(t, 30*time.Second, "every server to report sleepy OFFLINE", func() (bool, string) {
		offline := 0
		for _, a := range c.Agents {
			workers, err := workersOf(a, true)
			if err != nil {
				return false, err.Error()
			}
			status := workers["sleepy"].HealthStatus
			if list := seen[a.Name]; len(list) == 0 || list[len(list)-1] != status {
				seen[a.Name] = append(seen[a.Name], status)
			}
			if status == "OFFLINE" {
				offline++
			}
		}
		return offline == len(c.Agents), fmt.Sprintf("%v", seen)
	})
	for name, statuses := range seen {
		if strings.Join(statuses, ">") != "HEALTHY>WARNING>UNHEALTHY>OFFLINE" {
			t.Errorf("%s saw sleepy go %s, want HEALTHY>WARNING>UNHEALTHY>OFFLINE", name, strings.Join(statuses, ">"))
		}
	}
	clustertest.WaitFor(t, 30*time.Second, "the run to be taken back from the offline worker", func() (bool, string) {
		run, err := getRun(leader, "sleepy-run")
		if err != nil || len(run.Attempts) == 0 {
			return false, fmt.Sprintf("%+v %v", run, err)
		}
		return run.Status == "queued" && strings.Contains(run.Attempts[0].Outcome, "worker sleepy is offline"), fmt.Sprintf("%+v", run)
	})
	startProcess(t, c.NewWorker("backup", "-heartbeat-interval=200ms"))
	runs := waitFinished(t, c, []string{"sleepy-run"}, "succeeded", 60*time.Second)
	if runs["sleepy-run"].WorkerID != "backup" || runs["sleepy-run"].Attempt != 2 {
		t.Fatalf("taken-back run: %+v", runs["sleepy-run"])
	}

	sleepy.Resume()
	clustertest.WaitFor(t, 30*time.Second, "sleepy to be HEALTHY again on every server and give its old run up", func() (bool, string) {
		for _, a := range c.Agents {
			workers, err := workersOf(a, true)
			if err != nil || workers["sleepy"].HealthStatus != "HEALTHY" {
				return false, fmt.Sprintf("%s: %+v %v", a.Name, workers["sleepy"], err)
			}
		}
		return strings.Contains(sleepy.Tail(300), "run abandoned: this worker no longer holds it"), "sleepy has not given its old run up yet"
	})
	if run, err := getRun(leader, "sleepy-run"); err != nil || run.WorkerID != "backup" || run.Status != "succeeded" {
		t.Fatalf("the resumed worker's old lease changed the record: %+v %v", run, err)
	}
}

// Acceptance 3: when the leader is killed, the new leader shows no healthy
// worker as WARNING or worse, and a worker already dead still goes OFFLINE
// from its real last heartbeat, not from the election.
func TestFailoverKeepsTheWorkersView(t *testing.T) {
	args := []string{"-health-warning=3s", "-health-unhealthy=6s", "-health-offline=9s", "-lease-ttl=60s"}
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ExtraArgs: args})
	leader := c.WaitLeader(t, 30*time.Second)
	for _, id := range []string{"steady-1", "steady-2"} {
		startProcess(t, c.NewWorker(id, "-heartbeat-interval=200ms"))
	}
	doomed := startProcess(t, c.NewWorker("doomed", "-heartbeat-interval=200ms"))
	clustertest.WaitFor(t, 30*time.Second, "three healthy workers on every server", func() (bool, string) {
		for _, a := range c.Agents {
			workers, err := workersOf(a, true)
			if err != nil {
				return false, err.Error()
			}
			for _, id := range []string{"steady-1", "steady-2", "doomed"} {
				if workers[id].HealthStatus != "HEALTHY" {
					return false, fmt.Sprintf("%s sees %s as %+v", a.Name, id, workers[id])
				}
			}
		}
		return true, ""
	})
	doomed.Kill()
	killedAt := time.Now()
	// Let the dead worker's silence age a little before the failover.
	clustertest.WaitFor(t, 30*time.Second, "the dead worker to be WARNING on the leader", func() (bool, string) {
		workers, err := workersOf(leader, true)
		return err == nil && workers["doomed"].HealthStatus == "WARNING", fmt.Sprintf("%+v %v", workers["doomed"], err)
	})
	leader.Kill()
	var newLeader *clustertest.Agent
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, a := range c.Running() {
			workers, err := workersOf(a, true)
			if err != nil {
				continue
			}
			for _, id := range []string{"steady-1", "steady-2"} {
				if status := workers[id].HealthStatus; status != "HEALTHY" {
					t.Fatalf("%s showed live worker %s as %s during the failover", a.Name, id, status)
				}
			}
			if h, err := a.Health(); err == nil && h.Role == "leader" {
				newLeader = a
			}
		}
		if newLeader != nil {
			workers, err := workersOf(newLeader, true)
			if err == nil && workers["doomed"].HealthStatus == "OFFLINE" {
				last, perr := time.Parse(time.RFC3339Nano, workers["doomed"].LastHeartbeat)
				if perr != nil {
					t.Fatalf("last heartbeat %q: %v", workers["doomed"].LastHeartbeat, perr)
				}
				if last.After(killedAt) {
					t.Fatalf("the new leader dates the dead worker's last heartbeat %s, after it was killed at %s: the failover reset its clock", last, killedAt)
				}
				t.Logf("dead worker OFFLINE on the new leader %s, %s after its kill; its last heartbeat %s before the kill",
					newLeader.Name, time.Since(killedAt).Round(100*time.Millisecond), killedAt.Sub(last).Round(time.Millisecond))
				return
			}
		}
		time.Sleep(100 * time.Millisecond) // sampling interval of the observation
	}
	t.Fatalf("the dead worker was not declared OFFLINE by a new leader (new leader: %v)", newLeader != nil)
}

// decodeExactly decodes JSON into out, failing on unknown fields, and
// checks that every key in want is present in every object at path.
func requireKeys(t *testing.T, what string, object map[string]json.RawMessage, keys ...string) {
	t.Helper()
	var got []string
	for k := range object {
		got = append(got, k)
	}
	sort.Strings(got)
	sort.Strings(keys)
	if strings.Join(got, ",") != strings.Join(keys, ",") {
		t.Fatalf("%s has fields %v, want exactly %v", what, got, keys)
	}
}

// Acceptance 4: /api/v2/workers has exactly the seed's fields and types,
// plus the run hierarchy ids, including a child run's root and parent,
// and each worker's fingerprinted label keys and executors (issue #23).
func TestWorkersJSONHasTheSeedsShape(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	startProcess(t, c.NewWorker("worker-gpu-01", "-labels=gpu=true,memory=64G", "-max-active-runs=2"))
	mustEnqueue(t, leader, "20240211_120000", nil, "sleep 30")
	clustertest.WaitFor(t, 30*time.Second, "the parent run to start", func() (bool, string) {
		run, err := getRun(leader, "20240211_120000")
		return err == nil && run.Status == "running", fmt.Sprintf("%+v %v", run, err)
	})
	var resp wire.Enqueued
	child := inlineRun("child-run", nil, "sleep 30")
	child.ParentDagRunID = "20240211_120000"
	child.Dag.Name = "train-model"
	if code, err := leader.PostJSON("/api/v2/dag-runs", child, &resp); err != nil || code != 201 {
		t.Fatalf("enqueue child: HTTP %d %v", code, err)
	}
	clustertest.WaitFor(t, 30*time.Second, "both runs on the worker", func() (bool, string) {
		workers, err := workersOf(leader, false)
		return err == nil && len(workers["worker-gpu-01"].RunningTasks) == 2, fmt.Sprintf("%+v %v", workers, err)
	})

	follower := followerOf(c, leader)
	httpResp, err := follower.API().Send(context.Background(), http.MethodGet, "/api/v2/workers", nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(httpResp.Body)
	httpResp.Body.Close()
	if httpResp.StatusCode != 200 || httpResp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/v2/workers on a follower: HTTP %d %s", httpResp.StatusCode, httpResp.Header.Get("Content-Type"))
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	requireKeys(t, "the answer", top, "workers")
	var workers []map[string]json.RawMessage
	if err := json.Unmarshal(top["workers"], &workers); err != nil || len(workers) != 1 {
		t.Fatalf("workers: %v %s", err, top["workers"])
	}
	requireKeys(t, "a worker", workers[0], "id", "labels", "auto_labels", "executors", "health_status", "last_heartbeat", "running_tasks", "version")
	var tasks []map[string]json.RawMessage
	if err := json.Unmarshal(workers[0]["running_tasks"], &tasks); err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		requireKeys(t, "a running task", task, "dag_name", "dag_run_id", "root_dag_run_name", "root_dag_run_id",
			"parent_dag_run_name", "parent_dag_run_id", "started_at")
	}
	// Types: decode strictly into the seed's types, written out here and
	// not taken from ops/wire: a field the API grew would pass a decode
	// into the API's own type.
	type seedTask struct {
		DagName          string `json:"dag_name"`
		DagRunID         string `json:"dag_run_id"`
		RootDagRunName   string `json:"root_dag_run_name"`
		RootDagRunID     string `json:"root_dag_run_id"`
		ParentDagRunName string `json:"parent_dag_run_name"`
		ParentDagRunID   string `json:"parent_dag_run_id"`
		StartedAt        string `json:"started_at"`
	}
	type seedWorker struct {
		ID            string            `json:"id"`
		Labels        map[string]string `json:"labels"`
		AutoLabels    []string          `json:"auto_labels"`
		Executors     []string          `json:"executors"`
		HealthStatus  string            `json:"health_status"`
		LastHeartbeat string            `json:"last_heartbeat"`
		RunningTasks  []seedTask        `json:"running_tasks"`
		Version       string            `json:"version"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var typed struct {
		Workers []seedWorker `json:"workers"`
	}
	if err := dec.Decode(&typed); err != nil {
		t.Fatalf("strict decode: %v", err)
	}
	w := typed.Workers[0]
	if w.ID != "worker-gpu-01" || w.Labels["gpu"] != "true" || w.Labels["memory"] != "64G" || w.HealthStatus != "HEALTHY" ||
		w.AutoLabels == nil || len(w.AutoLabels) != 0 || len(w.Executors) == 0 || w.Version != buildinfo.Version() {
		t.Fatalf("worker: %+v", w)
	}
	if ts, err := time.Parse(time.RFC3339, w.LastHeartbeat); err != nil || ts.Location() != time.UTC {
		t.Fatalf("last_heartbeat %q is not RFC 3339 UTC: %v", w.LastHeartbeat, err)
	}
	byID := map[string]seedTask{}
	for _, task := range w.RunningTasks {
		if ts, err := time.Parse(time.RFC3339, task.StartedAt); err != nil || ts.Location() != time.UTC {
			t.Fatalf("started_at %q is not RFC 3339 UTC: %v", task.StartedAt, err)
		}
		byID[task.DagRunID] = task
	}
	root, childTask := byID["20240211_120000"], byID["child-run"]
	if root.DagName != "e2e" || root.RootDagRunName != "e2e" || root.RootDagRunID != "20240211_120000" || root.ParentDagRunID != "" || root.ParentDagRunName != "" {
		t.Fatalf("root run task: %+v", root)
	}
	if childTask.DagName != "train-model" || childTask.RootDagRunName != "e2e" || childTask.RootDagRunID != "20240211_120000" ||
		childTask.ParentDagRunName != "e2e" || childTask.ParentDagRunID != "20240211_120000" {
		t.Fatalf("child run task: %+v", childTask)
	}
}

// Acceptance 5 across servers: with a token configured, a follower asks
// for the token and passes it on when it forwards to the leader; the
// health probe stays open; `daguha workers` shows the table with the token.
func TestTokenProtectedClusterAndWorkersCommand(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ExtraArgs: []string{"-api-token=e2e-token", "-cluster-token=e2e-cluster-token"}})
	leader := c.WaitLeader(t, 30*time.Second)
	startProcess(t, c.NewWorker("token-worker", "-labels=gpu=true"))
	follower := followerOf(c, leader)
	get := func(token string) int {
		code, err := client.New(follower.HTTPAddr(), client.Options{Token: token}).Do(context.Background(), http.MethodGet, "/api/v2/workers", nil, nil)
		if code == 0 {
			t.Fatal(err)
		}
		return code
	}
	if code := get(""); code != 401 {
		t.Fatalf("no token: HTTP %d, want 401", code)
	}
	if code := get("nope"); code != 401 {
		t.Fatalf("wrong token: HTTP %d, want 401", code)
	}
	clustertest.WaitFor(t, 30*time.Second, "the worker to be listed through the follower with the token", func() (bool, string) {
		code := get("e2e-token")
		return code == 200, fmt.Sprintf("HTTP %d", code)
	})
	if h, err := follower.Health(); err != nil || h.Code != 200 {
		t.Fatalf("health without a token: %+v %v", h, err)
	}
	bin := clustertest.BuildBinary(t)
	var out []byte
	clustertest.WaitFor(t, 30*time.Second, "daguha workers to list the healthy worker", func() (bool, string) {
		var err error
		out, err = exec.Command(bin, "workers", "-address="+follower.HTTPAddr(), "-token=e2e-token").CombinedOutput()
		return err == nil && strings.Contains(string(out), "token-worker") && strings.Contains(string(out), "🟢 HEALTHY") &&
			strings.Contains(string(out), "gpu=true"), string(out)
	})
	out, err := exec.Command(bin, "workers", "-address="+follower.HTTPAddr()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "missing API token") {
		t.Fatalf("daguha workers without a token: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "workers", "--json", "-address="+follower.HTTPAddr(), "-token=e2e-token").CombinedOutput()
	var body wire.Workers
	if err != nil || json.Unmarshal(out, &body) != nil || len(body.Workers) != 1 {
		t.Fatalf("daguha workers --json: %v\n%s", err, out)
	}
}

// Every server sees a worker's join and labels through gossip, and a
// worker that stops gracefully is OFFLINE at once on every server, long
// before the (default, 30 s) offline threshold.
func TestWorkerJoinAndGracefulLeaveThroughGossip(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	gossipWorker := startProcess(t, c.NewWorker("gossip-worker", "-labels=gpu=true,region=eu-west-1"))
	daguWorker := startProcess(t, c.NewDaguWorker("dagu-worker", followerOf(c, leader), "--worker.labels=cpu=yes"))
	clustertest.WaitFor(t, 30*time.Second, "every server to see both workers, with labels, in gossip and healthy", func() (bool, string) {
		for _, a := range c.Agents {
			var body wire.Members
			if _, err := a.GetJSON("/api/v2/cluster/members", &body); err != nil {
				return false, err.Error()
			}
			found := map[string]cluster.Member{}
			for _, m := range body.Members {
				found[m.Name] = m
			}
			g, d := found["gossip-worker"], found["dagu-worker"]
			if g.Status != "alive" || g.Meta.Role != "worker" || g.Meta.Labels["region"] != "eu-west-1" ||
				d.Status != "alive" || d.Meta.Labels["cpu"] != "yes" {
				return false, fmt.Sprintf("%s sees %+v and %+v", a.Name, g, d)
			}
			workers, err := workersOf(a, true)
			if err != nil || workers["gossip-worker"].HealthStatus != "HEALTHY" || workers["dagu-worker"].HealthStatus != "HEALTHY" {
				return false, fmt.Sprintf("%s: %+v %v", a.Name, workers, err)
			}
		}
		return true, ""
	})
	for _, w := range []*clustertest.Process{gossipWorker, daguWorker} {
		w.Stop()
		if w.ExitCode() != 0 {
			t.Fatalf("%s exited %d after SIGTERM", w.Name, w.ExitCode())
		}
	}
	stopped := time.Now()
	clustertest.WaitFor(t, 15*time.Second, "every server to show both stopped workers OFFLINE", func() (bool, string) {
		for _, a := range c.Agents {
			workers, err := workersOf(a, true)
			if err != nil || workers["gossip-worker"].HealthStatus != "OFFLINE" || workers["dagu-worker"].HealthStatus != "OFFLINE" {
				return false, fmt.Sprintf("%s: %+v %v", a.Name, workers, err)
			}
		}
		return true, ""
	})
	t.Logf("gracefully stopped workers were OFFLINE everywhere %s after the stop (offline threshold 30s)", time.Since(stopped).Round(100*time.Millisecond))
}
