package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

// runCLI runs the daguha binary and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(clustertest.BuildBinary(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("daguha %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// runDetail reads a run's detail from any running server.
func runDetail(c *clustertest.Cluster, id string) (wire.Run, error) {
	var lastErr error
	for _, a := range c.Running() {
		var run wire.Run
		code, err := a.GetJSON("/api/v2/dag-runs/"+id, &run)
		if err == nil && code == 200 {
			return run, nil
		}
		lastErr = fmt.Errorf("%s: run %s: HTTP %d %v", a.Name, id, code, err)
	}
	return wire.Run{}, lastErr
}

func waitRunStatus(t *testing.T, c *clustertest.Cluster, id, want string, timeout time.Duration) wire.Run {
	t.Helper()
	var run wire.Run
	clustertest.WaitFor(t, timeout, "run "+id+" to be "+want, func() (bool, string) {
		var err error
		run, err = runDetail(c, id)
		if err != nil {
			return false, err.Error()
		}
		return run.Status == want, fmt.Sprintf("status %s, steps %+v", run.Status, run.Steps)
	})
	return run
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// The seed's "Route Tasks to Workers" example, exactly as the seed writes it.
const seedPipeline = `name: distributed-pipeline
steps:
  # This task requires GPU
  - name: train-model
    run: train-model
    workerSelector:
      gpu: "true"
---
name: train-model
command: python train_model.py
workerSelector:
  gpu: "true"
steps:
  - name: train-model
    command: python train_model.py
`

// Acceptance 1: the seed's two-document example runs unchanged on three
// servers with a gpu=true worker and a worker without labels: train-model
// runs on the gpu worker as a child of distributed-pipeline, and while it
// runs /api/v2/workers shows its root and parent.
func TestSeedPipelineRunsItsChildOnTheGpuWorker(t *testing.T) {
	t.Parallel() // waits more than it computes: see TestMain
	dir := t.TempDir()
	// As in the seed's Compose example, the DAGs come from a mounted
	// directory (--dags), here on one server.
	dags := filepath.Join(dir, "dags")
	if err := os.Mkdir(dags, 0o755); err != nil {
		t.Fatal(err)
	}
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ArgsFor: func(i int) []string {
		if i == 0 {
			return []string{"-dags=" + dags}
		}
		return nil
	}})
	leader := c.WaitLeader(t, 30*time.Second)
	// `python train_model.py` on the gpu worker: a stand-in python on its
	// PATH that trains until the test says stop.
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	release := filepath.Join(dir, "release")
	trainings := filepath.Join(dir, "trainings")
	writeFile(t, filepath.Join(bin, "python"), fmt.Sprintf(`#!/bin/sh
echo "$DAG_RUN_ID $DAG_RUN_ATTEMPT" >> %s
echo "training with $1 on $(hostname)"
i=0
while [ ! -f %s ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
echo "model trained"
`, trainings, release), 0o755)
	gpu := c.NewWorker("gpu-worker", "-labels=gpu=true")
	gpu.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	startProcess(t, gpu)
	startProcess(t, c.NewWorker("plain-worker"))

	writeFile(t, filepath.Join(dags, "pipeline.yaml"), seedPipeline, 0o644)
	address := "-address=" + followerOf(c, leader).HTTPAddr()
	clustertest.WaitFor(t, 30*time.Second, "the DAGs directory to be pushed", func() (bool, string) {
		out, errOut, _ := runCLI(t, "dag", "list", address)
		return strings.Contains(out, "distributed-pipeline"), out + errOut
	})
	if out, errOut, code := runCLI(t, "enqueue", address, "--run-id=pipe-1", "distributed-pipeline"); code != 0 || strings.TrimSpace(out) != "pipe-1" {
		t.Fatalf("enqueue: exit %d\n%s%s", code, out, errOut)
	}

	var child wire.RunningTask
	clustertest.WaitFor(t, 60*time.Second, "train-model running on the gpu worker, under its root and parent", func() (bool, string) {
		var body wire.Workers
		if code, err := leader.GetJSON("/api/v2/workers", &body); err != nil || code != 200 {
			return false, fmt.Sprintf("HTTP %d %v", code, err)
		}
		for _, w := range body.Workers {
			for _, task := range w.RunningTasks {
				if task.DagName == "train-model" {
					child = task
					return w.ID == "gpu-worker", fmt.Sprintf("train-model runs on %s", w.ID)
				}
			}
		}
		return false, fmt.Sprintf("workers %+v", body.Workers)
	})
	if child.RootDagRunName != "distributed-pipeline" || child.RootDagRunID != "pipe-1" ||
		child.ParentDagRunName != "distributed-pipeline" || child.ParentDagRunID != "pipe-1" {
		t.Fatalf("the child's hierarchy in /api/v2/workers: %+v", child)
	}
	// Issue 22, acceptance 3: the leader is killed while the child
	// trains; a new leader takes over, the killed server comes back (it
	// holds the DAGs directory), and the pipeline ends as if nothing
	// happened: one attempt of each run, the model trained once.
	t.Logf("killing the leader %s while train-model runs", leader.Name)
	leader.Kill()
	newLeader := c.WaitLeader(t, 30*time.Second)
	if err := leader.Start(); err != nil {
		t.Fatalf("restarting %s: %v", leader.Name, err)
	}
	writeFile(t, release, "", 0o644)
	parent := waitRunStatus(t, c, "pipe-1", "succeeded", 60*time.Second)
	if data, err := os.ReadFile(trainings); err != nil || string(data) != child.DagRunID+" 1\n" {
		t.Fatalf("trainings (run and attempt of each): %q %v; want one, of %s's first attempt", data, err, child.DagRunID)
	}
	if len(parent.Attempts) != 1 {
		t.Errorf("the parent ran in attempts %+v, want one (new leader %s)", parent.Attempts, newLeader.Name)
	}
	if len(parent.Steps) != 1 || parent.Steps[0].ChildRunID != child.DagRunID || parent.Steps[0].Status != "succeeded" {
		t.Fatalf("the parent's step: %+v (child %s)", parent.Steps, child.DagRunID)
	}
	if len(parent.Children) != 1 || parent.Children[0].WorkerID != "gpu-worker" || parent.Children[0].Status != "succeeded" {
		t.Fatalf("the parent's children: %+v", parent.Children)
	}
	done, err := runDetail(c, child.DagRunID)
	if err != nil || done.WorkerID != "gpu-worker" || len(done.Attempts) != 1 || len(done.Steps) != 1 || !strings.Contains(done.Steps[0].OutputTail, "training with train_model.py") {
		t.Fatalf("the child run: %+v %v", done, err)
	}
	// The whole log stays on the worker and comes through the API.
	log := fetchLog(t, followerOf(c, leader), child.DagRunID, "train-model")
	if !strings.Contains(log, "training with train_model.py") || !strings.Contains(log, "model trained") {
		t.Fatalf("step log %q", log)
	}
	// status shows the hierarchy.
	out, errOut, code := runCLI(t, "status", address, child.DagRunID)
	if code != 0 || !strings.Contains(out, "parent") || !strings.Contains(out, "pipe-1") {
		t.Fatalf("status of the child: exit %d\n%s%s", code, out, errOut)
	}
	// Removing the file from the DAGs directory deletes its DAG, as in
	// Dagu's dags directory; its runs stay.
	if err := os.Remove(filepath.Join(dags, "pipeline.yaml")); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 30*time.Second, "the removed file's DAG to be deleted", func() (bool, string) {
		out, errOut, code := runCLI(t, "dag", "list", address)
		return code == 0 && !strings.Contains(out, "distributed-pipeline"), out + errOut
	})
	if _, err := runDetail(c, "pipe-1"); err != nil {
		t.Fatalf("the run of the deleted DAG: %v", err)
	}
}

func fetchLog(t *testing.T, a *clustertest.Agent, runID, step string) string {
	t.Helper()
	out, errOut, code := runCLI(t, "logs", "-address="+a.HTTPAddr(), runID, step)
	if code != 0 {
		t.Fatalf("daguha logs %s %s: exit %d\n%s%s", runID, step, code, out, errOut)
	}
	return out
}

// Acceptance 2, through the cluster: a diamond runs b and c in parallel
// and d last; a failing step stops its dependants unless continueOn
// failure; retries run the given number of times; a timed-out step's
// processes are gone.
func TestStepGraphThroughTheCluster(t *testing.T) {
	t.Parallel() // waits more than it computes: see TestMain
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	startProcess(t, c.NewWorker("graph-worker", "-max-active-runs=4"))
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "orphan.pid")
	counter := filepath.Join(dir, "tries")
	file := writeFile(t, filepath.Join(dir, "graph.yaml"), fmt.Sprintf(`name: graph
type: graph
steps:
  - name: a
    command: echo a
  - name: b
    command: sleep 1
    depends: a
  - name: c
    command: sleep 1
    depends: [a]
  - name: d
    command: echo d
    depends: [b, c]
  - name: flaky
    command: echo try >> %[1]s; exit 3
    retryPolicy:
      limit: 2
      intervalSec: 0
    continueOn:
      failure: true
  - name: after-flaky
    command: echo still here
    depends: flaky
  - name: slow
    command: sleep 300 & echo $! > %[2]s; wait
    timeoutSec: 1
  - name: after-slow
    command: echo never
    depends: slow
`, counter, pidFile), 0o644)
	address := "-address=" + leader.HTTPAddr()
	if out, errOut, code := runCLI(t, "enqueue", address, "--run-id=graph-1", file); code != 0 {
		t.Fatalf("enqueue: exit %d\n%s%s", code, out, errOut)
	}
	run := waitRunStatus(t, c, "graph-1", "failed", 60*time.Second)
	steps := map[string]wire.Step{}
	for _, s := range run.Steps {
		steps[s.Name] = s
	}
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("time %q: %v", s, err)
		}
		return v
	}
	b, cc, d := steps["b"], steps["c"], steps["d"]
	if !at(b.StartedAt).Before(at(cc.FinishedAt)) || !at(cc.StartedAt).Before(at(b.FinishedAt)) {
		t.Fatalf("b and c did not overlap: b %s-%s, c %s-%s", b.StartedAt, b.FinishedAt, cc.StartedAt, cc.FinishedAt)
	}
	if at(d.StartedAt).Before(at(b.FinishedAt)) || at(d.StartedAt).Before(at(cc.FinishedAt)) || d.Status != "succeeded" {
		t.Fatalf("d started before b and c ended: %+v", d)
	}
	if at(b.StartedAt).Before(at(steps["a"].FinishedAt)) {
		t.Fatalf("b started before a ended")
	}
	tries, _ := os.ReadFile(counter)
	if n := strings.Count(string(tries), "try"); n != 3 || steps["flaky"].Retry != 3 || steps["flaky"].Status != "failed" {
		t.Fatalf("flaky ran %d times (retry %d, %s); want 3 (limit 2)", n, steps["flaky"].Retry, steps["flaky"].Status)
	}
	if steps["after-flaky"].Status != "succeeded" {
		t.Fatalf("continueOn failure did not let the dependant run: %+v", steps["after-flaky"])
	}
	if steps["slow"].Status != "failed" || !strings.Contains(steps["slow"].Error, "timed out") {
		t.Fatalf("slow: %+v", steps["slow"])
	}
	if steps["after-slow"].Status != "skipped" {
		t.Fatalf("a failed step's dependant: %+v", steps["after-slow"])
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 15*time.Second, "the timed-out step's background process to be gone", func() (bool, string) {
		return syscall.Kill(pid, 0) != nil, fmt.Sprintf("pid %d lives", pid)
	})
}

// Acceptance 3: a three-level hierarchy, cancelled at the root, ends with
// every descendant cancelled and no process left on any worker.
func TestCancellingTheRootCancelsEveryDescendant(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	startProcess(t, c.NewWorker("tree-worker-1", "-max-active-runs=2"))
	startProcess(t, c.NewWorker("tree-worker-2", "-max-active-runs=2"))
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	file := writeFile(t, filepath.Join(dir, "tree.yaml"), fmt.Sprintf(`name: root
type: graph
steps:
  - name: busy
    command: sleep 300 & echo $! >> %[1]s; wait
  - name: down
    run: middle
---
name: middle
type: graph
steps:
  - name: busy
    command: sleep 300 & echo $! >> %[1]s; wait
  - name: down
    call: leaf
---
name: leaf
steps:
  - name: busy
    command: sleep 300 & echo $! >> %[1]s; wait
`, pids), 0o644)
	address := "-address=" + followerOf(c, leader).HTTPAddr()
	if out, errOut, code := runCLI(t, "enqueue", address, "--run-id=tree-1", file); code != 0 {
		t.Fatalf("enqueue: exit %d\n%s%s", code, out, errOut)
	}
	// Wait for the three levels to be running, each with its sleep.
	var ids []string
	clustertest.WaitFor(t, 60*time.Second, "three levels running with their processes", func() (bool, string) {
		ids = []string{"tree-1"}
		for len(ids) < 3 {
			run, err := runDetail(c, ids[len(ids)-1])
			if err != nil || len(run.Children) == 0 {
				return false, fmt.Sprintf("%d levels", len(ids))
			}
			ids = append(ids, run.Children[0].DagRunID)
		}
		for _, id := range ids {
			if run, err := runDetail(c, id); err != nil || run.Status != "running" {
				return false, fmt.Sprintf("%s is %s", id, run.Status)
			}
		}
		data, _ := os.ReadFile(pids)
		return strings.Count(string(data), "\n") == 3, "pids: " + string(data)
	})
	leaf, _ := runDetail(c, ids[2])
	if leaf.RootDagRunID != "tree-1" || leaf.ParentDagRunID != ids[1] || leaf.DagName != "leaf" {
		t.Fatalf("the leaf's hierarchy: %+v", leaf)
	}
	if out, errOut, code := runCLI(t, "cancel", address, "tree-1"); code != 0 {
		t.Fatalf("cancel: exit %d\n%s%s", code, out, errOut)
	}
	for _, id := range ids {
		waitRunStatus(t, c, id, "cancelled", 30*time.Second)
	}
	data, _ := os.ReadFile(pids)
	for _, field := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(field)
		if err != nil {
			t.Fatal(err)
		}
		clustertest.WaitFor(t, 15*time.Second, "the cancelled runs' processes to be gone", func() (bool, string) {
			return syscall.Kill(pid, 0) != nil, fmt.Sprintf("pid %d lives", pid)
		})
	}
}

// Acceptance 4: a DAG scheduled every second keeps one run per slot
// through three forced leader failovers (kill -9): no slot fires twice,
// and the only slots missing are ones that fell while no leader was
// firing, with the latest of them fired on recovery (the default rule).
func TestScheduleFiresEachSlotOnceThroughFailovers(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	startProcess(t, c.NewWorker("cron-worker", "-max-active-runs=8"))
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "tick.yaml"), "name: tick\nschedule: \"* * * * * *\"\nsteps:\n  - name: t\n    command: \"true\"\n", 0o644)
	if out, errOut, code := runCLI(t, "dag", "push", "-address="+leader.HTTPAddr(), file); code != 0 {
		t.Fatalf("dag push: exit %d\n%s%s", code, out, errOut)
	}
	type outage struct{ from, to time.Time }
	var outages []outage
	waitSlots := func(n int) {
		t.Helper()
		start := len(scheduledSlots(t, c))
		clustertest.WaitFor(t, 30*time.Second, fmt.Sprintf("%d more slots to fire", n), func() (bool, string) {
			got := len(scheduledSlots(t, c))
			return got >= start+n, fmt.Sprintf("%d slots", got)
		})
	}
	waitSlots(3)
	for i := 0; i < 3; i++ {
		from := time.Now()
		leader.Kill()
		killed := leader
		leader = c.WaitLeader(t, 30*time.Second)
		// The new leader fires from the moment it leads; allow it a second
		// to establish itself and run its first tick.
		outages = append(outages, outage{from: from.Add(-time.Second), to: time.Now().Add(time.Second)})
		if err := killed.Start(); err != nil {
			t.Fatal(err)
		}
		c.WaitLeader(t, 30*time.Second)
		waitSlots(3)
	}
	// Stop the schedule, then read the record.
	writeFile(t, file, "name: tick\nsteps:\n  - name: t\n    command: \"true\"\n", 0o644)
	if out, errOut, code := runCLI(t, "dag", "push", "-address="+leader.HTTPAddr(), file); code != 0 {
		t.Fatalf("dag push: exit %d\n%s%s", code, out, errOut)
	}
	slots := scheduledSlots(t, c)
	sorted := make([]int64, 0, len(slots))
	for s := range slots {
		sorted = append(sorted, s)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	missed := 0
	for i := 1; i < len(sorted); i++ {
		for s := sorted[i-1] + 1; s < sorted[i]; s++ {
			missed++
			slot := time.Unix(s, 0)
			explained := false
			for _, o := range outages {
				if !slot.Before(o.from) && !slot.After(o.to) {
					explained = true
				}
			}
			if !explained {
				t.Errorf("slot %s was missed outside every failover window %v", slot.UTC().Format(time.RFC3339), outages)
			}
		}
	}
	t.Logf("%d slots fired from %s to %s through 3 failovers; %d missed during failovers", len(sorted),
		time.Unix(sorted[0], 0).UTC().Format(time.TimeOnly), time.Unix(sorted[len(sorted)-1], 0).UTC().Format(time.TimeOnly), missed)
}

// scheduledSlots maps each fired slot (unix seconds) to its run id,
// failing the test if a slot has two runs.
func scheduledSlots(t *testing.T, c *clustertest.Cluster) map[int64]string {
	t.Helper()
	slots := map[int64]string{}
	for _, a := range c.Running() {
		var body wire.RunList
		if code, err := a.GetJSON("/api/v2/dag-runs?dag_name=tick&limit=10000", &body); err != nil || code != 200 {
			continue
		}
		for _, run := range body.Runs {
			if run.ScheduledSlot == "" {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, run.ScheduledSlot)
			if err != nil {
				t.Fatal(err)
			}
			if other, dup := slots[at.Unix()]; dup {
				t.Fatalf("slot %s fired twice: runs %s and %s", run.ScheduledSlot, other, run.DagRunID)
			}
			slots[at.Unix()] = run.DagRunID
		}
		return slots
	}
	return slots
}
