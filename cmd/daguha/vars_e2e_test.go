package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
)

// Dagu's references through the cluster: a backquoted command in the
// DAG's env, a child run's outputs read as ${SUB.outputs.NAME}, a JSON
// path into an output and a step's exit code by its id; a param given
// with the run that holds shell syntax stays data.
func TestDaguReferencesThroughTheCluster(t *testing.T) {
	t.Parallel() // waits more than it computes: see TestMain
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	startProcess(t, c.NewWorker("vars-worker", "-max-active-runs=4"))
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "refs.yaml"), `name: refs
params: NOTE=none
env:
  - STAMP: "`+"`echo stamped`"+`"
steps:
  - name: child
    call: refs-child
    params: "WHO=${STAMP}"
    output: SUB
  - name: check
    id: check
    command: exit 3
    continueOn:
      failure: true
  - name: use
    command: echo "${SUB.outputs.GREETING}|${SUB.outputs.HOST}|${check.exitCode}|$NOTE"
    output: USED
---
name: refs-child
params: WHO=nobody
steps:
  - name: greet
    command: echo "hello $WHO"
    output: GREETING
  - name: config
    command: |
      echo '{"db": {"host": "h1"}}'
    output: CONFIG
  - name: host
    command: echo "${CONFIG.db.host}"
    output: HOST
`, 0o644)
	pwned := filepath.Join(dir, "pwned")
	note := fmt.Sprintf(`NOTE=$(touch %[1]s); touch %[1]s`, pwned)
	if out, errOut, code := runCLI(t, "enqueue", "-address="+leader.HTTPAddr(), "--run-id=refs-1", file, "--", note); code != 0 {
		t.Fatalf("enqueue: exit %d\n%s%s", code, out, errOut)
	}
	run := waitRunStatus(t, c, "refs-1", "succeeded", 60*time.Second)
	want := fmt.Sprintf(`hello stamped|h1|3|$(touch %[1]s); touch %[1]s`, pwned)
	if run.Outputs["USED"] != want {
		t.Errorf("USED = %q, want %q; outputs %v", run.Outputs["USED"], want, run.Outputs)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Error("a param given with the run ran as a command")
	}
}
