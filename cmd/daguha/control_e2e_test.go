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

// Issue 22, acceptance 3 for repeatPolicy, preconditions and handlerOn:
// a run whose worker stops mid-repeat while the leader is killed is taken
// back and run again on another worker; its record is the last attempt's
// alone (each repeat and handler counted once, the skipped step with its
// precondition), and what each attempt ran agrees with it. Then a DAG's
// retryPolicy runs a failed run again as a new attempt.
func TestRepeatsAndHandlersThroughAFailover(t *testing.T) {
	t.Parallel() // waits more than it computes: see TestMain
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ExtraArgs: []string{"-lease-ttl=2s"}})
	leader := c.WaitLeader(t, 30*time.Second)
	first := startProcess(t, c.NewWorker("first", "-max-active-runs=1"))
	dir := t.TempDir()
	// Each execution appends the attempt's number to a file of its own.
	file := writeFile(t, filepath.Join(dir, "control.yaml"), fmt.Sprintf(`name: control
steps:
  - name: poll
    command: echo "$DAG_RUN_ATTEMPT" >> %[1]s/poll; sleep 1
    repeatPolicy:
      repeat: while
      condition: test "$(grep -c "^$DAG_RUN_ATTEMPT\$" %[1]s/poll)" -lt 4
      intervalSec: 1
  - name: optional
    command: echo never >> %[1]s/optional
    precondition: test -f %[1]s/absent
    continueOn: {skipped: true}
  - name: after
    command: echo "$DAG_RUN_ATTEMPT" >> %[1]s/after
handlerOn:
  success:
    command: echo "$DAG_RUN_ATTEMPT:$DAG_RUN_STATUS" >> %[1]s/success
  failure:
    command: echo "$DAG_RUN_ATTEMPT" >> %[1]s/failure
  exit:
    command: echo "$DAG_RUN_ATTEMPT" >> %[1]s/exit
`, dir), 0o644)
	if out, errOut, code := runCLI(t, "enqueue", "-address="+leader.HTTPAddr(), "--run-id=control-1", file); code != 0 {
		t.Fatalf("enqueue: exit %d\n%s%s", code, out, errOut)
	}
	clustertest.WaitFor(t, 30*time.Second, "poll's second execution on the first worker", func() (bool, string) {
		run, err := runDetail(c, "control-1")
		if err != nil {
			return false, err.Error()
		}
		for _, s := range run.Steps {
			if s.Name == "poll" && s.Repeat >= 2 {
				return run.WorkerID == "first", fmt.Sprintf("on %s", run.WorkerID)
			}
		}
		return false, fmt.Sprintf("steps %+v", run.Steps)
	})
	first.Pause()
	leader.Kill()
	t.Logf("paused the first worker and killed leader %s", leader.Name)
	startProcess(t, c.NewWorker("second", "-max-active-runs=1"))
	run := waitRunStatus(t, c, "control-1", "succeeded", 90*time.Second)
	if run.WorkerID != "second" || run.Attempt < 2 {
		t.Fatalf("the run was not taken back: worker %s, attempt %d", run.WorkerID, run.Attempt)
	}
	first.Resume()
	clustertest.WaitFor(t, 30*time.Second, "the resumed worker to give the run up", func() (bool, string) {
		return strings.Contains(first.Tail(200), "run abandoned"), "not yet in its log"
	})

	steps := map[string]wire.Step{}
	for _, s := range run.Steps {
		steps[s.Name] = s
	}
	if p := steps["poll"]; p.Status != "succeeded" || p.Repeat != 4 {
		t.Errorf("poll: %+v, want succeeded after 4 executions", p)
	}
	if o := steps["optional"]; o.Status != "skipped" || len(o.Preconditions) != 1 || o.Preconditions[0].Met ||
		o.Preconditions[0].Actual != "exit status 1" || !strings.Contains(o.Error, "preconditions not met") {
		t.Errorf("optional: %+v", o)
	}
	if a := steps["after"]; a.Status != "succeeded" {
		t.Errorf("after: %+v", a)
	}
	for name, kind := range map[string]string{"onSuccess": "success", "onExit": "exit"} {
		if h := steps[name]; h.Status != "succeeded" || h.Handler != kind {
			t.Errorf("%s: %+v", name, h)
		}
	}
	if _, ran := steps["onFailure"]; ran {
		t.Errorf("the failure handler is recorded: %+v", steps["onFailure"])
	}

	// What ran: the last attempt's lines are what its record says, and the
	// earlier attempts never reached the handlers.
	last := fmt.Sprint(run.Attempt)
	count := func(name, line string) (int, []string) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		lines := strings.Fields(string(data))
		n := 0
		for _, l := range lines {
			if l == line {
				n++
			}
		}
		return n, lines
	}
	for name, want := range map[string]struct {
		line string
		n    int
	}{
		"poll": {last, 4}, "after": {last, 1}, "success": {last + ":succeeded", 1}, "exit": {last, 1},
	} {
		if n, lines := count(name, want.line); n != want.n {
			t.Errorf("%s: %d lines %q, want %d (all: %v)", name, n, want.line, want.n, lines)
		}
	}
	for _, name := range []string{"success", "exit", "failure", "optional"} {
		if _, lines := count(name, ""); len(lines) > 1 || (name == "failure" || name == "optional") && len(lines) > 0 {
			t.Errorf("%s ran in more than the last attempt: %v", name, lines)
		}
	}

	// A DAG's retryPolicy: the first attempt fails (its failure handler
	// runs), the run is queued again and its second attempt succeeds.
	retryFile := writeFile(t, filepath.Join(dir, "retried.yaml"), fmt.Sprintf(`name: retried
retryPolicy:
  limit: 2
  intervalSec: 1
steps:
  - name: flaky
    command: echo "$DAG_RUN_ATTEMPT" >> %[1]s/flaky; [ "$DAG_RUN_ATTEMPT" -ge 2 ]
handlerOn:
  failure:
    command: echo "$DAG_RUN_ATTEMPT" >> %[1]s/retried-failure
`, dir), 0o644)
	if out, errOut, code := runCLI(t, "enqueue", "-address="+c.WaitLeader(t, 30*time.Second).HTTPAddr(), "--run-id=retried-1", retryFile); code != 0 {
		t.Fatalf("enqueue: exit %d\n%s%s", code, out, errOut)
	}
	retried := waitRunStatus(t, c, "retried-1", "succeeded", 60*time.Second)
	if retried.Attempt != 2 || retried.DagRetries != 1 || len(retried.Attempts) != 2 || retried.Attempts[0].Outcome != "failed" {
		t.Errorf("the retried run: attempt %d, dag retries %d, attempts %+v", retried.Attempt, retried.DagRetries, retried.Attempts)
	}
	if _, lines := count("flaky", ""); strings.Join(lines, " ") != "1 2" {
		t.Errorf("flaky ran in attempts %v, want 1 2", lines)
	}
	if _, lines := count("retried-failure", ""); strings.Join(lines, " ") != "1" {
		t.Errorf("the failure handler ran in attempts %v, want 1", lines)
	}
}
