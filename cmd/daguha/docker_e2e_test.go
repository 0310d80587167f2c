package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch/worker"
	"github.com/daguha/daguha/dispatch/worker/dockertest"
	"github.com/daguha/daguha/ops/wire"
)

// Dagu's docker executor in both syntaxes and a DAG-level container,
// through a three-server cluster and a worker process on the machine's
// Docker engine. There is no registry: the test imports its own image,
// FROM scratch with the host's static busybox, and removes it and every
// container of its runs when it ends.
func TestDockerExecutorAndDagContainerRunDagFilesInBothSyntaxes(t *testing.T) {
	cli := dockertest.Client(t)
	image := dockertest.BusyboxImage(t, cli)
	suffix := dockertest.RandomName("")
	runIDs := map[string]string{"old-docker": "old-docker-" + suffix, "current-docker": "current-docker-" + suffix, "in-container": "in-container-" + suffix}
	t.Cleanup(func() {
		for _, id := range runIDs {
			for _, c := range runContainers(t, cli, id) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, _ = cli.ContainerRemove(ctx, c, client.ContainerRemoveOptions{Force: true})
				cancel()
			}
		}
	})

	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	dir := t.TempDir()
	// Issue #23, acceptance 3: at first the only worker has no Docker (its
	// DOCKER_HOST names a socket nobody serves), so it does not say it
	// runs docker steps and the leader gives it none.
	plain := c.NewWorker("plain-worker")
	plain.Env = append(plain.Env, "DOCKER_HOST=unix://"+filepath.Join(dir, "no-docker.sock"))
	startProcess(t, plain)
	files := []string{
		writeFile(t, filepath.Join(dir, "old.yaml"), `name: old-docker
env:
  - WHO: old syntax
steps:
  - name: greet
    executor:
      type: docker
      config:
        image: `+image+`
        pull: never
        autoRemove: true
        container:
          env: [GREETING=hello]
    command: sh -c 'echo "$GREETING from $0"' ${WHO}
`, 0o644),
		writeFile(t, filepath.Join(dir, "current.yaml"), `name: current-docker
env:
  - WHO: current syntax
steps:
  - name: greet
    type: docker
    with:
      image: `+image+`
      pull: missing
      auto_remove: true
      working_dir: /etc
      container:
        env: [GREETING=hi]
    command: sh -c 'echo "$GREETING from $0 in $(pwd)"' ${WHO}
  - name: fails
    type: docker
    with: {image: `+image+`, auto_remove: true}
    command: sh -c 'exit 5'
    continueOn: {exitCode: [5]}
`, 0o644),
		writeFile(t, filepath.Join(dir, "container.yaml"), `name: in-container
container:
  image: `+image+`
  pull_policy: never
steps:
  - name: write
    command: sh -c 'echo "written in $(cat /etc/hostname)" > /tmp/shared-`+suffix+`'
  - name: read
    command: cat /tmp/shared-`+suffix+`
  - name: host
    command: cat /etc/hostname
`, 0o644),
	}
	if out, errOut, code := runCLI(t, append([]string{"dag", "push", "-address=" + leader.HTTPAddr()}, files...)...); code != 0 {
		t.Fatalf("dag push: exit %d\n%s%s", code, out, errOut)
	}
	enqueue := func(dag string) {
		t.Helper()
		var resp wire.Enqueued
		if code, err := leader.PostJSONTimeout("/api/v2/dag-runs", wire.EnqueueRequest{DagName: dag, DagRunID: runIDs[dag]}, &resp, 30*time.Second); err != nil || code != 201 {
			t.Fatalf("enqueue %s: HTTP %d %v", dag, code, err)
		}
	}
	enqueue("old-docker")
	const reason = "no worker runs the docker executor that its steps need"
	clustertest.WaitFor(t, 30*time.Second, "the docker run queued, saying no worker runs docker", func() (bool, string) {
		run, err := runDetail(c, runIDs["old-docker"])
		if err != nil {
			return false, err.Error()
		}
		return run.Status == "queued" && run.Reason == reason, fmt.Sprintf("%s, reason %q", run.Status, run.Reason)
	})
	var workers wire.Workers
	if code, err := leader.GetJSON("/api/v2/workers", &workers); err != nil || code != 200 || len(workers.Workers) != 1 ||
		slices.Contains(workers.Workers[0].Executors, "docker") || !slices.Contains(workers.Workers[0].Executors, "http") {
		t.Fatalf("workers without Docker: HTTP %d %v %+v", code, err, workers)
	}
	// A worker with Docker joins and takes it.
	startProcess(t, c.NewWorker("docker-worker"))
	for _, tc := range []struct{ dag, step, want string }{
		{"old-docker", "greet", "hello from old syntax\n"},
		{"current-docker", "greet", "hi from current syntax in /etc\n"},
	} {
		id := runIDs[tc.dag]
		if tc.dag != "old-docker" {
			enqueue(tc.dag)
		}
		run := waitRunStatus(t, c, id, "succeeded", 90*time.Second)
		steps := map[string]wire.Step{}
		for _, s := range run.Steps {
			steps[s.Name] = s
		}
		if got := steps[tc.step].OutputTail; got != tc.want {
			t.Errorf("%s: %s printed %q, want %q", tc.dag, tc.step, got, tc.want)
		}
		if f, ok := steps["fails"]; tc.dag == "current-docker" && (!ok || f.Status != "failed" || f.ExitCode != 5) {
			t.Errorf("current-docker: fails %+v, want failed with exit code 5", f)
		}
		if left := runContainers(t, cli, id); len(left) != 0 {
			t.Errorf("%s: autoRemove left containers %v", tc.dag, left)
		}
		if run.WorkerID != "docker-worker" || run.Reason != "" {
			t.Errorf("%s ran on %q (reason %q), want docker-worker", tc.dag, run.WorkerID, run.Reason)
		}
	}

	id := runIDs["in-container"]
	var resp wire.Enqueued
	if code, err := leader.PostJSONTimeout("/api/v2/dag-runs", wire.EnqueueRequest{DagName: "in-container", DagRunID: id}, &resp, 30*time.Second); err != nil || code != 201 {
		t.Fatalf("enqueue in-container: HTTP %d %v", code, err)
	}
	run := waitRunStatus(t, c, id, "succeeded", 90*time.Second)
	steps := map[string]wire.Step{}
	for _, s := range run.Steps {
		steps[s.Name] = s
	}
	hostname := strings.TrimSpace(steps["host"].OutputTail)
	if got := steps["read"].OutputTail; hostname == "" || got != "written in "+hostname+"\n" {
		t.Errorf("read printed %q, want what write wrote in the container %q (steps %+v)", got, hostname, run.Steps)
	}
	if _, err := os.Stat("/tmp/shared-" + suffix); err == nil {
		t.Errorf("the file the steps shared is on the worker's host, not in the container")
	}
	if left := runContainers(t, cli, id); len(left) != 0 {
		t.Errorf("the run's container is left: %v", left)
	}
}

// runContainers are the ids of the containers, running or not, labelled
// with the run.
func runContainers(t *testing.T, cli *client.Client, runID string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", worker.LabelRunID+"="+runID)})
	if err != nil {
		t.Errorf("listing the containers of %s: %v", runID, err)
		return nil
	}
	var ids []string
	for _, c := range got.Items {
		ids = append(ids, c.ID)
	}
	return ids
}
