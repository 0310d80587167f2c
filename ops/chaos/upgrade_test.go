package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/buildinfo"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/client"
	"github.com/daguha/daguha/ops/wire"
)

// The upgrade test (docs/upgrades.md): a cluster of the previous release
// (testdata/previous-release) runs under load, its servers are replaced one
// at a time by this checkout's build (the followers, then the leader),
// then its workers; the fault suite's checkers then hold the history to
// the same promises as a fault run.

// previousRelease is the release a running cluster is rolled from.
type previousRelease struct {
	Commit, Name string
}

// readPreviousRelease reads testdata/previous-release.
func readPreviousRelease(t *testing.T) previousRelease {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "previous-release"))
	if err != nil {
		t.Fatal(err)
	}
	var rel previousRelease
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, _ := strings.Cut(line, " ")
		switch key {
		case "commit":
			rel.Commit = strings.TrimSpace(value)
		case "name":
			rel.Name = strings.TrimSpace(value)
		default:
			t.Fatalf("testdata/previous-release: unknown key %q", key)
		}
	}
	if len(rel.Commit) != 40 || rel.Name == "" {
		t.Fatalf("testdata/previous-release: want a 40-digit commit and a name, got %+v", rel)
	}
	return rel
}

var (
	previousBuild     sync.Mutex
	previousBinary    string
	previousBuildDir  string
	previousBuildFail error
)

// buildPreviousRelease builds the previous release's daguha from its
// commit in this clone's history (once per test binary): git archive of
// the commit, then go build. A clone without the commit (a shallow one)
// or without git skips, saying how to get it.
func buildPreviousRelease(t *testing.T) (string, previousRelease) {
	t.Helper()
	rel := readPreviousRelease(t)
	previousBuild.Lock()
	defer previousBuild.Unlock()
	if previousBinary != "" || previousBuildFail != nil {
		if previousBuildFail != nil {
			t.Fatal(previousBuildFail)
		}
		return previousBinary, rel
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("the upgrade test builds the previous release from its commit with git: install git")
	}
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("the upgrade test unpacks the previous release with tar: install tar")
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("the upgrade test needs this checkout's git history (git rev-parse: %v)", err)
	}
	repo := strings.TrimSpace(string(root))
	if err := exec.Command("git", "-C", repo, "cat-file", "-e", rel.Commit+"^{commit}").Run(); err != nil {
		t.Skipf("the previous release's commit %s (%s) is not in this clone (a shallow clone?): git fetch --unshallow, then run it again", rel.Commit, rel.Name)
	}
	dir, err := os.MkdirTemp("", "daguha-previous-release-")
	if err != nil {
		t.Fatal(err)
	}
	previousBuildDir = dir
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	t.Logf("building the previous release %s (%s) from its commit", rel.Name, rel.Commit[:12])
	archive := exec.Command("git", "-C", repo, "archive", "--format=tar", rel.Commit)
	untar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	untar.Stdin = pipe
	var archiveErr, untarErr bytes.Buffer
	archive.Stderr, untar.Stderr = &archiveErr, &untarErr
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		previousBuildFail = fmt.Errorf("git archive %s: %v: %s", rel.Commit, err, archiveErr.String())
	}
	if err := untar.Wait(); err != nil && previousBuildFail == nil {
		previousBuildFail = fmt.Errorf("unpack %s: %v: %s", rel.Commit, err, untarErr.String())
	}
	if previousBuildFail == nil {
		bin := filepath.Join(dir, "daguha-"+rel.Name)
		build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/daguha")
		build.Dir = src
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			previousBuildFail = fmt.Errorf("build the previous release %s (%s): %v\n%s", rel.Name, rel.Commit, err, out)
		} else {
			previousBinary = bin
		}
	}
	if previousBuildFail != nil {
		t.Fatal(previousBuildFail)
	}
	t.Logf("built the previous release in %s", time.Since(started).Round(time.Second))
	return previousBinary, rel
}

// removePreviousBuild removes the previous release's build (TestMain).
func removePreviousBuild() {
	if previousBuildDir != "" {
		os.RemoveAll(previousBuildDir)
	}
}

// The DAGs the upgrade runs besides the clients' inline ones: a parent
// stored by name whose second step runs a stored child, each step
// recording its execution as the chaos steps do. A parent holds its
// worker slot while its child runs (docs/workflows.md), so at most two
// parents run at once: parents enqueued faster than they end must not
// take every slot of the two workers and leave their children queued.
const (
	upgradeParent = "upgrade-parent"
	upgradeChild  = "upgrade-child"
)

var upgradeDagFiles = []wire.DagSource{
	{Name: upgradeParent + ".yaml", Content: fmt.Sprintf(`name: %s
maxActiveRuns: 2
steps:
  - name: before-child
    command: %q
  - name: child
    run: %s
    depends:
      - before-child
`, upgradeParent, execLine, upgradeChild)},
	{Name: upgradeChild + ".yaml", Content: fmt.Sprintf(`name: %s
steps:
  - name: work
    command: %q
`, upgradeChild, execLine)},
}

// retryProbe is the run the upgrade asks to retry: refused while a server
// of the previous release runs (it would not know the command), accepted
// once every server is upgraded. It is kept out of the clients' history:
// a retried run legitimately finishes once per attempt.
const retryProbe = "upgrade-retry-probe"

// snapshotIndex is the index of the newest Raft snapshot in a server's
// data directory (0: none).
func snapshotIndex(s *Server) (uint64, error) {
	dir := filepath.Join(s.DataDir, "raft", "snapshots")
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	var newest uint64
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name(), "meta.json"))
		if err != nil {
			continue // a snapshot being written
		}
		var meta struct{ Index uint64 }
		if err := json.Unmarshal(data, &meta); err != nil {
			return 0, fmt.Errorf("%s: %v", e.Name(), err)
		}
		newest = max(newest, meta.Index)
	}
	return newest, nil
}

// sinceLastStart is the part of a process log after its last start marker.
func sinceLastStart(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	text := string(data)
	if i := strings.LastIndex(text, "=== start "); i >= 0 {
		text = text[i:]
	}
	return text, nil
}

// parents enqueues the stored parent DAG by name through random servers,
// recording each call in the history, until stopped (bounded in count).
type parents struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func startParents(h *Harness, hist *History, seed uint64) *parents {
	p := &parents{stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		rng := rand.New(rand.NewPCG(seed, 99))
		for n := 0; n < 400; n++ {
			select {
			case <-p.stop:
				return
			case <-time.After(700 * time.Millisecond):
			}
			s := h.Servers[rng.IntN(len(h.Servers))]
			if !s.Running() {
				continue
			}
			hist.Add(EnqueueByName(s, 50, fmt.Sprintf("parent-%d", n), upgradeParent))
		}
	}()
	return p
}

func (p *parents) Stop() {
	close(p.stop)
	p.wg.Wait()
}

// waitRun waits until the leader records run id at attempt with status.
func waitRun(t *testing.T, h *Harness, id string, attempt uint32, status string) {
	t.Helper()
	clustertest.WaitFor(t, 90*time.Second, fmt.Sprintf("run %s %s at attempt %d", id, status, attempt), func() (bool, string) {
		run, found, err := getFinal(h, id)
		if err != nil || !found {
			return false, fmt.Sprintf("found %v, %v", found, err)
		}
		return run.Status == status && run.Attempt == attempt, fmt.Sprintf("%s at attempt %d", run.Status, run.Attempt)
	})
}

// replaceServer stops a server, starts it again with bin on the same data
// directory, and waits until it has read its snapshot (the previous
// release's) and caught up with the cluster's leader.
func replaceServer(t *testing.T, h *Harness, s *Server, bin string) {
	t.Helper()
	snap, err := snapshotIndex(s)
	if err != nil {
		t.Fatal(err)
	}
	if snap == 0 {
		t.Fatalf("%s has no snapshot on disk to read after the upgrade", s.Name)
	}
	t.Logf("upgrading %s (its snapshot on disk: index %d)", s.Name, snap)
	s.Stop()
	s.SetBin(bin)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	leader := h.WaitLeader(90 * time.Second)
	lead, err := leader.API().WithTimeout(10 * time.Second).Self(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// A server stopped gracefully leaves the Raft configuration and is
	// added back when it returns: it is caught up once it has applied what
	// the leader had committed when it came back.
	target := max(snap, lead.Raft.CommitIndex)
	clustertest.WaitFor(t, 90*time.Second, s.Name+" to read the previous release's snapshot and log and catch up", func() (bool, string) {
		self, err := s.API().Self(context.Background())
		if err != nil {
			return false, err.Error()
		}
		if self.Raft.AppliedIndex < target {
			return false, fmt.Sprintf("%s applied %d; want %d", s.Name, self.Raft.AppliedIndex, target)
		}
		log, err := sinceLastStart(s.LogPath())
		if err != nil {
			return false, err.Error()
		}
		if !strings.Contains(log, "restored from snapshot") {
			return false, s.Name + " has not logged reading its snapshot since its start"
		}
		return true, ""
	})
	// What the previous release recorded before its snapshot is there,
	// read from this server alone.
	var run wire.Run
	code, err := call(s, http.MethodGet, "/api/v2/dag-runs/pre-0?stale", nil, &run, 10*time.Second)
	if err != nil || code != http.StatusOK || run.Status != "succeeded" {
		t.Fatalf("%s after its upgrade: run pre-0 reads HTTP %d %q, %v; want succeeded", s.Name, code, run.Status, err)
	}
}

// waitVersions waits until s's view of the Raft configuration shows each
// server at the version want gives it, and returns what it shows.
func waitVersions(t *testing.T, s *Server, want func(name string) string) {
	t.Helper()
	clustertest.WaitFor(t, 60*time.Second, "the servers' versions in "+s.Name+"'s peers", func() (bool, string) {
		peers, err := s.API().WithTimeout(10 * time.Second).Peers(context.Background())
		if err != nil {
			return false, err.Error()
		}
		seen := map[string]string{}
		for _, p := range peers {
			seen[p.ID] = p.Version
		}
		for name, version := range seen {
			if version != want(name) {
				return false, fmt.Sprintf("peers say %v", seen)
			}
		}
		return len(seen) == 3, fmt.Sprintf("peers say %v", seen)
	})
}

// leadFromUpgraded hands leadership to the first upgraded server, as
// docs/upgrades.md allows: the new build then leads servers of the
// previous release, the mixed state in which a leader could write what
// they cannot apply.
func leadFromUpgraded(t *testing.T, h *Harness, upgraded *Server) {
	t.Helper()
	clustertest.WaitFor(t, 60*time.Second, upgraded.Name+" to lead", func() (bool, string) {
		leader, why := h.Leader()
		if leader == upgraded {
			return true, ""
		}
		if leader == nil {
			return false, why
		}
		if err := leader.API().WithTimeout(10*time.Second).TransferLeadership(context.Background(), upgraded.Name); err != nil {
			return false, "transfer leadership: " + err.Error()
		}
		return false, "transferred; waiting"
	})
}

// retryWhileMixed asks the upgraded leader to retry the probe while
// servers of the previous release follow it. The current build refuses
// (it sees servers that would not know the command); it returns what went
// wrong otherwise.
func retryWhileMixed(t *testing.T, h *Harness, upgraded *Server) error {
	t.Helper()
	_, err := upgraded.API().WithTimeout(30*time.Second).Retry(context.Background(), retryProbe, "")
	if err == nil {
		return errors.New("the retry was accepted while servers of the previous release run")
	}
	if code := client.StatusCode(err); code != http.StatusConflict {
		return fmt.Errorf("the retry while versions are mixed: %v; want HTTP 409 naming the servers that must be upgraded first", err)
	}
	if !strings.Contains(err.Error(), "state schema") {
		return fmt.Errorf("the refusal does not say what the servers lack: %v", err)
	}
	t.Logf("retry while versions are mixed, refused: %v", err)
	for _, s := range h.Servers {
		if !s.Running() {
			return fmt.Errorf("%s stopped after the refused retry:\n%s", s.Name, s.Tail(20))
		}
	}
	return nil
}

// refusedThroughFollower asks an upgraded follower for the retry while
// one server of the previous release remains: forwarded to the upgraded
// leader, refused there, and back as the same refusal through daguha's
// route, Dagu's route and daguha retry (the current build's CLI).
func refusedThroughFollower(t *testing.T, follower *Server, current string) {
	t.Helper()
	_, err := follower.API().WithTimeout(30*time.Second).Retry(context.Background(), retryProbe, "")
	if client.StatusCode(err) != http.StatusConflict || !strings.Contains(err.Error(), "state schema") {
		t.Fatalf("retry through the follower %s while one server is not upgraded: %v; want HTTP 409 naming it", follower.Name, err)
	}
	var dagu map[string]any
	code, err := call(follower, http.MethodPost, "/api/v1/dag-runs/chaos/"+retryProbe+"/retry", map[string]string{"dagRunId": retryProbe}, &dagu, 30*time.Second)
	if err != nil || code != http.StatusConflict {
		t.Fatalf("Dagu's retry through %s: HTTP %d %v; want 409", follower.Name, code, err)
	}
	cli := exec.Command(current, "retry", "--run-id="+retryProbe, "-address="+follower.HTTPAddr(), "chaos")
	out, err := cli.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "state schema") {
		t.Fatalf("daguha retry through %s: %v\n%s\nwant it to fail with the refusal", follower.Name, err, out)
	}
	t.Logf("daguha retry through the follower %s: %s", follower.Name, strings.TrimSpace(string(out)))
}

// startPreviousCluster starts three servers and two workers of the
// previous release, stores the DAGs, runs the runs the upgrade reads back,
// and leaves a snapshot on every server's disk.
func startPreviousCluster(t *testing.T, prev string, hist *History) *Harness {
	t.Helper()
	h := NewHarness(t, Options{Servers: 3, Workers: 2, Bin: prev, DiskServer: -1})
	h.Start()
	leader := h.WaitLeader(60 * time.Second)
	if _, err := leader.API().WithTimeout(30*time.Second).PushDags(context.Background(), upgradeDagFiles); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		op := Enqueue(leader, 100, fmt.Sprintf("pre-%d", i), chaosDag("0"))
		hist.Add(op)
		if op.Result != ResultOK {
			t.Fatalf("enqueue on the previous release: %s", op)
		}
	}
	if op := Enqueue(leader, 101, retryProbe, chaosDag("0")); op.Result != ResultOK {
		t.Fatalf("enqueue on the previous release: %s", op)
	}
	for _, id := range []string{"pre-0", "pre-1", "pre-2", "pre-3", retryProbe} {
		waitRun(t, h, id, 1, "succeeded")
	}
	// A snapshot on every server: the leader takes the state back from an
	// archive of itself (nothing changes while nothing runs), which Raft
	// stores as a snapshot and sends to the followers as one.
	saved, err := leader.API().WithTimeout(60 * time.Second).SaveSnapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	archive, err := io.ReadAll(saved)
	saved.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leader.API().WithTimeout(60*time.Second).RestoreSnapshot(context.Background(), bytes.NewReader(archive)); err != nil {
		t.Fatalf("restore the previous release's own archive: %v", err)
	}
	clustertest.WaitFor(t, 60*time.Second, "a snapshot of the previous release on every server's disk", func() (bool, string) {
		for _, s := range h.Servers {
			index, err := snapshotIndex(s)
			if err != nil || index == 0 {
				return false, fmt.Sprintf("%s: snapshot index %d, %v", s.Name, index, err)
			}
		}
		return true, ""
	})
	return h
}

// followersThenLeader orders the servers as the upgrade replaces them.
func followersThenLeader(h *Harness) []*Server {
	leader := h.WaitLeader(60 * time.Second)
	var order []*Server
	for _, s := range h.Servers {
		if s != leader {
			order = append(order, s)
		}
	}
	return append(order, leader)
}

func TestUpgradeFromPreviousRelease(t *testing.T) {
	prev, rel := buildPreviousRelease(t)
	current := binary(t, "")
	hist := &History{}
	h := startPreviousCluster(t, prev, hist)
	began := time.Now()

	leader := h.WaitLeader(30 * time.Second)
	if err := PushCronDag(leader); err != nil {
		t.Fatal(err)
	}
	const seed = 20261207
	clients := StartClients(h, hist, ClientOptions{Clients: 3, MaxOps: 3000, Pause: 150 * time.Millisecond, Seed: seed, FirstStepSleep: "0.2"})
	parentLoop := startParents(h, hist, seed)
	stopLoad := func() {
		clients.Stop()
		parentLoop.Stop()
	}
	defer func() {
		if clients != nil {
			stopLoad()
		}
	}()
	clustertest.WaitFor(t, 60*time.Second, "load on the previous release", func() (bool, string) {
		n := 0
		for _, op := range hist.Ops() {
			if op.Kind == OpEnqueue && op.Result == ResultOK {
				n++
			}
		}
		return n >= 15, fmt.Sprintf("%d acknowledged enqueues", n)
	})

	order := followersThenLeader(h)
	replaceServer(t, h, order[0], current)
	leadFromUpgraded(t, h, order[0])
	// What each server runs, from gossip: the previous release advertises
	// no version.
	waitVersions(t, order[0], func(name string) string {
		if name == order[0].Name {
			return buildinfo.FallbackVersion
		}
		return cluster.BeforeFirstRelease
	})
	if err := retryWhileMixed(t, h, order[0]); err != nil {
		t.Fatal(err)
	}
	replaceServer(t, h, order[1], current)
	refusedThroughFollower(t, order[1], current)
	replaceServer(t, h, order[2], current)
	for _, w := range h.Workers {
		t.Logf("upgrading %s", w.ID)
		w.Stop()
		w.SetBin(current)
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		h.WaitWorkers(60 * time.Second)
	}

	// Every server and worker runs this build: the retry is taken now.
	leader = h.WaitLeader(30 * time.Second)
	waitVersions(t, leader, func(string) string { return buildinfo.FallbackVersion })
	// A restarted worker's new gossip meta reaches the leader a little
	// after the worker is healthy again.
	clustertest.WaitFor(t, 60*time.Second, "every worker to show "+buildinfo.FallbackVersion+" on the leader", func() (bool, string) {
		workers, err := leader.API().WithTimeout(10*time.Second).Workers(context.Background(), false)
		if err != nil {
			return false, err.Error()
		}
		seen := map[string]string{}
		for _, w := range workers.Workers {
			seen[w.ID] = w.Version
			if w.Version != buildinfo.FallbackVersion {
				return false, fmt.Sprintf("workers run %v", seen)
			}
		}
		return len(seen) == len(h.Workers), fmt.Sprintf("workers run %v", seen)
	})
	if _, err := h.Servers[0].API().WithTimeout(30*time.Second).Retry(context.Background(), retryProbe, ""); err != nil {
		t.Fatalf("retry once every server is upgraded: %v", err)
	}
	waitRun(t, h, retryProbe, 2, "succeeded")
	// The upgraded cluster carries the load a while: cron slots, parents
	// and their children dispatched by the new leader to the new workers.
	upgraded := len(hist.Ops())
	clustertest.WaitFor(t, 60*time.Second, "load on the upgraded cluster", func() (bool, string) {
		return len(hist.Ops()) >= upgraded+30, fmt.Sprintf("%d operations since the upgrade", len(hist.Ops())-upgraded)
	})
	stopLoad()
	clients = nil

	if err := DeleteCronDag(leader); err != nil {
		t.Fatal(err)
	}
	runs, err := Settle(h, 2*time.Minute)
	if err != nil {
		t.Fatalf("settle: %v", err)
	}
	// The retried probe finished once per attempt; the checkers below
	// hold every other run to one finish.
	probe, ok := runs[retryProbe]
	delete(runs, retryProbe)
	if !ok || probe.Status != "succeeded" || probe.Attempt != 2 {
		t.Fatalf("the retried run: %+v", probe)
	}
	attempts := map[uint32]int{}
	for _, w := range h.Workers {
		fs, err := workerFinishes(w.ID, w.LogPath())
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if f.RunID == retryProbe {
				attempts[f.Attempt]++
			}
		}
	}
	if attempts[1] != 1 || attempts[2] != 1 || len(attempts) != 2 {
		t.Fatalf("the retried run's ends by attempt: %v; want one for attempt 1 and one for attempt 2", attempts)
	}

	report := Check(h, hist.Ops(), runs)
	report.Duration = time.Since(began).Round(time.Second).String()
	// Parents by name and their children, through the upgrade.
	children := map[string]int{}
	parentRuns := 0
	for _, run := range runs {
		switch run.DagName {
		case upgradeChild:
			if run.Status == "succeeded" {
				children[run.ParentDagRunID]++
			}
		case upgradeParent:
			parentRuns++
		}
	}
	withChild := 0
	for id, run := range runs {
		if run.DagName != upgradeParent || run.Status != "succeeded" {
			continue
		}
		if children[id] != 1 {
			report.problem(id, "CHILD: parent %s succeeded with %d succeeded children; want 1", id, children[id])
			continue
		}
		withChild++
	}
	t.Logf("upgrade from %s (%s): %s; parents %d, with their child %d", rel.Name, rel.Commit[:12], report.JSON(), parentRuns, withChild)
	if report.Failed() {
		t.Fatal(report.Explain())
	}
	if report.Acked < 20 || report.Finishes < 20 || report.CronRuns < 3 || report.LinearizableRuns < 20 || withChild < 3 {
		t.Fatalf("the history is too thin to prove anything: %s; parents with their child %d", report.JSON(), withChild)
	}
}

// TestUpgradeCheckCatchesAnUncheckedBuild runs the first half of the
// upgrade with a build whose leader does not check its peers' versions
// (tag daguha_upgrade_unchecked): the retry asked of the upgraded server
// while the others run the previous release is written, and the servers
// of the previous release, which do not know the command, stop. This is
// what TestUpgradeFromPreviousRelease's mixed-version retry catches.
func TestUpgradeCheckCatchesAnUncheckedBuild(t *testing.T) {
	prev, _ := buildPreviousRelease(t)
	broken := binary(t, "daguha_upgrade_unchecked")
	hist := &History{}
	h := startPreviousCluster(t, prev, hist)
	order := followersThenLeader(h)
	replaceServer(t, h, order[0], broken)
	leadFromUpgraded(t, h, order[0])
	err := retryWhileMixed(t, h, order[0])
	if err == nil {
		t.Fatal("the unchecked build refused the retry: the check this test shows is not switched off by the tag")
	}
	t.Logf("the upgrade test's check on the unchecked build: %v", err)
	clustertest.WaitFor(t, 60*time.Second, "a server of the previous release to stop on the command it does not know", func() (bool, string) {
		for _, s := range order[1:] {
			if s.Running() {
				continue
			}
			log, err := sinceLastStart(s.LogPath())
			if err == nil && strings.Contains(log, "unknown command type 15") {
				return true, ""
			}
		}
		return false, "every server of the previous release still runs"
	})
}
