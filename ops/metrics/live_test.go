package metrics_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.CleanupBinary()
	os.Exit(code)
}

// repoFile is a path from the repository's root.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", rel)
}

// promtool returns the path of Prometheus' promtool, or skips the test.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed: cannot lint metrics or rules; install prometheus (as root: apt-get install --no-install-recommends prometheus, or make deps)")
	}
	return path
}

func runPromtool(t *testing.T, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// The alert rules are valid, and their unit tests (which fire each alert
// and keep it quiet where it should be) pass.
func TestAlertRules(t *testing.T) {
	runPromtool(t, "", "check", "rules", repoFile(t, "ops/prometheus/alerts.yml"))
	runPromtool(t, "", "test", "rules", repoFile(t, "ops/prometheus/alerts_test.yml"))
	runPromtool(t, "", "check", "config", repoFile(t, "ops/prometheus/prometheus.yml"))
}

// exposition is one scrape: every sample line by its series, as written.
type exposition struct {
	text    string
	samples map[string]float64 // `name{labels}` -> value
	names   map[string]bool    // sample names (with _bucket, _sum, _count)
}

func scrape(t *testing.T, url string) (exposition, error) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return exposition{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return exposition{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return exposition{}, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	e := exposition{text: string(body), samples: map[string]float64{}, names: map[string]bool{}}
	for _, line := range strings.Split(e.text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cut := strings.LastIndexByte(line, ' ')
		value, err := strconv.ParseFloat(line[cut+1:], 64)
		if err != nil {
			return exposition{}, fmt.Errorf("sample line %q: %v", line, err)
		}
		series := line[:cut]
		e.samples[series] = value
		name, _, _ := strings.Cut(series, "{")
		e.names[name] = true
	}
	return e, nil
}

// sum adds every sample whose series starts with prefix.
func (e exposition) sum(prefix string) float64 {
	total := 0.0
	for series, v := range e.samples {
		if strings.HasPrefix(series, prefix) {
			total += v
		}
	}
	return total
}

func enqueue(t *testing.T, a *clustertest.Agent, id string, selector map[string]string) {
	t.Helper()
	body := wire.EnqueueRequest{DagRunID: id, Dag: &wire.InlineDag{
		Name: "metrics-check", WorkerSelector: selector,
		Steps: []wire.InlineStep{{Name: "hello", Command: "echo hello"}},
	}}
	var resp wire.Enqueued
	code, err := a.PostJSONTimeout("/api/v2/dag-runs", body, &resp, 15*time.Second)
	if err != nil || code != http.StatusCreated || !resp.Created {
		t.Fatalf("enqueue %s through %s: HTTP %d, %v", id, a.Name, code, err)
	}
}

// TestLiveClusterMetrics starts three servers and a worker as real
// processes, runs work through them, and checks what they export:
// promtool finds nothing to lint in any /metrics, the key series exist
// and move (finished runs grow by what was run; the queue of a selector
// nobody matches shows exactly the runs waiting on it, with no matching
// worker), and every metric the Grafana dashboard queries is exported.
func TestLiveClusterMetrics(t *testing.T) {
	promtool(t)
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 60*time.Second)
	workerMetrics := "127.0.0.1:" + strconv.Itoa(clustertest.FreePorts(t, 1)[0])
	worker := c.NewWorker("metrics-worker", "-labels=gpu=true", "-max-active-runs=4", "-metrics-addr="+workerMetrics)
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}

	metricsURL := func(a *clustertest.Agent) string { return a.HTTPAddr() + "/metrics" }
	scrapeAll := func() ([]exposition, error) {
		var all []exposition
		for _, a := range c.Agents {
			e, err := scrape(t, metricsURL(a))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", a.Name, err)
			}
			all = append(all, e)
		}
		return all, nil
	}
	before, err := scrapeAll()
	if err != nil {
		t.Fatal(err)
	}
	finishedBefore := 0.0
	for _, e := range before {
		finishedBefore += e.sum(`daguha_runs_finished_total{status="succeeded"}`)
	}

	// Runs the worker takes, enqueued through every server (followers
	// forward to the leader), and runs for a selector no worker has.
	const matched, stranded = 12, 3
	for i := range matched {
		enqueue(t, c.Agents[i%len(c.Agents)], "gpu-"+strconv.Itoa(i), map[string]string{"gpu": "true"})
	}
	for i := range stranded {
		enqueue(t, c.Agents[i%len(c.Agents)], "stranded-"+strconv.Itoa(i), map[string]string{"pool": "nobody-has-this"})
	}

	var after []exposition
	clustertest.WaitFor(t, 60*time.Second, "every matched run counted finished, and the stranded queue seen on every server", func() (bool, string) {
		after, err = scrapeAll()
		if err != nil {
			return false, err.Error()
		}
		finished := 0.0
		for _, e := range after {
			finished += e.sum(`daguha_runs_finished_total{status="succeeded"}`)
		}
		if finished-finishedBefore < matched {
			return false, fmt.Sprintf("finished succeeded grew by %v of %d", finished-finishedBefore, matched)
		}
		for i, e := range after {
			depth, ok := e.samples[`daguha_dispatch_queue_depth{selector="pool=nobody-has-this"}`]
			if !ok || depth != stranded {
				return false, fmt.Sprintf("%s: queue depth of the stranded selector is %v (present %v)", c.Agents[i].Name, depth, ok)
			}
			// A follower applies the last grants a moment after the
			// leader counted the runs finished.
			if depth, ok := e.samples[`daguha_dispatch_queue_depth{selector="gpu=true"}`]; ok {
				return false, fmt.Sprintf("%s: the gpu=true queue still shows %v runs", c.Agents[i].Name, depth)
			}
		}
		return true, ""
	})

	for i, e := range after {
		name := c.Agents[i].Name
		t.Run("promtool check metrics "+name, func(t *testing.T) {
			runPromtool(t, e.text, "check", "metrics")
		})
		if got := e.samples[`daguha_dispatch_queue_matching_workers{selector="pool=nobody-has-this"}`]; got != 0 {
			t.Errorf("%s: %v workers match the stranded selector; want 0", name, got)
		}
		if got := e.samples[`daguha_workers{health="healthy"}`]; got != 1 {
			t.Errorf("%s: %v healthy workers; want 1", name, got)
		}
		if got := e.sum(`daguha_raft_state{state="leader"}`); (got == 1) != (c.Agents[i] == leader) {
			t.Errorf("%s: raft_state leader = %v, but the leader is %s", name, got, leader.Name)
		}
		if got := e.samples["daguha_raft_has_leader"]; got != 1 {
			t.Errorf("%s: raft_has_leader = %v", name, got)
		}
		if e.samples["daguha_raft_applied_index"] < float64(matched+stranded) {
			t.Errorf("%s: applied index %v below the %d enqueues alone", name, e.samples["daguha_raft_applied_index"], matched+stranded)
		}
		if series := `daguha_http_requests_total{code="201",method="post",route="/api/v2/dag-runs"}`; e.samples[series] == 0 {
			t.Errorf("%s took enqueues but %s is 0 or missing", name, series)
		}
		for _, want := range []string{"go_goroutines", "process_resident_memory_bytes", "daguha_raft_term", "daguha_raft_commit_index",
			"daguha_raft_apply_duration_seconds_count", "daguha_dispatch_queue_wait_seconds_bucket", "daguha_raft_leader_changes_total",
			"daguha_run_stage_seconds_bucket", "daguha_raft_timing_seconds_bucket", "go_cpu_classes_gc_total_cpu_seconds_total", "go_memstats_mallocs_total"} {
			if !e.names[want] {
				t.Errorf("%s exports no %s", name, want)
			}
		}
	}
	// The counters of the leader's work, summed over servers.
	total := func(prefix string) float64 {
		sum := 0.0
		for _, e := range after {
			sum += e.sum(prefix)
		}
		return sum
	}
	if got := total("daguha_runs_enqueued_total"); got != matched+stranded {
		t.Errorf("runs enqueued summed over servers: %v; want %d", got, matched+stranded)
	}
	if got := total("daguha_runs_started_total"); got != matched {
		t.Errorf("runs started summed over servers: %v; want %d", got, matched)
	}
	if got := total("daguha_dispatch_queue_wait_seconds_count"); got != matched {
		t.Errorf("queue waits observed: %v; want %d", got, matched)
	}
	if got := total("daguha_raft_commit_duration_seconds_count"); got < matched {
		t.Errorf("raft commits timed: %v; want at least %d", got, matched)
	}
	// Every run went through every stage of its life once, timed by the
	// leader: matched, granted, returned to the poll, first report, finish.
	for _, stage := range []string{"queue_wait", "grant_commit", "poll_return", "start_report", "finish_commit"} {
		if got := total(`daguha_run_stage_seconds_count{stage="` + stage + `"}`); got != matched {
			t.Errorf("stage %s observed %v times; want %d (one per run)", stage, got, matched)
		}
	}
	// Raft's own timings, bridged from go-metrics: the leader committed,
	// stored and applied entries and replicated them to each follower;
	// each follower stored what it was sent.
	for i, e := range after {
		name := c.Agents[i].Name
		ops := []string{"log_store", "fsm_apply"}
		if c.Agents[i] == leader {
			ops = append(ops, "commit", "leader_log_write")
		} else {
			ops = append(ops, "follower_log_write", "follower_append")
		}
		for _, op := range ops {
			if got := e.samples[`daguha_raft_timing_seconds_count{op="`+op+`"}`]; got == 0 {
				t.Errorf("%s: raft timing %s never observed", name, op)
			}
		}
		peers := map[string]bool{}
		contacts := 0
		for series, v := range e.samples {
			if strings.HasPrefix(series, "daguha_raft_replication_seconds_count{") && strings.Contains(series, `kind="append_entries"`) && v > 0 {
				peers[series] = true
			}
			if strings.HasPrefix(series, "daguha_raft_peer_last_contact_seconds{") {
				contacts++
			}
		}
		if c.Agents[i] == leader {
			if len(peers) != len(c.Agents)-1 || contacts != len(c.Agents)-1 {
				t.Errorf("%s (leader): replication timed to %d peers, last contact of %d; want %d each", name, len(peers), contacts, len(c.Agents)-1)
			}
		} else if contacts != 0 {
			t.Errorf("%s (follower) exports %d peer contacts; only the leader knows them", name, contacts)
		}
	}
	// The worker calls one server at a time: some server counts its
	// heartbeats (once a second, so wait for one) by gRPC method.
	clustertest.WaitFor(t, 15*time.Second, "a successful Heartbeat call counted by gRPC method", func() (bool, string) {
		all, err := scrapeAll()
		if err != nil {
			return false, err.Error()
		}
		n := 0.0
		for _, e := range all {
			n += e.sum(`daguha_grpc_server_handled_total{grpc_code="OK",grpc_method="Heartbeat",`)
		}
		return n > 0, fmt.Sprintf("%v heartbeats counted", n)
	})
	if got := total(`daguha_raft_apply_duration_seconds_count{path="forwarded"}`); got == 0 {
		t.Errorf("no forwarded write timed, though followers took enqueues")
	}

	// A queued run cancelled ends with no worker's finish: it is counted
	// cancelled all the same (by the server that applied the cancel), and
	// leaves the stranded queue.
	cancelledBefore := total(`daguha_runs_finished_total{status="cancelled"}`)
	var follower *clustertest.Agent
	for _, a := range c.Agents {
		if a != leader {
			follower = a
		}
	}
	if code, err := follower.PostJSON("/api/v2/dag-runs/stranded-0/cancel", nil, nil); err != nil || code != http.StatusOK {
		t.Fatalf("cancel stranded-0 through %s: HTTP %d, %v", follower.Name, code, err)
	}
	clustertest.WaitFor(t, 30*time.Second, "the cancelled queued run counted, and gone from the queue", func() (bool, string) {
		all, err := scrapeAll()
		if err != nil {
			return false, err.Error()
		}
		cancelled := 0.0
		for i, e := range all {
			cancelled += e.sum(`daguha_runs_finished_total{status="cancelled"}`)
			if depth := e.samples[`daguha_dispatch_queue_depth{selector="pool=nobody-has-this"}`]; depth != stranded-1 {
				return false, fmt.Sprintf("%s: stranded queue depth %v", c.Agents[i].Name, depth)
			}
		}
		return cancelled-cancelledBefore == 1, fmt.Sprintf("cancelled grew by %v", cancelled-cancelledBefore)
	})

	w, err := scrape(t, "http://"+workerMetrics+"/metrics")
	if err != nil {
		t.Fatalf("worker metrics: %v", err)
	}
	t.Run("promtool check metrics worker", func(t *testing.T) {
		runPromtool(t, w.text, "check", "metrics")
	})
	if got := w.samples[`daguha_worker_runs_total{result="succeeded"}`]; got != matched {
		t.Errorf("worker ran %v runs to success; want %d", got, matched)
	}
	if got := w.samples[`daguha_worker_step_duration_seconds_count{status="succeeded"}`]; got != matched {
		t.Errorf("worker timed %v steps; want %d", got, matched)
	}
	if got := w.samples["daguha_worker_runs_in_progress"]; got != 0 {
		t.Errorf("worker has %v runs in progress after all ended", got)
	}
	if got := w.samples["daguha_worker_max_active_runs"]; got != 4 {
		t.Errorf("worker max_active_runs = %v; want 4", got)
	}

	t.Run("docs/metrics.md lists every metric", func(t *testing.T) {
		doc, err := os.ReadFile(repoFile(t, "docs/metrics.md"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range append(after, w) {
			for name := range e.names {
				if !strings.HasPrefix(name, "daguha_") {
					continue
				}
				family := name
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(name, suffix); ok && e.names[base+"_bucket"] {
						family = base
					}
				}
				if !strings.Contains(string(doc), "`"+family+"`") && !strings.Contains(string(doc), "`"+family+"{") {
					t.Errorf("%s is exported but docs/metrics.md does not list it", family)
				}
			}
		}
	})
	t.Run("dashboard queries name exported metrics", func(t *testing.T) {
		exported := map[string]bool{}
		for _, e := range append(after, w) {
			for name := range e.names {
				exported[name] = true
			}
		}
		checkDashboard(t, repoFile(t, "ops/grafana/dashboards/daguha.json"), exported)
	})
}

// metricName finds metric names in PromQL: daguha's, the Go runtime's
// and the process collector's (the only families the dashboard uses).
var metricName = regexp.MustCompile(`\b(?:daguha|go|process)_[a-zA-Z0-9_:]+`)

type dashboard struct {
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// checkDashboard parses the dashboard and fails for a panel without a
// query, a query naming no metric, or a metric not exported.
func checkDashboard(t *testing.T, path string, exported map[string]bool) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			all = append(all, p)
		}
	}
	walk(d.Panels)
	if len(all) < 10 {
		t.Fatalf("dashboard has %d panels; expected the cluster's whole picture", len(all))
	}
	var missing []string
	used := map[string]bool{}
	for _, p := range all {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			names := metricName.FindAllString(target.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no metric", p.Title, target.Expr)
			}
			for _, name := range names {
				used[name] = true
				if !exported[name] {
					missing = append(missing, fmt.Sprintf("%s (panel %q)", name, p.Title))
				}
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the dashboard queries metrics no server or worker exports:\n  %s", strings.Join(missing, "\n  "))
		return
	}
	t.Logf("%d panels query %d distinct metrics, all exported", len(all), len(used))
}
