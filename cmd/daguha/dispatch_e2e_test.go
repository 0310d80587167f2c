package main

// Process-level tests of dispatch: real servers, real workers, real gRPC.

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

func getRun(a *clustertest.Agent, id string) (wire.Run, error) {
	var run wire.Run
	code, err := a.GetJSON("/api/v2/dag-runs/"+id, &run)
	if err == nil && code != 200 {
		err = fmt.Errorf("run %s: HTTP %d", id, code)
	}
	return run, err
}

// listRuns returns every run by id, read from any running server.
func listRuns(c *clustertest.Cluster) (map[string]wire.Run, error) {
	var lastErr error
	for _, a := range c.Running() {
		var body wire.RunList
		code, err := a.GetJSON("/api/v2/dag-runs?limit=10000", &body)
		if err != nil || code != 200 {
			lastErr = fmt.Errorf("%s: HTTP %d %v", a.Name, code, err)
			continue
		}
		runs := map[string]wire.Run{}
		for _, r := range body.Runs {
			runs[r.DagRunID] = r
		}
		return runs, nil
	}
	return nil, lastErr
}

func mustEnqueue(t *testing.T, a *clustertest.Agent, id string, selector map[string]string, command string) {
	t.Helper()
	var resp wire.Enqueued
	code, err := a.PostJSONTimeout("/api/v2/dag-runs", inlineRun(id, selector, command), &resp, 30*time.Second)
	if err != nil || code != 201 {
		t.Fatalf("enqueue %s on %s: HTTP %d, %v", id, a.Name, code, err)
	}
}

// waitFinished waits until every run in ids has the given status.
func waitFinished(t *testing.T, c *clustertest.Cluster, ids []string, want string, timeout time.Duration) map[string]wire.Run {
	t.Helper()
	var runs map[string]wire.Run
	clustertest.WaitFor(t, timeout, fmt.Sprintf("%d runs to be %s", len(ids), want), func() (bool, string) {
		var err error
		runs, err = listRuns(c)
		if err != nil {
			return false, err.Error()
		}
		counts := map[string]int{}
		for _, id := range ids {
			counts[runs[id].Status]++
		}
		return counts[want] == len(ids), fmt.Sprintf("statuses %v", counts)
	})
	return runs
}

func startProcess(t *testing.T, p *clustertest.Process) *clustertest.Process {
	t.Helper()
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

// Acceptance 2: runs go only to workers whose labels satisfy their
// selector; a run nobody matches waits with the reason and runs as soon as
// a matching worker joins.
func TestRunsGoToWorkersMatchingTheirSelector(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	startProcess(t, c.NewWorker("gpu-worker", "-labels=gpu=true,cuda=11.8", "-max-active-runs=4"))
	startProcess(t, c.NewDaguWorker("region-worker", followerOf(c, leader), "--worker.labels=region=eu-west-1,compliance=gdpr", "--worker.max-active-runs=4"))
	startProcess(t, c.NewWorker("plain-worker", "-max-active-runs=4"))

	selectors := map[string]map[string]string{
		"gpu":    {"gpu": "true"},
		"region": {"region": "eu-west-1"},
		"any":    nil,
	}
	var ids []string
	for kind, selector := range selectors {
		for i := 0; i < 6; i++ {
			id := fmt.Sprintf("%s-%d", kind, i)
			mustEnqueue(t, c.Agents[i%3], id, selector, "echo "+id)
			ids = append(ids, id)
		}
	}
	mustEnqueue(t, leader, "nobody", map[string]string{"zone": "moon"}, "echo late")
	runs := waitFinished(t, c, ids, "succeeded", 90*time.Second)
	anyWorkers := map[string]bool{}
	for _, id := range ids {
		run := runs[id]
		switch {
		case strings.HasPrefix(id, "gpu-") && run.WorkerID != "gpu-worker":
			t.Errorf("run %s with gpu=true ran on %s", id, run.WorkerID)
		case strings.HasPrefix(id, "region-") && run.WorkerID != "region-worker":
			t.Errorf("run %s with region=eu-west-1 ran on %s", id, run.WorkerID)
		case strings.HasPrefix(id, "any-"):
			anyWorkers[run.WorkerID] = true
		}
		if len(run.Steps) != 1 || !strings.Contains(run.Steps[0].OutputTail, id) {
			t.Errorf("run %s: steps %+v do not carry its output", id, run.Steps)
		}
	}
	t.Logf("runs without a selector ran on %v", anyWorkers)

	nobody, err := getRun(leader, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	if nobody.Status != "queued" || nobody.Reason != "no worker matches selector zone=moon" {
		t.Fatalf("run nobody can take: status %q, reason %q", nobody.Status, nobody.Reason)
	}
	startProcess(t, c.NewWorker("moon-worker", "-labels=zone=moon"))
	runs = waitFinished(t, c, []string{"nobody"}, "succeeded", 60*time.Second)
	if runs["nobody"].WorkerID != "moon-worker" {
		t.Fatalf("run nobody ran on %s", runs["nobody"].WorkerID)
	}
}

// Acceptance 3: no worker ever holds more runs than its maxActiveRuns,
// checked from the run records of many short runs.
func TestMaxActiveRunsIsNeverExceeded(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	c.WaitLeader(t, 30*time.Second)
	limits := map[string]int{"narrow": 2, "wide": 3}
	for id, limit := range limits {
		startProcess(t, c.NewWorker(id, fmt.Sprintf("-max-active-runs=%d", limit)))
	}
	var ids []string
	for i := 0; i < 60; i++ {
		id := fmt.Sprintf("short-%d", i)
		mustEnqueue(t, c.Agents[i%3], id, nil, "sleep 0.1")
		ids = append(ids, id)
	}
	runs := waitFinished(t, c, ids, "succeeded", 120*time.Second)
	type event struct {
		at    time.Time
		delta int
	}
	events := map[string][]event{}
	for _, id := range ids {
		for _, a := range runs[id].Attempts {
			start, err1 := time.Parse(time.RFC3339Nano, a.StartedAt)
			end, err2 := time.Parse(time.RFC3339Nano, a.EndedAt)
			if err1 != nil || err2 != nil {
				t.Fatalf("run %s attempt %d has no start or end: %+v", id, a.Attempt, a)
			}
			events[a.WorkerID] = append(events[a.WorkerID], event{start, +1}, event{end, -1})
		}
	}
	for worker, list := range events {
		// Ends sort before starts at the same instant: a slot freed and
		// taken in the same moment is not an overlap.
		sort.Slice(list, func(i, j int) bool {
			if list[i].at.Equal(list[j].at) {
				return list[i].delta < list[j].delta
			}
			return list[i].at.Before(list[j].at)
		})
		held, most := 0, 0
		for _, e := range list {
			held += e.delta
			most = max(most, held)
		}
		if most > limits[worker] {
			t.Errorf("worker %s held %d runs at once; its maxActiveRuns is %d", worker, most, limits[worker])
		}
		t.Logf("worker %s: %d attempts, at most %d at once (limit %d)", worker, len(list)/2, most, limits[worker])
		if most < 2 {
			t.Errorf("worker %s never ran two runs at once: the test did not load it", worker)
		}
	}
}

// Acceptance 4: the leader is killed while 500 runs are in flight; every
// run finishes exactly once, workers reconnect on their own, none is left
// queued.
func TestLeaderKillWith500RunsInFlight(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	ids := make([]string, 500)
	for i := range ids {
		ids[i] = fmt.Sprintf("bulk-%03d", i)
	}
	// Enqueue from several clients at once, through every server.
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	for g := 0; g < 5; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < len(ids); i += 5 {
				target := c.Agents[(g+i)%3]
				var resp struct{}
				code, err := target.PostJSONTimeout("/api/v2/dag-runs", inlineRun(ids[i], nil, "sleep 1"), &resp, 30*time.Second)
				if err != nil || code != 201 {
					errs <- fmt.Errorf("enqueue %s: HTTP %d %v", ids[i], code, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The workers start once every run is queued: enqueueing 500 runs on
	// a loaded machine may take longer than running most of them (a CI
	// run found all 500 done before the kill), so the window in which
	// the leader dies with runs in flight opens only now.
	var workers []*clustertest.Process
	for i := 0; i < 3; i++ {
		workers = append(workers, startProcess(t, c.NewWorker(fmt.Sprintf("w%d", i), "-max-active-runs=16")))
	}
	clustertest.WaitFor(t, 60*time.Second, "some runs to finish and many to be in flight", func() (bool, string) {
		runs, err := listRuns(c)
		if err != nil {
			return false, err.Error()
		}
		done := 0
		for _, r := range runs {
			if r.Status == "succeeded" {
				done++
			}
		}
		return done >= 50 && done <= 300, fmt.Sprintf("%d succeeded", done)
	})
	leader.Kill()
	t.Logf("killed leader %s", leader.Name)
	runs := waitFinished(t, c, ids, "succeeded", 180*time.Second)
	reclaimed := 0
	for _, id := range ids {
		succeeded := 0
		for _, a := range runs[id].Attempts {
			if a.Outcome == "succeeded" {
				succeeded++
			}
			if strings.HasPrefix(a.Outcome, "reclaimed") {
				reclaimed++
			}
		}
		if succeeded != 1 {
			t.Errorf("run %s has %d succeeded attempts: %+v", id, succeeded, runs[id].Attempts)
		}
	}
	for _, w := range workers {
		if !w.Running() {
			t.Errorf("worker %s exited; it should have reconnected on its own", w.Name)
		}
	}
	t.Logf("500 runs succeeded once each; %d attempts were reclaimed", reclaimed)
}

// Acceptance 5: a worker paused mid-run loses the run to another worker
// (attempt 2); resumed, it is told it no longer holds the run, and the
// recorded result stays attempt 2's.
func TestPausedWorkerLosesItsRun(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ExtraArgs: []string{"-lease-ttl=2s"}})
	leader := c.WaitLeader(t, 30*time.Second)
	first := startProcess(t, c.NewWorker("first", "-max-active-runs=1"))
	mustEnqueue(t, leader, "paused-run", nil, "sleep 3; echo done")
	var run wire.Run
	clustertest.WaitFor(t, 30*time.Second, "the run to start on the first worker", func() (bool, string) {
		var err error
		run, err = getRun(leader, "paused-run")
		return err == nil && run.Status == "running", fmt.Sprintf("%+v %v", run, err)
	})
	if run.WorkerID != "first" {
		t.Fatalf("run started on %s", run.WorkerID)
	}
	first.Pause()
	second := startProcess(t, c.NewWorker("second", "-max-active-runs=1"))
	runs := waitFinished(t, c, []string{"paused-run"}, "succeeded", 60*time.Second)
	run = runs["paused-run"]
	if run.WorkerID != "second" || run.Attempt != 2 || len(run.Attempts) != 2 || !strings.HasPrefix(run.Attempts[0].Outcome, "reclaimed") {
		t.Fatalf("after the pause: %+v", run)
	}
	first.Resume()
	clustertest.WaitFor(t, 30*time.Second, "the resumed worker to give the run up", func() (bool, string) {
		tail := first.Tail(200)
		return strings.Contains(tail, "run abandoned: this worker no longer holds it"), "not yet in its log"
	})
	after, err := getRun(leader, "paused-run")
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != "succeeded" || after.WorkerID != "second" || after.Attempt != 2 || after.FinishedAt != run.FinishedAt {
		t.Fatalf("the resumed worker changed the record: before %+v, after %+v", run, after)
	}
	if second.Running() == false {
		t.Fatal("second worker exited")
	}
}

// Acceptance 6: a forged token and a token signed with another key are
// refused and change nothing. The test speaks gRPC as a worker would.
func TestForgedLeaseTokensAreRefused(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ExtraArgs: []string{"-coordinator.signing-key=test-cluster-key"}})
	leader := c.WaitLeader(t, 30*time.Second)
	mustEnqueue(t, leader, "guarded", map[string]string{"only": "test"}, "true")
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", followerOf(c, leader).GRPCPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := daguhav1.NewCoordinatorServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := client.Poll(ctx, &daguhav1.PollRequest{Worker: &daguhav1.WorkerInfo{Id: "test-worker", Labels: map[string]string{"only": "test"}, MaxActiveRuns: 1}, WaitMillis: 10000})
	if err != nil || resp.GetTask() == nil {
		t.Fatalf("poll: %v, %v", resp, err)
	}
	task := resp.GetTask()
	claims := dispatch.LeaseClaims{RunID: "guarded", Attempt: task.GetRun().GetAttempt(), WorkerID: "test-worker", FencingToken: task.GetRun().GetFencingToken()}
	otherKey, _ := dispatch.NewSigner([]byte("some-other-key"))
	signedElsewhere, _ := otherKey.Sign(claims)
	payload, mac, _ := strings.Cut(task.GetLeaseToken(), ".")
	flipped := []byte(mac)
	flipped[len(flipped)/2] ^= 4
	bigger := claims
	bigger.FencingToken += 1000
	forgedPayload, _, _ := strings.Cut(mustSign(t, otherKey, bigger), ".")

	for name, token := range map[string]string{
		"signed with another key":       signedElsewhere,
		"signature altered":             payload + "." + string(flipped),
		"claims forged, real signature": forgedPayload + "." + mac,
		"not a token":                   "let-me-in",
	} {
		_, err := client.ReportStep(ctx, &daguhav1.ReportStepRequest{LeaseToken: token, Step: &daguhav1.StepState{Name: "step", Status: daguhav1.StepStatus_STEP_STATUS_SUCCEEDED}})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("report with a token %s: %v, want PermissionDenied", name, err)
		}
		_, err = client.FinishRun(ctx, &daguhav1.FinishRunRequest{LeaseToken: token, Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("finish with a token %s: %v, want PermissionDenied", name, err)
		}
	}
	run, err := getRun(leader, "guarded")
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != "running" || len(run.Steps) != 0 || run.WorkerID != "test-worker" {
		t.Fatalf("refused reports changed the run: %+v", run)
	}
	if _, err := client.FinishRun(ctx, &daguhav1.FinishRunRequest{LeaseToken: task.GetLeaseToken(), Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED}); err != nil {
		t.Fatalf("finish with the real token: %v", err)
	}
	if _, err := client.FinishRun(ctx, &daguhav1.FinishRunRequest{LeaseToken: task.GetLeaseToken(), Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED}); err != nil {
		t.Fatalf("a retried finish must be accepted and change nothing: %v", err)
	}
	_, err = client.FinishRun(ctx, &daguhav1.FinishRunRequest{LeaseToken: task.GetLeaseToken(), Status: daguhav1.RunStatus_RUN_STATUS_FAILED})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a second, different finish: %v, want FailedPrecondition", err)
	}
	if run, _ := getRun(leader, "guarded"); run.Status != "succeeded" {
		t.Fatalf("after the finishes: %+v", run)
	}
}

func mustSign(t *testing.T, s *dispatch.Signer, claims dispatch.LeaseClaims) string {
	t.Helper()
	token, err := s.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// Acceptance 7: the same run id enqueued twice, through two servers at
// once, is one run.
func TestSameRunIDThroughTwoServersIsOneRun(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	c.WaitLeader(t, 30*time.Second)
	for round := 0; round < 10; round++ {
		id := fmt.Sprintf("twice-%d", round)
		codes := make(chan int, 2)
		var wg sync.WaitGroup
		for _, a := range c.Agents[:2] {
			wg.Add(1)
			go func(a *clustertest.Agent) {
				defer wg.Done()
				var resp struct{}
				code, err := a.PostJSONTimeout("/api/v2/dag-runs", inlineRun(id, nil, "true"), &resp, 30*time.Second)
				if err != nil {
					code = -1
				}
				codes <- code
			}(a)
		}
		wg.Wait()
		close(codes)
		var got []int
		for code := range codes {
			got = append(got, code)
		}
		sort.Ints(got)
		if fmt.Sprint(got) != "[200 201]" {
			t.Fatalf("round %d: the two enqueues answered %v, want one 201 (created) and one 200 (existing)", round, got)
		}
	}
	runs, err := listRuns(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 10 {
		t.Fatalf("%d runs recorded for 10 ids enqueued twice", len(runs))
	}
}

// Cancelling a queued run ends it at once; cancelling a running one makes
// its worker stop the command and report it cancelled. A run whose command
// fails is a failed run. The gRPC health service answers on every server.
func TestCancelAndFailure(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	follower := followerOf(c, leader)
	// The default health service is SERVING once the server knows a
	// leader, which a follower learns a moment after the leader itself.
	for _, a := range c.Agents {
		conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", a.GRPCPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		clustertest.WaitFor(t, 15*time.Second, "grpc.health.v1 SERVING on "+a.Name, func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING, fmt.Sprintf("%v, %v", resp, err)
		})
		conn.Close()
	}

	mustEnqueue(t, follower, "waits-forever", map[string]string{"nobody": "here"}, "true")
	var body wire.Cancelled
	if code, err := follower.PostJSON("/api/v2/dag-runs/waits-forever/cancel", nil, &body); err != nil || code != 200 {
		t.Fatalf("cancel a queued run: HTTP %d %v", code, err)
	}
	waitFinished(t, c, []string{"waits-forever"}, "cancelled", 30*time.Second)

	startProcess(t, c.NewWorker("canceller", "-max-active-runs=2"))
	mustEnqueue(t, leader, "long", nil, "echo started; sleep 60")
	mustEnqueue(t, leader, "broken", nil, "echo about to fail; exit 7")
	clustertest.WaitFor(t, 30*time.Second, "the long run to be running", func() (bool, string) {
		run, err := getRun(leader, "long")
		return err == nil && run.Status == "running", fmt.Sprintf("%+v %v", run, err)
	})
	started := time.Now()
	if code, err := follower.PostJSON("/api/v2/dag-runs/long/cancel", nil, &body); err != nil || code != 200 {
		t.Fatalf("cancel a running run: HTTP %d %v", code, err)
	}
	runs := waitFinished(t, c, []string{"long"}, "cancelled", 30*time.Second)
	t.Logf("a running run was cancelled %s after the request", time.Since(started).Round(time.Millisecond))
	if steps := runs["long"].Steps; len(steps) != 1 || steps[0].Status != "cancelled" {
		t.Fatalf("cancelled run's steps: %+v", steps)
	}
	runs = waitFinished(t, c, []string{"broken"}, "failed", 30*time.Second)
	if steps := runs["broken"].Steps; len(steps) != 1 || steps[0].Status != "failed" || !strings.Contains(steps[0].OutputTail, "about to fail") {
		t.Fatalf("failed run's steps: %+v", steps)
	}
	if code, _ := follower.PostJSON("/api/v2/dag-runs/broken/cancel", nil, &body); code != 409 {
		t.Fatalf("cancelling a finished run answered HTTP %d, want 409", code)
	}
	if code, _ := follower.PostJSON("/api/v2/dag-runs/no-such-run/cancel", nil, &body); code != 404 {
		t.Fatalf("cancelling an unknown run answered HTTP %d, want 404", code)
	}
}

// Workflows acceptance 6: `daguha enqueue FILE --wait` prints step
// progress and exits 0 for a run that succeeds and non-zero for one that
// fails; `daguha status` shows the run.
func TestEnqueueAndStatusCommands(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	startProcess(t, c.NewWorker("cli-worker", "-labels=gpu=true"))
	dir := t.TempDir()
	good := writeFile(t, filepath.Join(dir, "train.yaml"), "name: train-model\nworkerSelector:\n  gpu: \"true\"\nparams: EPOCHS=1\nsteps:\n  - name: prepare\n    command: echo preparing\n  - name: train\n    command: echo trained for $EPOCHS epochs\n", 0o644)
	bad := writeFile(t, filepath.Join(dir, "broken.yaml"), "name: broken\nsteps:\n  - name: ok\n    command: \"true\"\n  - name: boom\n    command: echo about to fail; exit 7\n  - name: never\n    command: \"true\"\n", 0o644)
	address := "-address=" + followerOf(c, leader).HTTPAddr()

	out, errOut, code := runCLI(t, "enqueue", address, "--run-id=cli-1", "--wait", good, "--", "EPOCHS=3")
	if code != 0 || strings.TrimSpace(out) != "cli-1" {
		t.Fatalf("enqueue --wait of a succeeding DAG: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	for _, want := range []string{"running on cli-worker", "prepare", "train", "succeeded", "run cli-1 succeeded"} {
		if !strings.Contains(errOut, want) {
			t.Fatalf("progress does not show %q:\n%s", want, errOut)
		}
	}
	out, errOut, code = runCLI(t, "enqueue", address, "--run-id=cli-2", "--wait", bad)
	if code == 0 || !strings.Contains(errOut, "boom") || !strings.Contains(errOut, "failed") {
		t.Fatalf("enqueue --wait of a failing DAG: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	out, errOut, code = runCLI(t, "status", address, "cli-1")
	if code != 0 || !strings.Contains(out, "succeeded") || !strings.Contains(out, "cli-worker") || !strings.Contains(out, "trained for 3 epochs") ||
		!strings.Contains(out, "params    EPOCHS=3\n") {
		t.Fatalf("daguha status: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runCLI(t, "status", address, "cli-2")
	if code != 0 || !strings.Contains(out, "exit 7") || !strings.Contains(out, "skipped") {
		t.Fatalf("daguha status of the failed run: exit %d\n%s%s", code, out, errOut)
	}
	_, errOut, code = runCLI(t, "status", address, "no-such-run")
	if code == 0 || !strings.Contains(errOut, `no DAG run with id "no-such-run"`) {
		t.Fatalf("daguha status of an unknown run: exit %d\n%s", code, errOut)
	}
}
