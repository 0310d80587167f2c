package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

// Dagu's archive executor through a three-server cluster: one DAG file,
// pushed with `daguha dag push`, packs a directory into a tar.gz in Dagu
// 1.x's syntax (executor/config) and unpacks it in current Dagu's
// (type/with), then the other way round with a zip; relative paths are
// its workingDir's on the worker, and a command step compares what came
// back with what went in.
func TestArchiveExecutorRoundTripsInBothSyntaxes(t *testing.T) {
	t.Parallel() // waits more than it computes: see TestMain
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	startProcess(t, c.NewWorker("archive-worker"))
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "archive.yaml"), `name: archive-round-trip
workingDir: `+dir+`
steps:
  - name: make
    command: mkdir -p src/sub && printf 'alpha\n' > src/a.txt && printf 'beta\n' > src/sub/b.txt
  - name: pack-tgz
    executor:
      type: archive
      config:
        source: src
        destination: out/src.tar.gz
    command: create
  - name: unpack-tgz
    type: archive
    with:
      source: out/src.tar.gz
      destination: from-tgz
      strip_components: 1
    command: extract
  - name: pack-zip
    type: archive
    with:
      source: src
      destination: out/src.zip
      exclude: ["**/b.txt"]
    command: create
  - name: unpack-zip
    executor:
      type: archive
      config:
        source: out/src.zip
        destination: from-zip
    command: extract
  - name: check
    command: diff -r src from-tgz && diff src/a.txt from-zip/src/a.txt && test ! -e from-zip/src/sub/b.txt && cat from-tgz/a.txt from-tgz/sub/b.txt
`, 0o644)
	if out, errOut, code := runCLI(t, "dag", "push", "-address="+leader.HTTPAddr(), file); code != 0 {
		t.Fatalf("dag push: exit %d\n%s%s", code, out, errOut)
	}
	var resp wire.Enqueued
	if code, err := leader.PostJSONTimeout("/api/v2/dag-runs", wire.EnqueueRequest{DagName: "archive-round-trip", DagRunID: "archive-1"}, &resp, 30*time.Second); err != nil || code != 201 {
		t.Fatalf("enqueue: HTTP %d %v", code, err)
	}
	run := waitRunStatus(t, c, "archive-1", "succeeded", 60*time.Second)
	checked := ""
	for _, s := range run.Steps {
		if s.Name == "check" {
			checked = s.OutputTail
		}
	}
	if checked != "alpha\nbeta\n" {
		t.Errorf("check printed %q, want alpha and beta (steps %+v)", checked, run.Steps)
	}
}
