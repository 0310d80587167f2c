package main

// Process-level tests: real `daguha` processes on loopback ports, faults
// injected with signals. They pin the foundation's promises: clusters form
// in any order, bootstrap waits for the expected servers, writes survive a
// leader's death, and a cluster restarted whole keeps its state.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

// Most tests here run one at a time: they kill, pause and time servers
// and workers, and measure memory. A few that mostly wait (on timeouts,
// leader elections, child runs) call t.Parallel: go test then runs them
// two at a time (-parallel is GOMAXPROCS), after the others, so the
// package's minutes are not the sum of their waits. Each has its own
// cluster, temporary directory and ports (FreePorts never gives a port
// twice in one test binary). A test that sets the environment or the
// working directory, or measures time closely, must not be one of them.
func TestMain(m *testing.M) {
	clustertest.MainWithLeakCheck(m, clustertest.CleanupBinary)
}

func peersOf(a *clustertest.Agent) ([]cluster.Peer, error) {
	var body wire.Peers
	code, err := a.GetJSON("/api/v2/cluster/peers", &body)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("peers: HTTP %d", code)
	}
	return body.Peers, nil
}

// votersOf returns the sorted names of the voters a server knows.
func votersOf(a *clustertest.Agent) ([]string, error) {
	peers, err := peersOf(a)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range peers {
		if p.Voter {
			names = append(names, p.ID)
		}
	}
	sort.Strings(names)
	return names, nil
}

// waitVoters waits until every running server reports exactly want voters.
func waitVoters(t *testing.T, c *clustertest.Cluster, want []string) {
	t.Helper()
	sort.Strings(want)
	clustertest.WaitFor(t, 30*time.Second, fmt.Sprintf("every running server to report voters %v", want), func() (bool, string) {
		for _, a := range c.Running() {
			got, err := votersOf(a)
			if err != nil {
				return false, a.Name + ": " + err.Error()
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				return false, fmt.Sprintf("%s reports %v", a.Name, got)
			}
		}
		return true, ""
	})
}

func names(agents []*clustertest.Agent) []string {
	var out []string
	for _, a := range agents {
		out = append(out, a.Name)
	}
	return out
}

func testSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("DAGUHA_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DAGUHA_TEST_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (set DAGUHA_TEST_SEED to replay)", seed)
	return seed
}

// Acceptance 2: three servers, each given the others' gossip addresses in
// any order and started in any order, end with one leader and one Raft
// configuration of three voters.
func TestClusterFormsWhateverTheStartAndJoinOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 1))
	c := clustertest.NewCluster(t, clustertest.ClusterOptions{
		Servers: 3,
		JoinOrder: func(self int, others []string) []string {
			shuffled := append([]string(nil), others...)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			return shuffled
		},
	})
	for _, i := range rng.Perm(3) {
		if err := c.Agents[i].Start(); err != nil {
			t.Fatalf("start %s: %v", c.Agents[i].Name, err)
		}
	}
	leader := c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents))
	leaders := 0
	for _, a := range c.Agents {
		h, err := a.Health()
		if err != nil {
			t.Fatalf("health of %s: %v", a.Name, err)
		}
		if h.Role == "leader" {
			leaders++
		}
		if h.Leader != leader.Name {
			t.Errorf("%s reports leader %q, want %q", a.Name, h.Leader, leader.Name)
		}
	}
	if leaders != 1 {
		t.Fatalf("%d servers report role leader, want 1", leaders)
	}
}

// Acceptance 3: with bootstrap-expect=3 and two servers, nothing is
// elected and no Raft state is written; the third completes the cluster.
func TestBootstrapWaitsForTheExpectedServers(t *testing.T) {
	c := clustertest.NewCluster(t, clustertest.ClusterOptions{Servers: 3})
	first := c.Agents[:2]
	for _, a := range first {
		if err := a.Start(); err != nil {
			t.Fatalf("start %s: %v", a.Name, err)
		}
	}
	clustertest.WaitFor(t, 30*time.Second, "both servers to see each other and wait for a third", func() (bool, string) {
		for _, a := range first {
			var self wire.Self
			if _, err := a.GetJSON("/api/v2/agent/self", &self); err != nil {
				return false, err.Error()
			}
			if !strings.HasPrefix(self.Bootstrap, "waiting: 2 of 3") {
				return false, a.Name + ": " + self.Bootstrap
			}
		}
		return true, ""
	})
	// Watch for longer than several election timeouts: no leader may
	// appear and no Raft state may be written while only two are up.
	observeUntil := time.Now().Add(4 * time.Second)
	for time.Now().Before(observeUntil) {
		for _, a := range first {
			var self wire.Self
			if _, err := a.GetJSON("/api/v2/agent/self", &self); err != nil {
				t.Fatalf("self of %s: %v", a.Name, err)
			}
			if self.Leader != "" || self.Raft.HasState || self.Raft.LastIndex != 0 || self.Raft.Term != 0 {
				t.Fatalf("%s with two of three servers: leader %q, has_state %t, last index %d, term %d",
					a.Name, self.Leader, self.Raft.HasState, self.Raft.LastIndex, self.Raft.Term)
			}
			if h, err := a.Health(); err != nil || h.Code != 503 {
				t.Fatalf("%s health with two of three servers: %+v, %v (want 503)", a.Name, h, err)
			}
		}
		time.Sleep(100 * time.Millisecond) // polling interval of the observation window
	}
	if err := c.Agents[2].Start(); err != nil {
		t.Fatalf("start third: %v", err)
	}
	c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents))
}

func enqueue(a *clustertest.Agent, id string) (int, error) {
	var resp wire.Enqueued
	code, err := a.PostJSON("/api/v2/dag-runs", inlineRun(id, nil, "true"), &resp)
	if err == nil && (code == 201 || code == 200) && resp.DagRunID != id {
		return code, fmt.Errorf("enqueue %s answered run id %q", id, resp.DagRunID)
	}
	return code, err
}

// inlineRun is an enqueue request for a one-step DAG "e2e".
func inlineRun(id string, selector map[string]string, command string) wire.EnqueueRequest {
	return wire.EnqueueRequest{
		DagRunID: id,
		Dag: &wire.InlineDag{
			Name:           "e2e",
			WorkerSelector: selector,
			Steps:          []wire.InlineStep{{Name: "step", Command: command}},
		},
	}
}

func followerOf(c *clustertest.Cluster, leader *clustertest.Agent) *clustertest.Agent {
	for _, a := range c.Running() {
		if a != leader {
			return a
		}
	}
	return nil
}

// Acceptance 4: a write sent to a follower succeeds; a write sent right
// after the leader was killed is held and succeeds once a new leader exists.
func TestWritesThroughFollowersAndDuringElection(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ExtraArgs: []string{"-forward-hold=20s"}})
	leader := c.WaitLeader(t, 30*time.Second)
	follower := followerOf(c, leader)
	if code, err := enqueue(follower, "via-follower"); err != nil || code != 201 {
		t.Fatalf("write through follower %s: HTTP %d, %v", follower.Name, code, err)
	}
	var run wire.Run
	if code, err := leader.GetJSON("/api/v2/dag-runs/via-follower", &run); err != nil || code != 200 || run.Status != "queued" {
		t.Fatalf("read back from leader: HTTP %d, %+v, %v", code, run, err)
	}

	leader.Kill()
	start := time.Now()
	code, err := enqueueLong(follower, "during-election")
	held := time.Since(start)
	if err != nil || code != 201 {
		t.Fatalf("write during election through %s: HTTP %d, %v", follower.Name, code, err)
	}
	t.Logf("write sent right after the leader's kill -9 was held %s", held.Round(time.Millisecond))
	newLeader := c.WaitLeader(t, 30*time.Second)
	if newLeader == leader {
		t.Fatalf("killed server is still leader")
	}
	if code, err := newLeader.GetJSON("/api/v2/dag-runs/during-election", &run); err != nil || code != 200 {
		t.Fatalf("held write not readable on new leader: HTTP %d, %v", code, err)
	}
}

// enqueueLong is enqueue with a client time-out longer than the hold.
func enqueueLong(a *clustertest.Agent, id string) (int, error) {
	var resp wire.Enqueued
	return a.PostJSONTimeout("/api/v2/dag-runs", inlineRun(id, nil, "true"), &resp, 30*time.Second)
}

// writers sends enqueues to random running servers from several
// goroutines and records which ones were acknowledged.
type writers struct {
	mu    sync.Mutex
	acked []string
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startWriters(c *clustertest.Cluster, n int, seed uint64) *writers {
	w := &writers{stop: make(chan struct{})}
	for g := 0; g < n; g++ {
		w.wg.Add(1)
		go func(g int) {
			defer w.wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			deadline := time.Now().Add(2 * time.Minute)
			for i := 0; i < 5000 && time.Now().Before(deadline); i++ {
				select {
				case <-w.stop:
					return
				default:
				}
				running := c.Running()
				if len(running) == 0 {
					continue
				}
				target := running[rng.IntN(len(running))]
				id := fmt.Sprintf("w%d-%d", g, i)
				if code, err := enqueue(target, id); err == nil && (code == 201 || code == 200) {
					w.mu.Lock()
					w.acked = append(w.acked, id)
					w.mu.Unlock()
				}
			}
		}(g)
	}
	return w
}

func (w *writers) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *writers) halt() []string {
	close(w.stop)
	w.wg.Wait()
	return append([]string(nil), w.acked...)
}

// checkAllReadable checks that every id is readable on every running
// server from its local state (?stale), once each has caught up.
func checkAllReadable(t *testing.T, c *clustertest.Cluster, ids []string) {
	t.Helper()
	for _, a := range c.Running() {
		missing := 0
		var firstMissing string
		for _, id := range ids {
			var run wire.Run
			code, err := a.GetJSON("/api/v2/dag-runs/"+id+"?stale", &run)
			if err != nil || code != 200 || run.DagRunID != id {
				if missing == 0 {
					firstMissing = fmt.Sprintf("%s: HTTP %d, %v", id, code, err)
				}
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s is missing %d of %d acknowledged writes (first: %s)", a.Name, missing, len(ids), firstMissing)
		}
	}
}

func fsmIndex(a *clustertest.Agent) uint64 {
	var self wire.Self
	if _, err := a.GetJSON("/api/v2/agent/self", &self); err != nil {
		return 0
	}
	return self.Raft.FSMIndex
}

// waitCaughtUp waits until every running server has applied at least
// what the leader had applied when the wait began.
func waitCaughtUp(t *testing.T, c *clustertest.Cluster, leader *clustertest.Agent) {
	t.Helper()
	// A linearizable read on the leader first: a leader just elected after
	// a restart may not have applied the whole log yet, and its applied
	// index alone would be too low a target.
	clustertest.WaitFor(t, 30*time.Second, "a linearizable read on the leader", func() (bool, string) {
		code, err := leader.GetJSON("/api/v2/dag-runs?limit=1", nil)
		return err == nil && code == 200, fmt.Sprintf("HTTP %d %v", code, err)
	})
	target := fsmIndex(leader)
	clustertest.WaitFor(t, 30*time.Second, fmt.Sprintf("every server to apply index %d", target), func() (bool, string) {
		for _, a := range c.Running() {
			if got := fsmIndex(a); got < target {
				return false, fmt.Sprintf("%s at %d", a.Name, got)
			}
		}
		return true, ""
	})
}

// Acceptance 5: kill -9 of the leader under a stream of writes loses no
// acknowledged write; the killed server rejoins and catches up; kill -9 of
// all three and a restart keep the state and bootstrap nothing again.
func TestLeaderKillUnderWritesAndWholeClusterRestart(t *testing.T) {
	seed := testSeed(t)
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents))

	w := startWriters(c, 4, seed)
	clustertest.WaitFor(t, 30*time.Second, "50 acknowledged writes before the kill", func() (bool, string) {
		return w.count() >= 50, fmt.Sprintf("%d acknowledged", w.count())
	})
	leader.Kill()
	killedAt := time.Now()
	var newLeader *clustertest.Agent
	clustertest.WaitFor(t, 30*time.Second, "a new leader after kill -9", func() (bool, string) {
		for _, a := range c.Running() {
			if h, err := a.Health(); err == nil && h.Role == "leader" {
				newLeader = a
				return true, ""
			}
		}
		return false, "no survivor reports role leader"
	})
	failover := time.Since(killedAt)
	t.Logf("failover: kill -9 of leader %s -> %s reports leader after %s", leader.Name, newLeader.Name, failover.Round(time.Millisecond))
	afterKill := w.count()
	clustertest.WaitFor(t, 60*time.Second, "50 more acknowledged writes after the failover", func() (bool, string) {
		return w.count() >= afterKill+50, fmt.Sprintf("%d acknowledged", w.count())
	})
	acked := w.halt()
	t.Logf("%d writes acknowledged in all", len(acked))

	if err := leader.Start(); err != nil {
		t.Fatalf("restart %s: %v", leader.Name, err)
	}
	newLeader = c.WaitLeader(t, 30*time.Second)
	waitCaughtUp(t, c, newLeader)
	checkAllReadable(t, c, acked)

	var before wire.Self
	if _, err := newLeader.GetJSON("/api/v2/agent/self", &before); err != nil {
		t.Fatal(err)
	}
	for _, a := range c.Agents {
		a.Kill()
	}
	for _, a := range c.Agents {
		if err := a.Start(); err != nil {
			t.Fatalf("restart %s: %v", a.Name, err)
		}
	}
	leader = c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents))
	waitCaughtUp(t, c, leader)
	checkAllReadable(t, c, acked)
	for _, a := range c.Agents {
		var self wire.Self
		if _, err := a.GetJSON("/api/v2/agent/self", &self); err != nil {
			t.Fatal(err)
		}
		if self.Bootstrap != "skipped: this server has raft state" {
			t.Errorf("%s after a whole-cluster restart: bootstrap %q", a.Name, self.Bootstrap)
		}
		if self.Raft.LastIndex < before.Raft.LastIndex || self.Raft.Term < before.Raft.Term {
			t.Errorf("%s after restart: index %d term %d, before the kill index %d term %d: state was not kept",
				a.Name, self.Raft.LastIndex, self.Raft.Term, before.Raft.LastIndex, before.Raft.Term)
		}
	}
}

// A leader stopped with SIGTERM hands leadership over and leaves: the
// others remove it from the configuration; started again on its data
// directory, it is added back.
func TestGracefulLeaveAndRejoin(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents))
	leader.Stop()
	if code := leader.ExitCode(); code != 0 {
		t.Fatalf("%s exited %d after SIGTERM, want 0; log:\n%s", leader.Name, code, leader.Tail(30))
	}
	var rest []string
	for _, a := range c.Running() {
		rest = append(rest, a.Name)
	}
	c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, rest)
	if err := leader.Start(); err != nil {
		t.Fatalf("restart %s: %v", leader.Name, err)
	}
	c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents))
}

// portsFree reports whether the default ports can be bound, so the dev
// mode test can run with no flags at all when the machine allows it.
func portsFree(tcp []int, udp []int) bool {
	for _, p := range tcp {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		l.Close()
	}
	for _, p := range udp {
		l, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

var devDirPattern = regexp.MustCompile(`dev mode: data in a temporary directory, removed at exit" dir=(\S+)`)

// Acceptance 7: `daguha agent -dev` with no configuration answers health
// with role leader; it removes its temporary data directory at exit.
func TestDevModeIsALeaderWithNoSetUp(t *testing.T) {
	bin := clustertest.BuildBinary(t)
	args := []string{"agent", "-dev"}
	httpPort := 8080
	if !portsFree([]int{8080, 50055, 8300, 8301}, []int{8301}) {
		ports := clustertest.FreePorts(t, 4)
		httpPort = ports[0]
		args = append(args, "-http-port="+strconv.Itoa(ports[0]), "-grpc-port="+strconv.Itoa(ports[1]),
			"-raft-port="+strconv.Itoa(ports[2]), "-gossip-port="+strconv.Itoa(ports[3]))
		t.Logf("default ports busy on this machine; dev mode runs with %v", args[2:])
	}
	dir := t.TempDir()
	p := clustertest.NewProcess(t, "dev", dir, bin, args...)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	agent := &clustertest.Agent{Process: p, Name: "dev", HTTPPort: httpPort}
	clustertest.WaitFor(t, 30*time.Second, "dev mode to report itself leader", func() (bool, string) {
		h, err := agent.Health()
		if err != nil {
			return false, err.Error()
		}
		return h.Code == 200 && h.Role == "leader" && h.Status == "ok", fmt.Sprintf("%+v", h)
	})
	if code, err := enqueue(agent, "dev-run"); err != nil || code != 201 {
		t.Fatalf("enqueue in dev mode: HTTP %d, %v", code, err)
	}
	clustertest.WaitFor(t, 30*time.Second, "dev mode's own worker to run it", func() (bool, string) {
		var run wire.Run
		code, err := agent.GetJSON("/api/v2/dag-runs/dev-run", &run)
		return err == nil && code == 200 && run.Status == "succeeded", fmt.Sprintf("HTTP %d %+v %v", code, run, err)
	})
	p.Stop()
	if code := p.ExitCode(); code != 0 {
		t.Fatalf("dev mode exited %d after SIGTERM; log:\n%s", code, p.Tail(30))
	}
	dataDir := ""
	f, err := os.Open(p.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if m := devDirPattern.FindStringSubmatch(scanner.Text()); m != nil {
			dataDir = m[1]
		}
	}
	if dataDir == "" {
		t.Fatalf("dev mode did not log its data directory; log:\n%s", p.Tail(30))
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Fatalf("dev mode data directory %s still exists after exit (stat: %v)", dataDir, err)
	}
}

// A server that joins a running cluster (no bootstrap-expect, -join to the
// others) is added by the leader as a voter and catches up.
func TestNewServerJoinsARunningCluster(t *testing.T) {
	c := clustertest.NewCluster(t, clustertest.ClusterOptions{Servers: 4, BootstrapExpect: 3})
	for _, a := range c.Agents[:3] {
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents[:3]))
	if code, err := enqueue(leader, "before-join"); err != nil || code != 201 {
		t.Fatalf("enqueue: HTTP %d %v", code, err)
	}
	if err := c.Agents[3].Start(); err != nil {
		t.Fatal(err)
	}
	waitVoters(t, c, names(c.Agents))
	newcomer := c.Agents[3]
	clustertest.WaitFor(t, 30*time.Second, "the new server to have the earlier write", func() (bool, string) {
		var run wire.Run
		code, err := newcomer.GetJSON("/api/v2/dag-runs/before-join?stale", &run)
		return err == nil && code == 200, fmt.Sprintf("HTTP %d %v", code, err)
	})
	var self wire.Self
	if _, err := newcomer.GetJSON("/api/v2/agent/self", &self); err != nil || !strings.HasPrefix(self.Bootstrap, "skipped") {
		t.Fatalf("the new server's bootstrap decision: %q %v", self.Bootstrap, err)
	}
}

// With -log-format=json every line the server writes, the Raft library's
// included, is one JSON object.
func TestJSONLogs(t *testing.T) {
	bin := clustertest.BuildBinary(t)
	ports := clustertest.FreePorts(t, 4)
	p := clustertest.NewProcess(t, "json", t.TempDir(), bin, "agent", "-dev", "-log-format=json", "-log-level=debug",
		fmt.Sprintf("-http-port=%d", ports[0]), fmt.Sprintf("-grpc-port=%d", ports[1]),
		fmt.Sprintf("-raft-port=%d", ports[2]), fmt.Sprintf("-gossip-port=%d", ports[3]))
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	a := &clustertest.Agent{Process: p, Name: "json", HTTPPort: ports[0]}
	clustertest.WaitFor(t, 30*time.Second, "the dev server to lead", func() (bool, string) {
		h, err := a.Health()
		return err == nil && h.Role == "leader", fmt.Sprintf("%+v %v", h, err)
	})
	p.Stop()
	components := map[string]bool{}
	for _, line := range strings.Split(p.Tail(500), "\n") {
		if strings.HasPrefix(line, "=== start") || line == "" {
			continue
		}
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		if entry["level"] == nil || entry["msg"] == nil {
			t.Fatalf("a log line without level or msg: %q", line)
		}
		if c, ok := entry["component"].(string); ok {
			components[c] = true
		}
	}
	if !components["raft"] {
		t.Fatalf("raft's lines did not come through the JSON logger: components %v", components)
	}
}
