package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

// parallelFanOut is a DAG file with Dagu's parallel: a step over 20 items,
// at most 4 child runs at once, each a run of the local DAG per-item,
// which records its start and end (nanoseconds, its run id and attempt)
// in a file per item.
func parallelFanOut(recordDir string, items int) string {
	names := make([]string, items)
	for i := range names {
		names[i] = fmt.Sprintf("item-%02d", i+1)
	}
	return fmt.Sprintf(`name: fan-out
steps:
  - name: each
    run: per-item
    parallel:
      items: [%s]
      maxConcurrent: 4
    params: "ITEM_NAME=${ITEM}"
    output: RESULTS
---
name: per-item
params: "ITEM_NAME=none"
steps:
  - name: work
    command: >-
      echo "start $(date +%%s%%N) $DAG_RUN_ID $DAG_RUN_ATTEMPT" >> "%s/$ITEM_NAME";
      sleep 1;
      echo "end $(date +%%s%%N) $DAG_RUN_ID $DAG_RUN_ATTEMPT" >> "%s/$ITEM_NAME";
      echo "processed $ITEM_NAME"
    output: RESULT
`, strings.Join(names, ", "), recordDir, recordDir)
}

// childEvent is one line a child wrote: its start or end.
type childEvent struct {
	item, kind, runID, attempt string
	at                         int64
}

func readChildEvents(t *testing.T, dir string) []childEvent {
	t.Helper()
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var events []childEvent
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			fields := strings.Fields(line)
			if len(fields) != 4 {
				t.Fatalf("%s: bad line %q", f.Name(), line)
			}
			at, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", f.Name(), line, err)
			}
			events = append(events, childEvent{item: f.Name(), kind: fields[0], runID: fields[2], attempt: fields[3], at: at})
		}
	}
	return events
}

// Acceptance 3 for parallel: a parallel child DAG over 20 items with
// maxConcurrent 4 runs through three servers and two workers while the
// leader is killed mid-run; nothing of it is lost or done twice (see
// checkFanOut).
func TestParallelChildRunsOncePerItemWithinMaxConcurrentThroughALeaderKill(t *testing.T) {
	t.Parallel() // waits more than it computes: see TestMain
	records := t.TempDir()
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	startProcess(t, c.NewWorker("worker-a", "-max-active-runs=6"))
	startProcess(t, c.NewWorker("worker-b", "-max-active-runs=6"))
	enqueueFanOut(t, followerOf(c, leader), records)
	waitItemsStarted(t, records, 5)
	t.Logf("killing the leader %s", leader.Name)
	leader.Kill()
	c.WaitLeader(t, 30*time.Second)
	checkFanOut(t, c, records)
}

// The same fan-out with the worker that runs the parent killed mid-run:
// the parent is taken back and runs again on the other worker, where it
// finds the children its first attempt started instead of starting them
// again. A child that ran on the killed worker runs again as its own next
// attempt: once per attempt, as recorded.
func TestParallelChildrenAreNotStartedAgainWhenTheParentMovesWorkers(t *testing.T) {
	t.Parallel() // waits more than it computes: see TestMain
	records := t.TempDir()
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ExtraArgs: livenessArgs})
	leader := c.WaitLeader(t, 30*time.Second)
	workers := map[string]*clustertest.Process{
		"worker-a": startProcess(t, c.NewWorker("worker-a", "-max-active-runs=6")),
		"worker-b": startProcess(t, c.NewWorker("worker-b", "-max-active-runs=6")),
	}
	enqueueFanOut(t, leader, records)
	waitItemsStarted(t, records, 6)
	parent, err := runDetail(c, "fan-1")
	if err != nil || workers[parent.WorkerID] == nil {
		t.Fatalf("the parent runs on %q (%v)", parent.WorkerID, err)
	}
	t.Logf("killing %s, which runs the parent", parent.WorkerID)
	workers[parent.WorkerID].Kill()
	done := checkFanOut(t, c, records)
	if len(done.Attempts) < 2 || done.Attempts[0].WorkerID == done.Attempts[len(done.Attempts)-1].WorkerID {
		t.Errorf("the parent's attempts %+v: want it taken back and run again on the other worker", done.Attempts)
	}
}

const fanOutItems = 20

func enqueueFanOut(t *testing.T, a *clustertest.Agent, records string) {
	t.Helper()
	var resp wire.Enqueued
	request := wire.EnqueueRequest{DagRunID: "fan-1", Yaml: parallelFanOut(records, fanOutItems), File: "fan-out.yaml"}
	if code, err := a.PostJSONTimeout("/api/v2/dag-runs", request, &resp, 30*time.Second); err != nil || code != 201 {
		t.Fatalf("enqueue: HTTP %d %v", code, err)
	}
}

func waitItemsStarted(t *testing.T, records string, n int) {
	t.Helper()
	clustertest.WaitFor(t, 60*time.Second, fmt.Sprintf("%d items to start", n), func() (bool, string) {
		started := strings.Count(joinFiles(t, records), "start ")
		return started >= n, fmt.Sprintf("%d started", started)
	})
}

// checkFanOut waits for fan-1 to succeed and checks what happened: every
// item's child ran once per attempt of it, as the child's record counts
// them, under the child run the parent recorded for the item; never more
// than 4 ran at once (the children's own start and end times); 20
// children succeeded and the step's summary counts them. It returns the
// parent as it ended.
func checkFanOut(t *testing.T, c *clustertest.Cluster, records string) wire.Run {
	t.Helper()
	parent := waitRunStatus(t, c, "fan-1", "succeeded", 90*time.Second)
	var step wire.Step
	for _, s := range parent.Steps {
		if s.Name == "each" {
			step = s
		}
	}
	if step.Status != "succeeded" || len(step.ParallelChildren) != fanOutItems {
		t.Fatalf("step each: %s with %d children recorded, want succeeded with %d: %+v", step.Status, len(step.ParallelChildren), fanOutItems, step)
	}
	if len(parent.Children) != fanOutItems {
		t.Errorf("the parent has %d child runs, want %d", len(parent.Children), fanOutItems)
	}

	events := readChildEvents(t, records)
	byItem := map[string][]childEvent{}
	for _, e := range events {
		byItem[e.item] = append(byItem[e.item], e)
	}
	if len(byItem) != fanOutItems {
		t.Fatalf("%d items ran, want %d", len(byItem), fanOutItems)
	}
	for i, recorded := range step.ParallelChildren {
		item := fmt.Sprintf("item-%02d", i+1)
		if recorded.Params != "ITEM_NAME="+item || recorded.Status != "succeeded" {
			t.Errorf("recorded child %d: %+v, want %s's, succeeded", i, recorded, item)
		}
		child, err := runDetail(c, recorded.DagRunID)
		if err != nil {
			t.Fatalf("child %s: %v", recorded.DagRunID, err)
		}
		starts := map[string]int{}
		for _, e := range byItem[item] {
			if e.runID != recorded.DagRunID {
				t.Errorf("item %s ran as %s, not the child %s the parent recorded", item, e.runID, recorded.DagRunID)
			}
			if e.kind == "start" {
				starts[e.attempt]++
			}
		}
		for attempt, n := range starts {
			if n != 1 {
				t.Errorf("item %s: attempt %s of its child started %d times", item, attempt, n)
			}
		}
		checkChildAttempts(t, item, starts, child, byItem[item])
	}

	// By the children's own clocks (an end and a start at the same
	// instant do not overlap).
	sort.Slice(events, func(i, j int) bool {
		if events[i].at != events[j].at {
			return events[i].at < events[j].at
		}
		return events[i].kind == "end"
	})
	running, most := 0, 0
	for _, e := range events {
		if e.kind == "start" {
			running++
		} else {
			running--
		}
		most = max(most, running)
	}
	if most > 4 || most < 2 {
		t.Errorf("at most %d children ran at once, want 4 at most (and some at once)", most)
	}
	t.Logf("at most %d children ran at once; parent attempts %+v", most, parent.Attempts)

	var summary struct {
		Summary struct{ Total, Succeeded, Failed int }
		Outputs []map[string]string
	}
	if err := json.Unmarshal([]byte(parent.Outputs["RESULTS"]), &summary); err != nil ||
		summary.Summary.Total != fanOutItems || summary.Summary.Succeeded != fanOutItems || summary.Summary.Failed != 0 || len(summary.Outputs) != fanOutItems {
		t.Fatalf("summary %q: %+v %v", parent.Outputs["RESULTS"], summary, err)
	}
	if summary.Outputs[0]["RESULT"] != "processed item-01" {
		t.Errorf("first output %v", summary.Outputs[0])
	}
	return parent
}

// checkChildAttempts checks one item's child against what it recorded:
// it succeeded; its last attempt started (once, checked above); every
// attempt that started is one the cluster records; and an attempt that
// never started its step is one the cluster took back (its worker died
// between the grant and the step's first line), never one that ended
// any other way.
func checkChildAttempts(t *testing.T, item string, starts map[string]int, child wire.Run, events []childEvent) {
	t.Helper()
	if child.Status != "succeeded" || len(child.Attempts) == 0 {
		t.Errorf("item %s: its child is %s with %d attempts, want succeeded: %+v", item, child.Status, len(child.Attempts), events)
		return
	}
	recorded := map[string]wire.Attempt{}
	for _, a := range child.Attempts {
		recorded[strconv.FormatUint(uint64(a.Attempt), 10)] = a
	}
	for attempt := range starts {
		if _, ok := recorded[attempt]; !ok {
			t.Errorf("item %s: attempt %s started but the cluster records attempts %+v", item, attempt, child.Attempts)
		}
	}
	last := child.Attempts[len(child.Attempts)-1]
	if starts[strconv.FormatUint(uint64(last.Attempt), 10)] != 1 {
		t.Errorf("item %s: the last attempt %d (%s) never started its step: %+v", item, last.Attempt, last.Outcome, events)
	}
	for _, a := range child.Attempts[:len(child.Attempts)-1] {
		if starts[strconv.FormatUint(uint64(a.Attempt), 10)] == 0 && !strings.HasPrefix(a.Outcome, "reclaimed") {
			t.Errorf("item %s: attempt %d never started its step yet ended %q, want reclaimed", item, a.Attempt, a.Outcome)
		}
	}
}

// joinFiles is the text of every file in dir.
func joinFiles(t *testing.T, dir string) string {
	t.Helper()
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err == nil {
			b.Write(data)
		}
	}
	return b.String()
}
