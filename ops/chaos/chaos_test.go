package chaos

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.CleanupBinary()
	removePreviousBuild()
	os.Exit(code)
}

// binary builds (once per package) the daguha binary with tags. The
// correct build follows DAGUHA_RACE_BINARY as the other process tests
// do; the deliberately broken ones are built without the race detector,
// which would only slow them down.
func binary(t *testing.T, tags string) string {
	t.Helper()
	if tags == "" {
		return clustertest.BuildBinary(t)
	}
	bin, err := clustertest.BuildVariant(tags, false)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// seed is CHAOS_SEED when set (to replay a run), else fallback.
func seed(t *testing.T, fallback uint64) uint64 {
	t.Helper()
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED %q: want an unsigned integer", v)
		}
		return s
	}
	return fallback
}

// explainOnFailure prints the seed and the nemesis schedule when the test
// fails anywhere, not only in the checkers.
func explainOnFailure(t *testing.T, seed uint64, nemesis *Nemesis) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var lines []string
		if nemesis != nil {
			for _, f := range nemesis.Schedule() {
				lines = append(lines, "  "+f.String())
			}
		}
		t.Logf("chaos seed %d (replay with CHAOS_SEED=%d); nemesis schedule:\n%s", seed, seed, strings.Join(lines, "\n"))
	})
}

// settleAndCheck stops the cron DAG, waits for every run to end and
// holds the history to the promises. With an observer (a cluster that
// prunes ended runs), the runs it saw end and the cluster then pruned
// complete the settled state.
func settleAndCheck(t *testing.T, h *Harness, hist *History, settle time.Duration, observer *Observer) *Report {
	t.Helper()
	leader := h.WaitLeader(90 * time.Second)
	if err := DeleteCronDag(leader); err != nil {
		t.Fatal(err)
	}
	runs, err := Settle(h, settle)
	if err != nil {
		t.Fatalf("settle: %v", err)
	}
	var (
		pruned   int
		vanished []string
	)
	if observer != nil {
		observer.Stop()
		runs, pruned, vanished = observer.Merge(runs)
	}
	report := Check(h, hist.Ops(), runs)
	report.Pruned = pruned
	if observer != nil {
		report.ObserverReads = observer.Reads()
	}
	for _, id := range vanished {
		report.Vanished++
		report.problem(id, "VANISHED: run %s was seen queued or running and is gone from the settled state", id)
	}
	return report
}

// Run retention in the fault runs: short, so the servers prune ended runs
// throughout (and their memory is flat), and many times the observer's
// interval and the longest outage the nemesis causes, so every run is
// seen ended before it is pruned. Clients reuse only run ids they made
// within a third of it, so no client asks after a pruned run.
const (
	shortRunRetention = 30 * time.Second
	soakRunRetention  = 3 * time.Minute
	observeEvery      = 2 * time.Second
)

// The short mode `make test` runs: a fixed seed, the four faults the
// promises are most often broken by, a paused server and a full disk,
// then one fault chosen by the seed, with
// four clients enqueueing, reading and cancelling throughout and a DAG
// firing every second; then porcupine and the invariants.
func TestChaosShort(t *testing.T) {
	if os.Getenv("CHAOS_DURATION") != "" {
		t.Skip("CHAOS_DURATION is set: the soak runs instead")
	}
	seed := seed(t, 20261125)
	h := NewHarness(t, Options{Servers: 3, Workers: 3, Bin: binary(t, ""), DiskServer: 2, RunRetention: shortRunRetention})
	h.Start()
	began := time.Now()
	if err := PushCronDag(h.WaitLeader(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	hist := &History{}
	observer := StartObserver(h, observeEvery)
	clients := StartClients(h, hist, ClientOptions{Clients: 4, MaxOps: 2000, Pause: 100 * time.Millisecond, Seed: seed, FirstStepSleep: "0.2",
		ReuseWithin: shortRunRetention / 3})
	nemesis := NewNemesis(t, h, seed)
	explainOnFailure(t, seed, nemesis)
	for _, kind := range []string{KillLeader, PartitionLeader, PartitionWorker, KillAllServers, PauseServer, DiskFull, nemesis.Pick()} {
		nemesis.Inject(kind)
		nemesis.Quiet(time.Second, 3*time.Second)
	}
	clients.Stop()
	report := settleAndCheck(t, h, hist, 2*time.Minute, observer)
	report.Seed, report.Schedule, report.Duration = seed, nemesis.Schedule(), time.Since(began).Round(time.Second).String()
	for _, f := range report.Schedule {
		report.Faults[f.Kind]++
	}
	t.Logf("summary: %s", report.JSON())
	if report.Failed() {
		t.Fatal(report.Explain())
	}
	// A history with nothing in it would pass every check.
	if report.Acked < 20 || report.Finishes < 20 || report.CronRuns < 5 || report.LinearizableRuns < 20 || report.Pruned < 10 {
		t.Fatalf("the history is too thin to prove anything: %s", report.JSON())
	}
}

// staleWorkerScenario: a worker is cut off in the middle of a long step;
// its lease runs out, another worker runs the run again and finishes it;
// then the partition heals and the first worker's late reports and end
// arrive. A correct cluster refuses them all.
func staleWorkerScenario(t *testing.T, h *Harness, hist *History) {
	t.Helper()
	for _, s := range h.Servers {
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
	}
	leader := h.WaitLeader(90 * time.Second)
	first, second := h.Workers[0], h.Workers[1]
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	h.WaitWorkers(60 * time.Second)
	const id = "stale-1"
	op := Enqueue(leader, 0, id, chaosDag("8"))
	hist.Add(op)
	if op.Result != ResultOK {
		t.Fatalf("enqueue: %s", op)
	}
	clustertest.WaitFor(t, 60*time.Second, "the long step to run on "+first.ID, func() (bool, string) {
		execs, err := readExecutions(first.ExecFile)
		return err == nil && len(execs) > 0, fmt.Sprintf("executions %v %v", execs, err)
	})
	if err := h.Net.Isolate(first.Node, h.ServerNodes(nil)...); err != nil {
		t.Fatal(err)
	}
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 90*time.Second, "the run to be taken back and finished by "+second.ID, func() (bool, string) {
		run, found, err := getFinal(h, id)
		if err != nil || !found {
			return false, fmt.Sprintf("%v %v", found, err)
		}
		return run.Status == "succeeded" && run.Attempt >= 2, fmt.Sprintf("%s at attempt %d", run.Status, run.Attempt)
	})
	if err := h.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 3*time.Minute, first.ID+" to give its old attempt up or end it", func() (bool, string) {
		lines, err := readLog(first.LogPath())
		if err != nil {
			return false, err.Error()
		}
		for _, l := range lines {
			if l.Run == id && l.Attempt == 1 && (l.Msg == "run finished" || l.Msg == "run end not recorded" || strings.HasPrefix(l.Msg, "run abandoned")) {
				return true, ""
			}
		}
		return false, "no end of attempt 1 in " + first.ID + "'s log"
	})
}

// lostAckScenario: the leader is cut off from the other servers and a
// client enqueues to it; the majority elects another leader, the old one
// steps down, the partition heals. A correct cluster never acknowledged
// the enqueue (it could not commit it), so nothing acknowledged is lost.
func lostAckScenario(t *testing.T, h *Harness, hist *History, broken bool) {
	t.Helper()
	h.Start()
	old := h.WaitLeader(90 * time.Second)
	if err := h.Net.Isolate(old.Node, h.ServerNodes(old)...); err != nil {
		t.Fatal(err)
	}
	const id = "ack-1"
	op := Enqueue(old, 0, id, chaosDag("0.1"))
	hist.Add(op)
	if broken && op.Result != ResultOK {
		t.Fatalf("the broken build did not acknowledge at once: %s", op)
	}
	clustertest.WaitFor(t, 60*time.Second, "a new leader among the majority, and the old one to step down", func() (bool, string) {
		var leaders []string
		for _, s := range h.Servers {
			health, err := s.Health()
			if err != nil {
				return false, s.Name + ": " + err.Error()
			}
			if health.Role == "leader" {
				leaders = append(leaders, s.Name)
			}
		}
		return len(leaders) == 1 && leaders[0] != old.Name, fmt.Sprintf("leaders: %v", leaders)
	})
	if broken {
		clustertest.WaitFor(t, 60*time.Second, "the old leader to give the background write up", func() (bool, string) {
			data, err := os.ReadFile(old.LogPath())
			return err == nil && strings.Contains(string(data), "chaos_broken_ack: background enqueue ended"), "not yet"
		})
	}
	if err := h.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	h.WaitLeader(90 * time.Second)
	// The run must be readable everywhere if it exists: read it once
	// through the old leader, now a follower.
	if op, ok := Read(old, 0, id); ok {
		hist.Add(op)
	}
}

// Acceptance: a build that acknowledges an enqueue before Raft commits it
// is caught: the acknowledged run is reported lost.
func TestCheckersCatchLostAcks(t *testing.T) {
	h := NewHarness(t, Options{Servers: 3, Workers: 1, Bin: binary(t, "chaos_broken_ack"), DiskServer: -1})
	hist := &History{}
	lostAckScenario(t, h, hist, true)
	report := settleAndCheck(t, h, hist, time.Minute, nil)
	t.Logf("the checkers on the broken build:\n%s", report.Explain())
	if report.Lost == 0 || report.NotLinearizable == 0 {
		t.Fatalf("the checkers did not catch the lost ack: %s", report.JSON())
	}
}

// Acceptance: a build that skips the fencing check is caught: the late
// reports of the cut-off worker land, its step results are stale and the
// run is finished twice.
func TestCheckersCatchStaleResults(t *testing.T) {
	h := NewHarness(t, Options{Servers: 3, Workers: 2, Bin: binary(t, "chaos_broken_fencing"), DiskServer: -1})
	hist := &History{}
	staleWorkerScenario(t, h, hist)
	report := settleAndCheck(t, h, hist, time.Minute, nil)
	t.Logf("the checkers on the broken build:\n%s", report.Explain())
	if report.Stale == 0 || report.Twice == 0 {
		t.Fatalf("the checkers did not catch the stale results: %s", report.JSON())
	}
}

// The same two scenarios against the correct build pass the same
// checkers: what the broken builds are caught at is the breakage, not
// the scenario.
func TestScenariosPassOnTheCorrectBuild(t *testing.T) {
	t.Run("lost ack", func(t *testing.T) {
		h := NewHarness(t, Options{Servers: 3, Workers: 1, Bin: binary(t, ""), DiskServer: -1})
		hist := &History{}
		lostAckScenario(t, h, hist, false)
		if report := settleAndCheck(t, h, hist, time.Minute, nil); report.Failed() {
			t.Fatal(report.Explain())
		}
	})
	t.Run("stale results", func(t *testing.T) {
		h := NewHarness(t, Options{Servers: 3, Workers: 2, Bin: binary(t, ""), DiskServer: -1})
		hist := &History{}
		staleWorkerScenario(t, h, hist)
		report := settleAndCheck(t, h, hist, time.Minute, nil)
		if report.Failed() {
			t.Fatal(report.Explain())
		}
		if report.Finishes != 1 {
			t.Fatalf("want the one finish of the second worker: %s", report.JSON())
		}
	})
}

// The soak (make chaos): CHAOS_DURATION of random faults from the seed,
// clients throughout, memory and goroutines of every process sampled.
// Prints a JSON summary.
func TestChaosSoak(t *testing.T) {
	value := os.Getenv("CHAOS_DURATION")
	if value == "" {
		t.Skip("set CHAOS_DURATION (for example 30m) to run the soak")
	}
	duration, err := time.ParseDuration(value)
	if err != nil || duration <= 0 {
		t.Fatalf("CHAOS_DURATION %q: want a duration such as 30m", value)
	}
	seed := seed(t, uint64(time.Now().UnixNano()))
	h := NewHarness(t, Options{Servers: 3, Workers: 3, Bin: binary(t, ""), DiskServer: 2, RunRetention: soakRunRetention})
	h.Start()
	began := time.Now()
	if err := PushCronDag(h.WaitLeader(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	hist := &History{}
	sampler := StartSampler(h, 10*time.Second)
	observer := StartObserver(h, observeEvery)
	clients := StartClients(h, hist, ClientOptions{Clients: 6, MaxOps: 1 << 20, Pause: 40 * time.Millisecond, Seed: seed, FirstStepSleep: "0.1",
		ReuseWithin: soakRunRetention / 3})
	nemesis := NewNemesis(t, h, seed)
	explainOnFailure(t, seed, nemesis)
	for n := 0; time.Since(began) < duration && n < 10000; n++ {
		nemesis.Inject(nemesis.Pick())
		nemesis.Quiet(2*time.Second, 8*time.Second)
	}
	clients.Stop()
	sampler.Stop()
	report := settleAndCheck(t, h, hist, 5*time.Minute, observer)
	report.Seed, report.Schedule, report.Duration = seed, nemesis.Schedule(), time.Since(began).Round(time.Second).String()
	for _, f := range report.Schedule {
		report.Faults[f.Kind]++
	}
	// Warm-up: until the servers hold what the retention keeps (a run
	// retention and a minute), or a fifth of the run if that is longer.
	report.Resources = sampler.Trends(began, max(soakRunRetention+time.Minute, duration/5))
	fmt.Println(report.JSON())
	if report.Failed() {
		t.Fatal(report.Explain())
	}
	for _, trend := range report.Resources {
		if !trend.Flat {
			t.Errorf("%s did not stay flat: %+v", trend.Process, trend)
		}
	}
}
