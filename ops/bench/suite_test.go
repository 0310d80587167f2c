package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/fsm"
	"github.com/daguha/daguha/ops/client"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// figure is one measured figure, printed as one JSON object.
type figure map[string]any

// suite runs the figures of `make bench` in order and keeps them.
type suite struct {
	t       *testing.T
	quick   bool
	figures []figure
	// fsyncRate is the disk baseline of this run (fsyncs per second).
	fsyncRate float64
	// restoreRate is the snapshot figure's restore rate (runs per second),
	// the catch-up figure's baseline.
	restoreRate float64
}

func (s *suite) add(f figure) {
	f["load_avg_1m"] = loadAverage()
	out, err := json.Marshal(f)
	if err != nil {
		s.t.Fatal(err)
	}
	fmt.Println(string(out))
	s.figures = append(s.figures, f)
}

// pick is the full value, or the quick one under BENCH_QUICK=1.
func (s *suite) pick(full, quick int) int {
	if s.quick {
		return quick
	}
	return full
}

func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	v, _ := strconv.ParseFloat(strings.Fields(string(data))[0], 64)
	return v
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// dist is the p50/p99/max of durations, in milliseconds.
func dist(ds []time.Duration) figure {
	sorted := append([]time.Duration(nil), ds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	return figure{"p50": ms(percentile(sorted, 0.50)), "p99": ms(percentile(sorted, 0.99)), "max": ms(percentile(sorted, 1)), "n": len(sorted)}
}

// TestBenchSuite is `make bench`: every figure of the benchmarks issue as
// JSON on stdout, a table on stderr, and a results file. It runs only when
// DAGUHA_BENCH=1 (make bench sets it); BENCH_QUICK=1 shrinks every load.
func TestBenchSuite(t *testing.T) {
	if os.Getenv("DAGUHA_BENCH") != "1" {
		t.Skip("the benchmark suite runs with make bench (DAGUHA_BENCH=1)")
	}
	s := &suite{t: t, quick: os.Getenv("BENCH_QUICK") == "1"}
	started := time.Now()
	fsyncRate := s.baselineFsync()
	s.fsyncRate = fsyncRate
	s.baselineRaft()
	// daguha's Raft batches its appends, so that is the baseline its
	// throughput is a fraction of.
	raftRate := s.bareRaft(true)
	// BENCH_FROM=NAME starts at that part (the baselines always run), to
	// finish a run that an overloaded machine broke off; BENCH_ONLY=NAME
	// runs that part alone.
	parts := []struct {
		name string
		run  func()
	}{
		{"throughput", func() {
			one := s.throughput(1, true, fsyncRate, raftRate, 0)
			three := s.throughput(3, true, fsyncRate, raftRate, one)
			// The same load enqueued in bulk requests, by 4 clients.
			s.throughputWith(3, true, 4, s.pick(1000, 100), fsyncRate, raftRate, 0, three)
			s.throughput(3, false, fsyncRate, raftRate, 0)
			if !s.quick {
				for _, clients := range []int{1, 4, 16} {
					s.throughputWith(3, true, clients, 0, fsyncRate, raftRate, 0, 0)
				}
			}
		}},
		{"latency", s.latency},
		{"failover", func() {
			// The LAN setting the docs recommend, and beside it, in full
			// runs, daguha's conservative default.
			s.failover(lanRaftTimeout)
			if !s.quick {
				s.failover("")
			}
		}},
		{"reclaim", s.reclaim},
		{"matching", s.matching},
		{"snapshot", s.snapshot},
		{"catchup", s.catchUp},
		{"heartbeats", s.heartbeats},
	}
	from, only := os.Getenv("BENCH_FROM"), os.Getenv("BENCH_ONLY")
	for _, part := range parts {
		if from != "" && part.name != from || only != "" && part.name != only {
			continue
		}
		from = ""
		began := time.Now()
		part.run()
		fmt.Fprintf(os.Stderr, "--- part %s took %s\n", part.name, time.Since(began).Round(100*time.Millisecond))
	}
	s.summary(time.Since(started))
}

// ---- baselines ---------------------------------------------------------

// baselineFsync is the disk's synchronous small-write rate in the same
// temporary directory the servers use: the bound every Raft commit has.
func (s *suite) baselineFsync() float64 {
	f, err := os.CreateTemp(s.t.TempDir(), "fsync")
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	seconds := s.pick(2, 1)
	n, start := 0, time.Now()
	for time.Since(start) < time.Duration(seconds)*time.Second && n < 100000 {
		if _, err := f.Write(block); err != nil {
			s.t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			s.t.Fatal(err)
		}
		n++
	}
	rate := float64(n) / time.Since(start).Seconds()
	s.add(figure{"name": "baseline_fsync", "value": rate, "unit": "fsync'd 4 KiB writes/s", "params": figure{"seconds": seconds}})
	return rate
}

// ---- dispatch ----------------------------------------------------------

func inlineRun(id, command string) wire.EnqueueRequest {
	return wire.EnqueueRequest{DagRunID: id, Dag: &wire.InlineDag{Name: "bench", Steps: []wire.InlineStep{{Name: "s", Command: command}}}}
}

// finishedTotal sums daguha_runs_finished_total over the servers.
func finishedTotal(c *clustertest.Cluster) float64 {
	total := 0.0
	for _, a := range c.Running() {
		resp, err := httpGet(a.HTTPAddr() + "/metrics")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(resp))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "daguha_runs_finished_total{") {
				fields := strings.Fields(line)
				v, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
				total += v
			}
		}
	}
	return total
}

func waitWorkers(t testing.TB, a *clustertest.Agent, n int) {
	clustertest.WaitFor(t, 60*time.Second, fmt.Sprintf("%d workers registered", n), func() (bool, string) {
		var body wire.Workers
		code, err := a.GetJSON("/api/v2/workers", &body)
		return err == nil && code == 200 && len(body.Workers) >= n, fmt.Sprintf("%d", len(body.Workers))
	})
}

// throughput enqueues runs from many concurrent clients across the
// servers and measures runs/s from the first enqueue to the last finish.
func (s *suite) throughput(servers int, noop bool, fsyncRate, raftRate, singleServer float64) float64 {
	return s.throughputWith(servers, noop, 64, 0, fsyncRate, raftRate, singleServer, 0)
}

// throughputWith is throughput with clients enqueuing at once; with bulk,
// each request enqueues bulk runs ({"runs": [...]}), and singleEnqueues,
// the rate of the same cluster enqueued a run a request in this run, is
// the figure's baseline.
func (s *suite) throughputWith(servers int, noop bool, clients, bulk int, fsyncRate, raftRate, singleServer, singleEnqueues float64) float64 {
	// Enough runs that the load lasts well past the ramp (and the leader's
	// 5 s profile) at a few thousand runs a second.
	runs := s.pick(20000, 400)
	if !noop {
		runs = s.pick(5000, 200)
	}
	if clients < 64 && bulk == 0 {
		runs = s.pick(100*clients, 50*clients)
	}
	workers := 4
	c := clustertest.StartCluster(s.t, clustertest.ClusterOptions{Servers: servers, ExtraArgs: []string{"-pprof"}})
	leader := c.WaitLeader(s.t, 60*time.Second)
	var procs []*clustertest.Process
	// Workers stop before the servers: a worker whose servers are gone
	// waits out its shutdown timeouts.
	defer func() { stopCluster(c, procs...) }()
	for i := 0; i < workers; i++ {
		args := []string{"-max-active-runs=64"}
		if noop {
			args = append(args, "-noop-executor")
		}
		p := c.NewWorker(fmt.Sprintf("tp-%d-%d", servers, i), args...)
		if err := p.Start(); err != nil {
			s.t.Fatal(err)
		}
		procs = append(procs, p)
	}
	waitWorkers(s.t, leader, workers)
	command := "true"
	var next, failed atomic.Int64
	// The leader's CPU profile over the first seconds of the load: where a
	// run's time goes on the server that does most of the work.
	var profile, followerProfile func() map[string]any
	if servers == 3 && clients == 64 {
		executor := "noop"
		if !noop {
			executor = "sh"
		}
		profile = s.profileServer(leader, fmt.Sprintf("throughput-3-servers-%s-leader", executor), s.pick(5, 1))
		// A follower's share is as large as the leader's: it serves the
		// enqueues and worker calls sent to it and applies every entry.
		for _, a := range c.Agents {
			if a != leader {
				followerProfile = s.profileServer(a, fmt.Sprintf("throughput-3-servers-%s-follower", executor), s.pick(5, 1))
				break
			}
		}
	}
	meter := newCPUMeter(c, leader, procs)
	insideMeter := newServerMeter(c, leader)
	start := time.Now()
	var wg sync.WaitGroup
	for cl := 0; cl < clients; cl++ {
		wg.Add(1)
		go func(cl int) {
			defer wg.Done()
			a := c.Agents[cl%servers]
			for bulk > 0 {
				first := next.Add(int64(bulk)) - int64(bulk)
				if first >= int64(runs) {
					return
				}
				batch := wire.EnqueueBatch{}
				for i := first; i < min(first+int64(bulk), int64(runs)); i++ {
					batch.Runs = append(batch.Runs, inlineRun(fmt.Sprintf("tpb-%d-%t-%d", servers, noop, i), command))
				}
				var answer wire.EnqueuedBatch
				if err := postBatch(a, batch, &answer); err != nil {
					failed.Add(int64(len(batch.Runs)))
					continue
				}
				failed.Add(int64(answer.Failed))
			}
			for {
				i := next.Add(1) - 1
				if i >= int64(runs) {
					return
				}
				code, err := postKeepAlive(a, "/api/v2/dag-runs", inlineRun(fmt.Sprintf("tp-%d-%t-%d", servers, noop, i), command))
				if err != nil || code >= 300 {
					failed.Add(1)
				}
			}
		}(cl)
	}
	wg.Wait()
	enqueued := time.Since(start)
	clustertest.WaitFor(s.t, 10*time.Minute, "every run finished", func() (bool, string) {
		done := finishedTotal(c)
		return done >= float64(runs)-float64(failed.Load()), fmt.Sprintf("%.0f of %d", done, runs)
	})
	elapsed := time.Since(start)
	cpu := meter.stop(runs)
	inside := insideMeter.stop(runs)
	rate := float64(runs) / elapsed.Seconds()
	name := "dispatch_throughput"
	executor := "noop"
	if !noop {
		executor = "sh -c true"
	}
	switch {
	case bulk > 0:
		name = "dispatch_throughput_bulk"
	case clients != 64:
		name = "dispatch_throughput_by_clients"
	}
	f := figure{"name": name, "value": rate, "unit": "runs/s enqueue→finished", "params": figure{
		"servers": servers, "runs": runs, "clients": clients, "workers": workers, "max_active_runs": 64, "executor": executor},
		"enqueue_rate": float64(runs) / enqueued.Seconds(), "failed_enqueues": failed.Load(),
		"baseline": figure{"raft_apply_per_s": raftRate, "fsync_per_s": fsyncRate}, "ratio": rate / raftRate,
		"cpu_ms_per_run": cpu["cpu_ms_per_run"], "cores_busy": cpu["cores_busy"]}
	// Where a run waited (the leader's stage histograms), Raft's own
	// timings, and allocations and GC beside the CPU per run.
	for key, v := range inside {
		f[key] = v
	}
	f["dominant_stage"] = dominantStage(inside["stages_ms"].(figure))
	if profile != nil {
		f["profile_leader"] = profile()
	}
	if followerProfile != nil {
		f["profile_follower"] = followerProfile()
	}
	if bulk > 0 {
		f["params"].(figure)["runs_per_request"] = bulk
		if singleEnqueues > 0 {
			f["baseline"].(figure)["single_enqueues_per_s"] = singleEnqueues
			f["ratio_to_single_enqueues"] = rate / singleEnqueues
		}
	}
	if singleServer > 0 {
		f["single_server"] = singleServer
		f["ratio_to_single_server"] = rate / singleServer
	}
	s.add(f)
	return rate
}

// latency: on an idle cluster, enqueue → the step started on a worker,
// one run at a time, from the servers' own timestamps.
func (s *suite) latency() {
	n := s.pick(200, 20)
	c := clustertest.StartCluster(s.t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(s.t, 60*time.Second)
	w := c.NewWorker("lat", "-noop-executor")
	defer stopCluster(c, w)
	if err := w.Start(); err != nil {
		s.t.Fatal(err)
	}
	waitWorkers(s.t, leader, 1)
	var ds []time.Duration
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("lat-%d", i)
		a := c.Agents[i%3]
		enqueue(s.t, a, inlineRun(id, "true"))
		d := stepStarted(s.t, leader, id)
		ds = append(ds, d)
	}
	f := dist(ds)
	lat := figure{"name": "dispatch_latency", "value": f["p50"], "unit": "ms enqueue→step started (p50)", "p50": f["p50"], "p99": f["p99"], "max": f["max"],
		"params": figure{"servers": 3, "runs": n, "executor": "noop", "enqueued_through": "each server in turn"}}
	if s.fsyncRate > 0 {
		// The path is three commits (enqueue, grant, the step's start
		// report), each behind an fsync on the leader and a follower: the
		// baseline is one fsync's time on this disk.
		fsyncMs := 1000 / s.fsyncRate
		lat["baseline"] = figure{"fsync_ms": fsyncMs}
		lat["ratio_to_fsync"] = toFloat(f["p50"]) / fsyncMs
	}
	s.add(lat)
	s.enqueueLatency(c, leader)
}

// enqueueLatency: the answer time of one enqueue (the API call, as a
// client sees it) on an idle cluster, a DAG sent inline and a stored DAG
// by name, to the leader and to a follower. The follower's by-name figure
// is the one users behind a load balancer meet most; the baseline is the
// inline enqueue to the leader.
func (s *suite) enqueueLatency(c *clustertest.Cluster, leader *clustertest.Agent) {
	n := s.pick(100, 20)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	_, err := leader.API().PushDags(ctx, []wire.DagSource{{Name: "noop.yaml", Content: "name: noop\nsteps:\n  - name: s\n    command: \"true\"\n"}})
	cancel()
	if err != nil {
		s.t.Fatalf("push the noop DAG: %v", err)
	}
	var follower *clustertest.Agent
	for _, a := range c.Running() {
		if a != leader {
			follower = a
			break
		}
	}
	paths := figure{}
	var byNameFollower figure
	for _, p := range []struct {
		name   string
		to     *clustertest.Agent
		byName bool
	}{{"inline_leader", leader, false}, {"inline_follower", follower, false}, {"by_name_leader", leader, true}, {"by_name_follower", follower, true}} {
		var ds []time.Duration
		for i := 0; i < n; i++ {
			body := inlineRun(fmt.Sprintf("enq-%s-%d", p.name, i), "true")
			if p.byName {
				body = wire.EnqueueRequest{DagRunID: body.DagRunID, DagName: "noop"}
			}
			start := time.Now()
			enqueue(s.t, p.to, body)
			ds = append(ds, time.Since(start))
		}
		paths[p.name] = dist(ds)
		if p.name == "by_name_follower" {
			byNameFollower = dist(ds)
		}
	}
	base := toFloat(paths["inline_leader"].(figure)["p50"])
	f := figure{"name": "enqueue_latency", "value": byNameFollower["p50"], "unit": "ms per enqueue answered, a stored DAG by name through a follower (p50)",
		"p50": byNameFollower["p50"], "p99": byNameFollower["p99"], "max": byNameFollower["max"], "paths": paths,
		"baseline": figure{"inline_leader_p50_ms": base},
		"params":   figure{"servers": 3, "calls_per_path": n, "one_at_a_time": true}}
	if base > 0 {
		f["ratio_to_inline_leader"] = toFloat(byNameFollower["p50"]) / base
	}
	s.add(f)
}

// enqueue sends an enqueue, retrying a request that timed out on a
// loaded machine (the same run id twice is one run).
func enqueue(t testing.TB, a *clustertest.Agent, body wire.EnqueueRequest) {
	var lastErr error
	for try := 0; try < 3; try++ {
		code, err := a.PostJSONTimeout("/api/v2/dag-runs", body, nil, 60*time.Second)
		if err == nil && code < 300 {
			return
		}
		lastErr = fmt.Errorf("HTTP %d %v", code, err)
	}
	t.Fatalf("enqueue %v: %v", body.DagRunID, lastErr)
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// stepStarted waits (blocking queries) for the run's first step to start
// and returns enqueue → start.
func stepStarted(t testing.TB, a *clustertest.Agent, id string) time.Duration {
	var index uint64
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var run wire.Run
		code, err := a.GetJSON(fmt.Sprintf("/api/v2/dag-runs/%s?index=%d&wait=10s", id, index), &run)
		if err == nil && code == 200 {
			if len(run.Steps) > 0 && run.Steps[0].StartedAt != "" {
				return parseTime(run.Steps[0].StartedAt).Sub(parseTime(run.EnqueuedAt))
			}
			index = run.ModifyIndex
		}
	}
	t.Fatalf("run %s did not start", id)
	return 0
}

// lanRaftTimeout is the -raft-timeout the failover figure is measured
// with: what docs/performance.md recommends on a LAN (daguha's default, 1s,
// is kept for loaded and virtualised hosts, as Consul's raft_multiplier).
const lanRaftTimeout = "500ms"

// failover: kill -9 of the leader → the first run dispatched by the new
// leader (a probe enqueued every 20 ms through the survivors).
func (s *suite) failover(raftTimeout string) {
	kills := s.pick(10, 2)
	name := "failover"
	if raftTimeout == "" {
		name = "failover_default_timeout"
	}
	// BENCH_RAFT_TIMEOUT=DURATION overrides the setting measured.
	if env := os.Getenv("BENCH_RAFT_TIMEOUT"); env != "" {
		raftTimeout = env
	}
	var extra []string
	if raftTimeout != "" {
		extra = append(extra, "-raft-timeout="+raftTimeout)
	} else {
		raftTimeout = "default"
	}
	c := clustertest.StartCluster(s.t, clustertest.ClusterOptions{Servers: 3, ExtraArgs: extra})
	leader := c.WaitLeader(s.t, 60*time.Second)
	w := c.NewWorker("fo", "-noop-executor", "-max-active-runs=64")
	defer stopCluster(c, w)
	if err := w.Start(); err != nil {
		s.t.Fatal(err)
	}
	waitWorkers(s.t, leader, 1)
	var ds []time.Duration
	timeouts := 0
	for k := 0; k < kills; k++ {
		leader = c.WaitLeader(s.t, 60*time.Second)
		var survivors []*clustertest.Agent
		for _, a := range c.Agents {
			if a != leader {
				survivors = append(survivors, a)
			}
		}
		killed := leader
		killed.Kill()
		t0 := time.Now()
		var first atomic.Int64 // unix nanos of the first probe's start
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		var wg sync.WaitGroup
		for p := 0; p < 1000 && ctx.Err() == nil && first.Load() == 0; p++ {
			id := fmt.Sprintf("fo-%d-%d", k, p)
			wg.Add(1)
			go func(a *clustertest.Agent) {
				defer wg.Done()
				if code, err := a.PostJSONTimeout("/api/v2/dag-runs", inlineRun(id, "true"), nil, 30*time.Second); err != nil || code >= 300 {
					return
				}
				for ctx.Err() == nil && first.Load() == 0 {
					var run wire.Run
					if code, err := a.GetJSON("/api/v2/dag-runs/"+id+"?stale&index=0&wait=1s", &run); err == nil && code == 200 && run.StartedAt != "" {
						first.CompareAndSwap(0, parseTime(run.StartedAt).UnixNano())
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}(survivors[p%2])
			time.Sleep(20 * time.Millisecond) // the probes' spacing
		}
		wg.Wait()
		cancel()
		if first.Load() == 0 {
			// On an overloaded machine a probe may not start within the
			// minute: counted, not hidden, and the run goes on.
			timeouts++
		} else {
			ds = append(ds, time.Unix(0, first.Load()).Sub(t0))
		}
		if err := killed.Start(); err != nil {
			s.t.Fatal(err)
		}
		clustertest.WaitFor(s.t, 60*time.Second, "the killed server back", func() (bool, string) {
			h, err := killed.Health()
			return err == nil && h.Leader != "", fmt.Sprintf("%v", err)
		})
	}
	f := dist(ds)
	fo := figure{"name": name, "value": f["p50"], "unit": "ms kill -9 of the leader → first run started (median)", "median": f["p50"], "max": f["max"], "p99": f["p99"],
		"params": figure{"servers": 3, "kills": kills, "raft_timeout": raftTimeout}, "no_start_within_60s": timeouts}
	// Raft's timeout is the floor of a failover: a follower waits one to
	// two of it before it stands for election.
	timeout := time.Second
	if d, err := time.ParseDuration(raftTimeout); err == nil {
		timeout = d
	}
	fo["baseline"] = figure{"raft_timeout_ms": ms(timeout)}
	fo["ratio_to_raft_timeout"] = toFloat(f["p50"]) / ms(timeout)
	s.add(fo)
}

// reclaim: a worker killed → its run started on another worker.
func (s *suite) reclaim() {
	tries := s.pick(3, 1)
	ttl := "10s"
	if s.quick {
		ttl = "2s"
	}
	c := clustertest.StartCluster(s.t, clustertest.ClusterOptions{Servers: 3, ExtraArgs: []string{"-lease-ttl=" + ttl}})
	defer stopCluster(c)
	leader := c.WaitLeader(s.t, 60*time.Second)
	var ds []time.Duration
	for k := 0; k < tries; k++ {
		a := c.NewWorker(fmt.Sprintf("rc-a-%d", k))
		defer a.Kill()
		if err := a.Start(); err != nil {
			s.t.Fatal(err)
		}
		id := fmt.Sprintf("rc-%d", k)
		enqueue(s.t, leader, inlineRun(id, "sleep 300"))
		stepStarted(s.t, leader, id)
		b := c.NewWorker(fmt.Sprintf("rc-b-%d", k))
		defer b.Stop()
		if err := b.Start(); err != nil {
			s.t.Fatal(err)
		}
		waitWorkers(s.t, leader, 2*k+2)
		a.Kill()
		t0 := time.Now()
		var run wire.Run
		clustertest.WaitFor(s.t, 3*time.Minute, "the run started again elsewhere", func() (bool, string) {
			code, err := leader.GetJSON("/api/v2/dag-runs/"+id, &run)
			return err == nil && code == 200 && run.Attempt >= 2 && run.StartedAt != "", fmt.Sprintf("attempt %d", run.Attempt)
		})
		var second time.Time
		for _, at := range run.Attempts {
			if at.Attempt == 2 {
				second = parseTime(at.StartedAt)
			}
		}
		ds = append(ds, second.Sub(t0))
		b.Stop()
	}
	f := dist(ds)
	ttlDuration, _ := time.ParseDuration(ttl)
	s.add(figure{"name": "reclaim", "value": f["p50"], "unit": "ms worker killed → its run started elsewhere (median)", "max": f["max"],
		"params": figure{"tries": tries, "lease_ttl": ttl, "offline_after": "30s (default)"},
		// The lease TTL is the floor: the leader takes a run back only
		// once its lease has gone unrenewed that long.
		"baseline":           figure{"lease_ttl_ms": ms(ttlDuration)},
		"ratio_to_lease_ttl": toFloat(f["p50"]) / ms(ttlDuration),
		"note":               "bounded by the lease TTL: a killed worker's lease is not renewed, and the leader takes the run back when it expires"})
}

// ---- matching, snapshots, catch-up, heartbeats ------------------------

func benchSelectors() []map[string]string {
	var out []map[string]string
	for r := 0; r < 10; r++ {
		out = append(out, map[string]string{"region": fmt.Sprintf("r%d", r)})
		for t := 0; t < 4; t++ {
			out = append(out, map[string]string{"region": fmt.Sprintf("r%d", r), "tier": fmt.Sprintf("t%d", t)})
		}
	}
	return out
}

// fillState enqueues n runs over the 50 selectors, 1,000 per command.
func fillState(t testing.TB, n int, steps int) *store.StateStore {
	state, err := store.NewStateStore()
	if err != nil {
		t.Fatal(err)
	}
	selectors := benchSelectors()
	var stepSpecs []*daguhav1.StepSpec
	for i := 0; i < steps; i++ {
		stepSpecs = append(stepSpecs, &daguhav1.StepSpec{Name: fmt.Sprintf("step-%d", i), Command: "echo a typical command line"})
	}
	index := uint64(1)
	for start := 0; start < n; start += 1000 {
		var runs []*daguhav1.Run
		for i := start; i < min(start+1000, n); i++ {
			runs = append(runs, &daguhav1.Run{Id: fmt.Sprintf("run-%08d", i), DagName: "bench", EnqueuedAtUnixNano: int64(i),
				Dag: &daguhav1.DagSpec{Name: "bench", WorkerSelector: selectors[i%len(selectors)], Steps: stepSpecs}})
		}
		if _, err := state.EnqueueRuns(index, runs); err != nil {
			t.Fatal(err)
		}
		index++
	}
	return state
}

// matching: the matching cost of one poll with many pending runs, in
// process; and a real leader's resident memory holding them.
func (s *suite) matching() {
	pending := s.pick(100000, 10000)
	workers := make([]*daguhav1.WorkerInfo, 1000)
	for j := range workers {
		workers[j] = &daguhav1.WorkerInfo{Id: fmt.Sprintf("w-%04d", j), MaxActiveRuns: 4,
			Labels: map[string]string{"region": fmt.Sprintf("r%d", j%10), "tier": fmt.Sprintf("t%d", j%4)}}
	}
	polls := func(state *store.StateStore) figure {
		var ds []time.Duration
		for i := 0; i < 20000; i++ {
			start := time.Now()
			run, err := dispatch.MatchOnce(state, workers[i%len(workers)])
			ds = append(ds, time.Since(start))
			if err != nil || run == nil {
				s.t.Fatalf("match: %v %v", run, err)
			}
		}
		return dist(ds)
	}
	// The baseline: the same polls over the same 50 selectors with 1,000
	// runs pending. Matching reads the head of each selector's queue, so
	// its cost must not grow with what waits behind the heads.
	small := polls(fillState(s.t, 1000, 1))
	f := polls(fillState(s.t, pending, 1))
	s.add(figure{"name": "matching", "value": f["p99"], "unit": "ms per poll's matching (p99)", "p50": f["p50"], "p99": f["p99"], "max": f["max"],
		"params":                    figure{"pending": pending, "selectors": 50, "workers": 1000, "polls": 20000, "in_process": true},
		"baseline":                  figure{"pending": 1000, "p50": small["p50"], "p99": small["p99"]},
		"ratio_p50_to_1000_pending": toFloat(f["p50"]) / toFloat(small["p50"]),
		"ratio_p99_to_1000_pending": toFloat(f["p99"]) / toFloat(small["p99"])})

	// A real server holding pending runs nobody takes.
	real := s.pick(100000, 2000)
	c := clustertest.StartCluster(s.t, clustertest.ClusterOptions{Servers: 1})
	leader := c.WaitLeader(s.t, 60*time.Second)
	idle := rssMiB(leader.Pid())
	var next atomic.Int64
	var wg sync.WaitGroup
	for cl := 0; cl < 64; cl++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(real) {
					return
				}
				body := inlineRun(fmt.Sprintf("pend-%d", i), "true")
				body.Dag.WorkerSelector = benchSelectors()[i%50]
				_, _ = postKeepAlive(leader, "/api/v2/dag-runs", body)
			}
		}()
	}
	wg.Wait()
	rss := rssMiB(leader.Pid())
	s.add(figure{"name": "matching_leader_rss", "value": rss, "unit": "MiB resident (leader)", "params": figure{"pending": real, "servers": 1},
		"baseline": figure{"idle_leader_mib": idle}, "ratio_to_idle": rss / idle,
		"kib_per_pending_run": (rss - idle) * 1024 / float64(real)})
	leader.Stop()
}

func rssMiB(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return -1
}

// snapshot: save and restore of the whole state, in process.
func (s *suite) snapshot() {
	n := s.pick(1000000, 20000)
	state := fillState(s.t, n, 2)
	path := filepath.Join(s.t.TempDir(), "snapshot")
	f, err := os.Create(path)
	if err != nil {
		s.t.Fatal(err)
	}
	var save time.Duration
	saveProfile := s.profileHere("snapshot-save", func() {
		start := time.Now()
		if err := fsm.WriteSnapshot(f, state, uint64(n/1000)); err != nil {
			s.t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			s.t.Fatal(err)
		}
		save = time.Since(start)
	})
	f.Close()
	info, _ := os.Stat(path)
	state = nil
	runtime.GC()
	r, err := os.Open(path)
	if err != nil {
		s.t.Fatal(err)
	}
	var (
		restored *store.StateStore
		restore  time.Duration
	)
	restoreProfile := s.profileHere("snapshot-restore", func() {
		start := time.Now()
		restored, _, err = fsm.ReadSnapshot(r)
		restore = time.Since(start)
	})
	r.Close()
	if err != nil {
		s.t.Fatal(err)
	}
	count := 0
	_ = restored.EachRun(func(*daguhav1.Run) bool { count++; return true })
	if count != n {
		s.t.Fatalf("restored %d runs of %d", count, n)
	}
	rawWrite, rawRead := rawFileTimes(s.t, path)
	s.add(figure{"name": "snapshot_save", "value": save.Seconds(), "unit": "s", "params": figure{"runs": n, "bytes": info.Size(), "fsync": true}, "profile": saveProfile,
		"baseline": figure{"raw_write_s": rawWrite.Seconds()}, "ratio_to_raw_write": save.Seconds() / rawWrite.Seconds()})
	s.add(figure{"name": "snapshot_restore", "value": restore.Seconds(), "unit": "s", "params": figure{"runs": n, "bytes": info.Size()}, "profile": restoreProfile,
		"baseline": figure{"raw_read_s": rawRead.Seconds()}, "ratio_to_raw_read": restore.Seconds() / rawRead.Seconds()})
	if s.restoreRate == 0 && restore > 0 {
		s.restoreRate = float64(n) / restore.Seconds()
	}
}

// catchUp: a server that lost its data directory rejoins a cluster
// holding runs and applies everything.
func (s *suite) catchUp() {
	runs := s.pick(20000, 300)
	c := clustertest.StartCluster(s.t, clustertest.ClusterOptions{Servers: 3})
	defer stopCluster(c)
	leader := c.WaitLeader(s.t, 60*time.Second)
	var next atomic.Int64
	var wg sync.WaitGroup
	for cl := 0; cl < 64; cl++ {
		wg.Add(1)
		go func(cl int) {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(runs) {
					return
				}
				body := inlineRun(fmt.Sprintf("cu-%d", i), "true")
				body.Dag.WorkerSelector = map[string]string{"nobody": "here"}
				_, _ = postKeepAlive(c.Agents[cl%3], "/api/v2/dag-runs", body)
			}
		}(cl)
	}
	wg.Wait()
	var follower *clustertest.Agent
	for _, a := range c.Agents {
		if a != leader {
			follower = a
		}
	}
	follower.Kill()
	if err := os.RemoveAll(follower.DataDir); err != nil {
		s.t.Fatal(err)
	}
	target := fsmIndexOf(s.t, leader)
	start := time.Now()
	if err := follower.Start(); err != nil {
		s.t.Fatal(err)
	}
	clustertest.WaitFor(s.t, 5*time.Minute, "the wiped server caught up", func() (bool, string) {
		got := fsmIndexOf(nil, follower)
		return got >= target, fmt.Sprintf("%d of %d", got, target)
	})
	took := time.Since(start)
	f := figure{"name": "catch_up", "value": took.Seconds(), "unit": "s from start of a wiped server to applying the leader's index",
		"params": figure{"runs": runs, "index": target}}
	// The baseline: restoring as many runs from a snapshot in process, at
	// the rate the snapshot figure of this run measured; what catch-up
	// adds is the process start, the election of its place and the copy.
	if s.restoreRate > 0 {
		local := float64(runs) / s.restoreRate
		f["baseline"] = figure{"in_process_restore_s": local}
		f["ratio_to_in_process_restore"] = took.Seconds() / local
	}
	s.add(f)
}

// fsmIndexOf is the index of the last command a server applied (0 when
// it does not answer; with t, a failure to answer fails the test).
func fsmIndexOf(t testing.TB, a *clustertest.Agent) uint64 {
	var self wire.Self
	if _, err := a.GetJSON("/api/v2/agent/self", &self); err != nil && t != nil {
		t.Fatal(err)
	}
	return self.Raft.FSMIndex
}

func (s *suite) heartbeats() {
	workers := s.pick(10000, 500)
	seconds := s.pick(10, 1)
	f := heartbeatLoad(s.t, workers, seconds, func(leader *clustertest.Agent, seconds int) func() map[string]any {
		return s.profileServer(leader, "heartbeats-leader", seconds)
	})
	s.add(f)
}

// ---- output ------------------------------------------------------------

func (s *suite) summary(took time.Duration) {
	w := os.Stderr
	fmt.Fprintf(w, "\n%-28s %14s  %s\n", "figure", "value", "unit")
	for _, f := range s.figures {
		fmt.Fprintf(w, "%-28v %14.2f  %v\n", f["name"], toFloat(f["value"]), f["unit"])
	}
	fmt.Fprintf(w, "(%s, quick=%t, load average now %.2f)\n", took.Round(time.Second), s.quick, loadAverage())
	machine := figure{"go": runtime.Version(), "nproc": runtime.NumCPU(), "cpu": cpuModel(), "memory_mib": memMiB(), "quick": s.quick,
		"date": time.Now().UTC().Format(time.RFC3339), "took_s": took.Seconds()}
	out, _ := json.MarshalIndent(figure{"machine": machine, "figures": s.figures}, "", "  ")
	dir := filepath.Join("results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Fatal(err)
	}
	name := s.runName()
	if err := os.WriteFile(filepath.Join(dir, name+".json"), append(out, '\n'), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if s.partial() != "" {
		return
	}
	// A whole run, quick or full, fails unless it printed every figure
	// of the benchmarks issue with its unit, parameters, distribution and
	// ratio to a baseline.
	if problems := incomplete(s.figures); len(problems) > 0 {
		s.t.Fatalf("the run lacks figures (results kept in %s):\n%s", filepath.Join(dir, name+".json"), strings.Join(problems, "\n"))
	}
	if !s.quick {
		if err := writeCharts(s.figures, filepath.Join("..", "..", "docs")); err != nil {
			s.t.Fatal(err)
		}
	}
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int:
		return float64(x)
	}
	return 0
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "model name") {
			return strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
		}
	}
	return "unknown"
}

func memMiB() float64 {
	data, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

var benchHTTP = &http.Client{Timeout: 10 * time.Second}

func httpGet(url string) (string, error) {
	resp, err := benchHTTP.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return string(data), err
}

// benchClient keeps its connections open between requests, as a real
// client would: the load generator shares the machine with the servers,
// and a TCP handshake per request would be its cost, not theirs.
var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}

// postKeepAlive posts a JSON body over benchClient and returns the status
// (an error answer is its status, not an error).
// postBatch sends one bulk enqueue on the bench's kept-alive connections.
func postBatch(a *clustertest.Agent, batch wire.EnqueueBatch, answer *wire.EnqueuedBatch) error {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	api := client.New(a.HTTPAddr(), client.Options{HTTPClient: benchClient})
	_, err := api.Do(ctx, http.MethodPost, "/api/v2/dag-runs", batch, answer)
	return err
}

func postKeepAlive(a *clustertest.Agent, path string, body any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	api := client.New(a.HTTPAddr(), client.Options{HTTPClient: benchClient})
	code, err := api.Do(ctx, http.MethodPost, path, body, nil)
	if client.StatusCode(err) != 0 {
		return code, nil
	}
	return code, err
}

// stopCluster stops a part's workers, then kills its servers, so the next part
// runs on a machine without them (the test's cleanup would only stop
// them at the end of the whole suite).
func stopCluster(c *clustertest.Cluster, workers ...*clustertest.Process) {
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.Stop()
		}()
	}
	wg.Wait()
	// The servers' state is thrown away: kill them rather than wait for
	// each to hand over leadership and leave.
	for _, a := range c.Agents {
		a.Kill()
	}
}

// partial names the part a run was limited to (BENCH_ONLY or BENCH_FROM),
// or is empty for a whole run.
func (s *suite) partial() string {
	if only := os.Getenv("BENCH_ONLY"); only != "" {
		return "only-" + only
	}
	if from := os.Getenv("BENCH_FROM"); from != "" {
		return "from-" + from
	}
	return ""
}

// runName names a run's results and profiles: the date, then -quick and
// the part for reduced and partial runs, so neither replaces the day's
// full run (nor the charts in docs/, drawn only from full runs).
func (s *suite) runName() string {
	name := time.Now().UTC().Format("2006-01-02")
	if s.quick {
		name += "-quick"
	}
	if p := s.partial(); p != "" {
		name += "-" + p
	}
	return name
}
