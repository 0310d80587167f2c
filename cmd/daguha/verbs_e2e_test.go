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

// Issue 24: Dagu's command-line verbs against a three-server cluster, with
// Dagu's flags (also after the arguments, as Dagu takes them) and exit
// codes, on DAG files of both syntaxes (Dagu 1.x `run:`, current `call:`
// and `type:`). validate names every problem of two bad files by line;
// dry runs nothing and shows the worker selector each step would need;
// start follows a run to its end and exits 1 when it fails; retry reruns
// a failed run as a new attempt of the same run (and --step from one
// step), keeping the steps before; dequeue ends a queued run; stop
// cancels every running run of a DAG; restart stops a running run and
// starts it again with its params; status takes Dagu's FILE --run-id.
func TestDaguVerbs(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	startProcess(t, c.NewWorker("verbs-worker", "-labels=zone=eu", "-max-active-runs=4"))
	dir := t.TempDir()
	address := "-address=" + followerOf(c, leader).HTTPAddr()
	cli := func(args ...string) (string, string, int) {
		t.Helper()
		return runCLI(t, append([]string{args[0], address}, args[1:]...)...)
	}
	// lines reads the lines a DAG's steps appended to a file of dir.
	lines := func(name string) string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return strings.Join(strings.Fields(string(data)), " ")
	}

	t.Run("validate", func(t *testing.T) {
		good := writeFile(t, filepath.Join(dir, "good.yaml"), "name: good\nsteps:\n  - name: a\n    command: \"true\"\n", 0o644)
		badDepends := writeFile(t, filepath.Join(dir, "bad-depends.yaml"), "name: bad-depends\nsteps:\n  - name: a\n    command: \"true\"\n  - name: b\n    command: \"true\"\n    depends: [nope]\n", 0o644)
		badKeys := writeFile(t, filepath.Join(dir, "bad-keys.yaml"), "name: bad-keys\nschedule: \"not cron\"\nsteps:\n  - name: a\n    comand: typo\n", 0o644)
		out, errOut, code := runCLI(t, "validate", good, badDepends, badKeys)
		if code != 1 || !strings.Contains(out, "good.yaml: valid: DAG good, 1 step") {
			t.Fatalf("validate: exit %d\nstdout %s\nstderr %s", code, out, errOut)
		}
		for _, want := range []string{badDepends + ":7: steps[1].depends", badKeys + ":2: schedule", badKeys + ":5: steps[0].comand", "in 2 of 3 files"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("validate does not say %q:\n%s", want, errOut)
			}
		}
	})

	// A pipeline in current Dagu's syntax (call:, type:) whose child DAG
	// needs a GPU worker the cluster does not have.
	pipeline := writeFile(t, filepath.Join(dir, "pipeline.yaml"), fmt.Sprintf(`name: pipeline
workerSelector:
  zone: eu
params: MODEL=small
steps:
  - name: prepare
    command: touch %[1]s/prepared
  - name: train
    call: train-model
    params: "SIZE=${MODEL}"
    depends: [prepare]
  - name: notify
    type: http
    with:
      url: http://127.0.0.1:1/done
    depends: [train]
---
name: train-model
workerSelector:
  gpu: "true"
steps:
  - name: fit
    command: touch %[1]s/trained
`, dir), 0o644)

	t.Run("dry", func(t *testing.T) {
		clustertest.WaitFor(t, 30*time.Second, "the worker to register", func() (bool, string) {
			var workers wire.Workers
			code, err := c.WaitLeader(t, 30*time.Second).GetJSON("/api/v2/workers", &workers)
			return err == nil && code == 200 && len(workers.Workers) == 1, fmt.Sprintf("HTTP %d %v %+v", code, err, workers)
		})
		before, err := listRuns(c)
		if err != nil {
			t.Fatal(err)
		}
		out, errOut, code := cli("dry", pipeline, "--", "MODEL=large")
		if code != 0 {
			t.Fatalf("dry: exit %d\nstdout %s\nstderr %s", code, out, errOut)
		}
		for _, want := range []string{
			"DAG pipeline", "params:      MODEL=large", "runs on:     zone=eu", "executors:   http", "workers now: verbs-worker",
			"train", "a child run of DAG train-model", "gpu=true (DAG train-model's)",
			"DAG train-model (child of step train", "none of the 1 registered workers", "nothing was run",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the plan does not show %q:\n%s", want, out)
			}
		}
		if !strings.Contains(out, "prepare") || strings.Index(out, "prepare") > strings.Index(out, "notify") {
			t.Errorf("the steps are not in an order they may start:\n%s", out)
		}
		after, err := listRuns(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before) || lines("prepared") != "" {
			t.Fatalf("dry ran something: %d runs before, %d after", len(before), len(after))
		}
		broken := writeFile(t, filepath.Join(dir, "broken-call.yaml"), "name: broken-call\nsteps:\n  - name: a\n    call: no-such-dag\n", 0o644)
		if _, errOut, code := cli("dry", broken); code != 1 || !strings.Contains(errOut, "calls DAG no-such-dag, which is neither in the file nor stored") {
			t.Fatalf("dry of a file calling an unknown DAG: exit %d\n%s", code, errOut)
		}
	})

	// Dagu 1.x syntax (run:): a child run, then a step that fails until a
	// gate file exists, then one after it. Each step appends the attempt.
	flaky := writeFile(t, filepath.Join(dir, "flaky.yaml"), fmt.Sprintf(`name: flaky
steps:
  - name: first
    command: echo "$DAG_RUN_ATTEMPT" >> %[1]s/first; echo one
    output: FIRST
  - name: sub
    run: flaky-sub
    depends: [first]
  - name: second
    command: echo "$DAG_RUN_ATTEMPT" >> %[1]s/second; [ -e %[1]s/gate ]
    depends: [sub]
  - name: third
    command: echo "$DAG_RUN_ATTEMPT:$FIRST" >> %[1]s/third
    depends: [second]
---
name: flaky-sub
steps:
  - name: inner
    command: echo "$DAG_RUN_ATTEMPT" >> %[1]s/sub
`, dir), 0o644)

	t.Run("start", func(t *testing.T) {
		out, errOut, code := cli("start", flaky, "--run-id=flaky-1", "--", "MODE=fast")
		if code != 1 || strings.TrimSpace(out) != "flaky-1" || !strings.Contains(errOut, "run flaky-1 failed: step second failed") {
			t.Fatalf("start of a run that fails: exit %d, want 1\nstdout %s\nstderr %s", code, out, errOut)
		}
		if _, errOut, code := cli("start", flaky, "-r", "flaky-1"); code != 1 || !strings.Contains(errOut, "run id flaky-1 already exists for DAG flaky") {
			t.Fatalf("start with a run id taken: exit %d\n%s", code, errOut)
		}
		good := filepath.Join(dir, "good.yaml")
		if out, errOut, code := cli("start", good, "-q", "--run-id=good-1"); code != 0 || strings.TrimSpace(out) != "good-1" || strings.Contains(errOut, "running on") {
			t.Fatalf("quiet start of a run that succeeds: exit %d\nstdout %s\nstderr %s", code, out, errOut)
		}
	})

	t.Run("retry", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "gate"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		// The name, not the file, and the flags after it, as Dagu takes them.
		out, errOut, code := cli("retry", "flaky", "--run-id=flaky-1")
		if code != 0 || !strings.Contains(errOut, "(attempt 2)") || !strings.Contains(errOut, "run flaky-1 succeeded") {
			t.Fatalf("retry of the failed run: exit %d\nstdout %s\nstderr %s", code, out, errOut)
		}
		run, err := runDetail(c, "flaky-1")
		if err != nil {
			t.Fatal(err)
		}
		if run.Status != "succeeded" || run.Attempt != 2 || run.Retries != 1 || len(run.Attempts) != 2 ||
			run.Attempts[0].Outcome != "failed" || run.Attempts[1].Outcome != "succeeded" || run.Params != "MODE=fast" {
			t.Fatalf("the retried run: status %s, attempt %d, retries %d, attempts %+v, params %q", run.Status, run.Attempt, run.Retries, run.Attempts, run.Params)
		}
		// first and the child ran once: kept; second failed, so it and
		// third ran again, third with first's kept output.
		for file, want := range map[string]string{"first": "1", "sub": "1", "second": "1 2", "third": "2:one"} {
			if got := lines(file); got != want {
				t.Errorf("%s ran in attempts %q, want %q", file, got, want)
			}
		}
		out, errOut, code = cli("retry", "--run-id=flaky-1", "--step=third", flaky)
		if code != 0 || !strings.Contains(errOut, "(attempt 3)") {
			t.Fatalf("retry from a step: exit %d\nstdout %s\nstderr %s", code, out, errOut)
		}
		for file, want := range map[string]string{"first": "1", "sub": "1", "second": "1 2", "third": "2:one 3:one"} {
			if got := lines(file); got != want {
				t.Errorf("after the retry from third, %s ran in attempts %q, want %q", file, got, want)
			}
		}
		if _, errOut, code := cli("retry", "--run-id=flaky-1", "--step=nope", "flaky"); code != 1 || !strings.Contains(errOut, `DAG "flaky" has no step named "nope"`) {
			t.Fatalf("retry from a step the DAG lacks: exit %d\n%s", code, errOut)
		}
	})

	// A DAG no worker can take: its runs stay queued.
	mars := writeFile(t, filepath.Join(dir, "mars.yaml"), "name: mars\nworkerSelector:\n  zone: mars\nsteps:\n  - name: land\n    command: \"true\"\n", 0o644)
	t.Run("dequeue", func(t *testing.T) {
		for _, id := range []string{"mars-1", "mars-2"} {
			if out, errOut, code := cli("enqueue", "--run-id="+id, mars); code != 0 {
				t.Fatalf("enqueue %s: exit %d\n%s%s", id, code, out, errOut)
			}
		}
		if _, errOut, code := cli("retry", "mars", "--run-id=mars-1"); code != 1 || !strings.Contains(errOut, `run "mars-1" is queued, not finished`) {
			t.Fatalf("retry of a queued run: exit %d\n%s", code, errOut)
		}
		if out, errOut, code := cli("dequeue", "--dag-run=mars:mars-1"); code != 0 || !strings.Contains(out, "dequeued run mars-1: cancelled") {
			t.Fatalf("dequeue --dag-run: exit %d\n%s%s", code, out, errOut)
		}
		if _, errOut, code := cli("dequeue", "--dag-run=mars:mars-1"); code != 1 || !strings.Contains(errOut, `run "mars-1" is not queued but cancelled`) {
			t.Fatalf("dequeue of a cancelled run: exit %d\n%s", code, errOut)
		}
		// Current Dagu's form: the queue (the DAG's own) and no run.
		if out, errOut, code := cli("dequeue", "mars"); code != 0 || !strings.Contains(out, "dequeued run mars-2: cancelled") {
			t.Fatalf("dequeue of a queue's oldest run: exit %d\n%s%s", code, out, errOut)
		}
		if _, errOut, code := cli("dequeue", "--run-id=flaky-1"); code != 1 || !strings.Contains(errOut, `run "flaky-1" is not queued but succeeded`) {
			t.Fatalf("dequeue of a finished run: exit %d\n%s", code, errOut)
		}
		for _, id := range []string{"mars-1", "mars-2"} {
			if run, err := runDetail(c, id); err != nil || run.Status != "cancelled" {
				t.Fatalf("dequeued run %s: %s %v", id, run.Status, err)
			}
		}
	})

	// Runs the test names nap-N sleep until they are stopped; others (the
	// one a restart starts) end at once.
	sleeper := writeFile(t, filepath.Join(dir, "sleeper.yaml"), fmt.Sprintf(`name: sleeper
maxActiveRuns: 4
params: WHO=nobody
steps:
  - name: nap
    command: echo "$WHO" >> %[1]s/naps; case "$DAG_RUN_ID" in nap-*) sleep 60;; esac
`, dir), 0o644)
	running := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if out, errOut, code := cli("enqueue", "--run-id="+id, sleeper, "--", "WHO="+id); code != 0 {
				t.Fatalf("enqueue %s: exit %d\n%s%s", id, code, out, errOut)
			}
		}
		for _, id := range ids {
			waitRunStatus(t, c, id, "running", 30*time.Second)
		}
	}

	t.Run("stop", func(t *testing.T) {
		running("nap-1", "nap-2")
		out, errOut, code := cli("stop", sleeper)
		if code != 0 || !strings.Contains(out, "stopping run nap-1 of DAG sleeper") || !strings.Contains(out, "stopping run nap-2 of DAG sleeper") ||
			!strings.Contains(out, "run nap-1 cancelled") || !strings.Contains(out, "run nap-2 cancelled") {
			t.Fatalf("stop of a DAG: exit %d\nstdout %s\nstderr %s", code, out, errOut)
		}
		if out, _, code := cli("stop", "sleeper"); code != 0 || !strings.Contains(out, "no run of DAG sleeper is running") {
			t.Fatalf("stop of a DAG with nothing running: exit %d\n%s", code, out)
		}
	})

	t.Run("restart", func(t *testing.T) {
		running("nap-3")
		if _, errOut, code := cli("restart", "sleeper", "--run-id=nap-1"); code != 1 || !strings.Contains(errOut, "DAG sleeper is not running, current status: cancelled") {
			t.Fatalf("restart of a run that ended: exit %d\n%s", code, errOut)
		}
		clustertest.WaitFor(t, 30*time.Second, "nap-3's step to start", func() (bool, string) {
			return strings.Contains(lines("naps"), "nap-3"), lines("naps")
		})
		out, errOut, code := cli("restart", sleeper)
		newID := strings.TrimSpace(out)
		if code != 0 || newID == "" || newID == "nap-3" || !strings.Contains(errOut, "stopping run nap-3") || !strings.Contains(errOut, "succeeded") {
			t.Fatalf("restart of the running run: exit %d\nstdout %s\nstderr %s", code, out, errOut)
		}
		if old, err := runDetail(c, "nap-3"); err != nil || old.Status != "cancelled" {
			t.Fatalf("the restarted run: %s %v", old.Status, err)
		}
		if again, err := runDetail(c, newID); err != nil || again.Status != "succeeded" || again.Params != "WHO=nap-3" || again.DagName != "sleeper" {
			t.Fatalf("the new run: %+v %v", again, err)
		}
		if got := lines("naps"); !strings.HasSuffix(got, "nap-3 nap-3") {
			t.Fatalf("naps %q: the new run did not run with the old one's params", got)
		}
	})

	t.Run("status", func(t *testing.T) {
		out, errOut, code := cli("status", flaky, "--run-id=flaky-1")
		if code != 0 || !strings.Contains(out, "flaky-1") || !strings.Contains(out, "succeeded") || !strings.Contains(out, "attempt 3") {
			t.Fatalf("status FILE --run-id: exit %d\n%s%s", code, out, errOut)
		}
		if out, _, code := cli("status", "-r", "good-1", "good"); code != 0 || !strings.Contains(out, "good-1") {
			t.Fatalf("status NAME -r: exit %d\n%s", code, out)
		}
		if out, _, code := cli("status", "mars"); code != 0 || !strings.Contains(out, "mars-2") {
			t.Fatalf("status NAME (the newest run): exit %d\n%s", code, out)
		}
		if _, errOut, code := cli("status", "good", "--run-id=flaky-1"); code != 1 || !strings.Contains(errOut, "run flaky-1 is a run of DAG flaky, not of good") {
			t.Fatalf("status of another DAG's run: exit %d\n%s", code, errOut)
		}
		if out, _, code := cli("status", "good-1"); code != 0 || !strings.Contains(out, "good-1") {
			t.Fatalf("status RUN_ID: exit %d\n%s", code, out)
		}
	})

	// Issue #26's bulk enqueue from the command line: one run per line of
	// params, sent in one request; a bad line is named, the others go.
	t.Run("enqueue --params-file", func(t *testing.T) {
		params := writeFile(t, filepath.Join(dir, "params.txt"), "# one run per line\nSITE=a\n\nSITE=b\nSITE=\"unclosed\nSITE=c\n", 0o644)
		out, errOut, code := cli("enqueue", "--params-file="+params, mars)
		ids := strings.Fields(out)
		if code != 1 || len(ids) != 3 || !strings.Contains(errOut, "params.txt:5: ") || !strings.Contains(errOut, "1 of 4 runs were not enqueued") {
			t.Fatalf("enqueue --params-file: exit %d\n%s%s", code, out, errOut)
		}
		for i, id := range ids {
			run, err := runDetail(c, id)
			if want := "SITE=" + string(rune('a'+i)); err != nil || run.Params != want || run.DagName != "mars" {
				t.Errorf("run %s of line %d: %+v %v, want params %s", id, i, run, err, want)
			}
		}
		if _, errOut, code := cli("enqueue", "--params-file="+params, "--run-id=x", mars); code == 0 || !strings.Contains(errOut, "drop --run-id") {
			t.Errorf("--params-file with --run-id: exit %d\n%s", code, errOut)
		}
	})
}
