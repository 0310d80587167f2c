package bench

import (
	"bufio"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch"
)

// samples is one scrape of a server's /metrics: series (name and labels,
// as written) to value.
type samples map[string]float64

func scrapeSamples(a *clustertest.Agent) samples {
	s := samples{}
	text, err := httpGet(a.HTTPAddr() + "/metrics")
	if err != nil {
		return s
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		cut := strings.LastIndexByte(line, ' ')
		if cut < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[cut+1:], 64); err == nil {
			s[line[:cut]] = v
		}
	}
	return s
}

// labelValue is the value of label in a series written as name{a="x",...}.
func labelValue(series, label string) (string, bool) {
	i := strings.Index(series, label+`="`)
	if i < 0 || i > 0 && series[i-1] != '{' && series[i-1] != ',' {
		return "", false
	}
	rest := series[i+len(label)+2:]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	return rest[:j], true
}

// histogramDelta is a histogram's growth between two scrapes: cumulative
// bucket counts by upper bound, the count and the sum, for the series of
// name whose label key has value (key "" takes every series).
type histogramDelta struct {
	buckets    map[float64]float64
	count, sum float64
}

func deltaOf(before, after samples, name, key, value string) histogramDelta {
	h := histogramDelta{buckets: map[float64]float64{}}
	match := func(series string) bool {
		if key == "" {
			return true
		}
		v, ok := labelValue(series, key)
		return ok && v == value
	}
	for series, v := range after {
		base, _, _ := strings.Cut(series, "{")
		if !match(series) {
			continue
		}
		d := v - before[series]
		switch base {
		case name + "_bucket":
			le, ok := labelValue(series, "le")
			if !ok {
				continue
			}
			bound, err := strconv.ParseFloat(le, 64)
			if err != nil {
				continue
			}
			h.buckets[bound] += d
		case name + "_count":
			h.count += d
		case name + "_sum":
			h.sum += d
		}
	}
	return h
}

// quantile interpolates within buckets as PromQL's histogram_quantile
// does; NaN with no observation.
func (h histogramDelta) quantile(q float64) float64 {
	bounds := make([]float64, 0, len(h.buckets))
	for b := range h.buckets {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	if len(bounds) == 0 || h.buckets[math.Inf(1)] <= 0 {
		return math.NaN()
	}
	total := h.buckets[math.Inf(1)]
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range bounds {
		n := h.buckets[b]
		if n >= rank {
			if math.IsInf(b, 1) {
				return lower
			}
			if n == below {
				return b
			}
			return lower + (b-lower)*(rank-below)/(n-below)
		}
		lower, below = b, n
	}
	return lower
}

// msFigure is the p50, p99 and mean of a histogram's growth in
// milliseconds, with its count.
func (h histogramDelta) msFigure() figure {
	f := figure{"n": h.count}
	if h.count > 0 {
		f["p50"] = round3(h.quantile(0.5) * 1000)
		f["p99"] = round3(h.quantile(0.99) * 1000)
		f["mean"] = round3(h.sum / h.count * 1000)
	}
	return f
}

// serverMeter reads the servers' /metrics before and after a load: the
// stages of a run's life the leader timed, Raft's own timings, and what
// the Go runtime says of allocations and GC.
type serverMeter struct {
	leader    *clustertest.Agent
	followers []*clustertest.Agent
	before    map[*clustertest.Agent]samples
}

func newServerMeter(c *clustertest.Cluster, leader *clustertest.Agent) *serverMeter {
	m := &serverMeter{leader: leader, before: map[*clustertest.Agent]samples{}}
	for _, a := range c.Agents {
		if a != leader && a.Running() {
			m.followers = append(m.followers, a)
		}
	}
	for _, a := range m.all() {
		m.before[a] = scrapeSamples(a)
	}
	return m
}

func (m *serverMeter) all() []*clustertest.Agent {
	return append([]*clustertest.Agent{m.leader}, m.followers...)
}

// Raft timings a throughput figure reports, by role.
var (
	leaderRaftOps   = []string{"commit", "leader_log_write", "log_store", "fsm_apply"}
	followerRaftOps = []string{"follower_append", "follower_log_write", "fsm_apply"}
)

// stop scrapes again and returns the figures of the load in between.
func (m *serverMeter) stop(runs int) figure {
	after := map[*clustertest.Agent]samples{}
	for _, a := range m.all() {
		after[a] = scrapeSamples(a)
	}
	// Stages: summed over servers (the leader times them; a failover in
	// the middle moves them to another).
	stages := figure{}
	for _, stage := range dispatch.Stages {
		var h histogramDelta
		for _, a := range m.all() {
			h = h.add(deltaOf(m.before[a], after[a], "daguha_run_stage_seconds", "stage", stage))
		}
		stages[stage] = h.msFigure()
	}
	raftMs := figure{}
	leaderRaft := figure{}
	for _, op := range leaderRaftOps {
		leaderRaft[op] = deltaOf(m.before[m.leader], after[m.leader], "daguha_raft_timing_seconds", "op", op).msFigure()
	}
	// daguha's own: a command handed to Raft until applied on the leader
	// (grant_commit less this is the wait for a place in the batcher).
	leaderRaft["apply"] = deltaOf(m.before[m.leader], after[m.leader], "daguha_raft_commit_duration_seconds", "", "").msFigure()
	raftMs["leader"] = leaderRaft
	if len(m.followers) > 0 {
		followerRaft := figure{}
		for _, op := range followerRaftOps {
			var h histogramDelta
			for _, a := range m.followers {
				h = h.add(deltaOf(m.before[a], after[a], "daguha_raft_timing_seconds", "op", op))
			}
			followerRaft[op] = h.msFigure()
		}
		raftMs["followers"] = followerRaft
		replication := figure{}
		for _, a := range m.followers {
			replication[a.Name] = deltaOf(m.before[m.leader], after[m.leader], "daguha_raft_replication_seconds", "peer", a.Name).msFigure()
		}
		raftMs["replication_leader_to"] = replication
	}
	// Allocations and GC, by role: the runtime's counters.
	delta := func(as []*clustertest.Agent, series string) float64 {
		d := 0.0
		for _, a := range as {
			d += after[a][series] - m.before[a][series]
		}
		return d
	}
	allocs, allocBytes, gcShare, gcCycles := figure{}, figure{}, figure{}, figure{}
	roles := map[string][]*clustertest.Agent{"leader": {m.leader}}
	if len(m.followers) > 0 {
		roles["followers"] = m.followers
	}
	for role, as := range roles {
		if runs > 0 {
			allocs[role] = math.Round(delta(as, "go_memstats_mallocs_total") / float64(runs))
			allocBytes[role] = math.Round(delta(as, "go_memstats_alloc_bytes_total") / float64(runs))
		}
		gc := delta(as, "go_cpu_classes_gc_total_cpu_seconds_total")
		all := gc + delta(as, "go_cpu_classes_user_cpu_seconds_total") + delta(as, "go_cpu_classes_scavenge_total_cpu_seconds_total")
		if all > 0 {
			gcShare[role] = round3(gc / all)
		}
		gcCycles[role] = delta(as, "go_gc_duration_seconds_count")
	}
	return figure{"stages_ms": stages, "raft_ms": raftMs, "allocs_per_run": allocs, "alloc_bytes_per_run": allocBytes,
		"gc_cpu_share": gcShare, "gc_cycles": gcCycles}
}

// add is the sum of two histograms' growth.
func (h histogramDelta) add(o histogramDelta) histogramDelta {
	sum := histogramDelta{buckets: map[float64]float64{}, count: h.count + o.count, sum: h.sum + o.sum}
	for b, n := range h.buckets {
		sum.buckets[b] += n
	}
	for b, n := range o.buckets {
		sum.buckets[b] += n
	}
	return sum
}

// dominantStage names the stage with the largest mean among those timed.
func dominantStage(stages figure) string {
	best, bestMean := "", -1.0
	for _, stage := range dispatch.Stages {
		f, _ := stages[stage].(figure)
		if mean, ok := f["mean"].(float64); ok && mean > bestMean {
			best, bestMean = stage, mean
		}
	}
	return best
}

// lacksInside lists what a printed throughput figure lacks of what the
// servers said of its load: every stage's p50 and p99, allocations per
// run and GC's share of the CPU, by role.
func lacksInside(where string, f map[string]any) []string {
	var problems []string
	stages, _ := f["stages_ms"].(map[string]any)
	for _, stage := range dispatch.Stages {
		s, _ := stages[stage].(map[string]any)
		_, p50 := number(s["p50"])
		_, p99 := number(s["p99"])
		if !p50 || !p99 {
			problems = append(problems, fmt.Sprintf("%s: no p50 and p99 of stage %s", where, stage))
		}
	}
	for _, k := range []string{"allocs_per_run", "gc_cpu_share"} {
		if by, _ := f[k].(map[string]any); len(by) == 0 {
			problems = append(problems, fmt.Sprintf("%s: no %s", where, k))
		}
	}
	return problems
}
