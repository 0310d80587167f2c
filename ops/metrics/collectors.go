package metrics

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// InstrumentHTTP counts and times every request by the route pattern the
// ServeMux inside next matched (read from the request once served), never
// by its raw path: /api/v2/dag-runs/{dag_run_id} is one series however
// many runs there are.
func (m *Metrics) InstrumentHTTP(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	route := promhttp.WithLabelFromRequest("route", routeOf)
	timed := promhttp.InstrumentHandlerDuration(m.httpDuration, next, route)
	counted := promhttp.InstrumentHandlerCounter(m.httpRequests, timed, route)
	return promhttp.InstrumentHandlerInFlight(m.httpInFlight, counted)
}

// routeOf is the pattern the request was routed by, without its method
// (the method is a label of its own); "unmatched" when no pattern matched
// (a request refused before routing, for one).
func routeOf(r *http.Request) string {
	pattern := r.Pattern
	if _, path, ok := strings.Cut(pattern, " "); ok {
		pattern = path
	}
	if pattern == "" {
		return "unmatched"
	}
	return pattern
}

// RaftSource is what the Raft collector reads (a *raft.Raft).
type RaftSource interface {
	Stats() map[string]string
	State() raft.RaftState
	LeaderWithID() (raft.ServerAddress, raft.ServerID)
	GetConfiguration() raft.ConfigurationFuture
}

// WatchRaft exports the Raft node's state, read at every scrape, and
// Raft's own timings (raft_timings.go).
func (m *Metrics) WatchRaft(r RaftSource) {
	if m == nil {
		return
	}
	timings := installRaftTimings()
	if timings != nil {
		m.registry.MustRegister(timings)
	}
	m.registry.MustRegister(&raftCollector{m: m, raft: r, timings: timings})
}

var (
	raftStateDesc = prometheus.NewDesc(Namespace+"_raft_state",
		"This server's Raft role: 1 for the role it has (leader, follower, candidate, shutdown), 0 for the others.", []string{"state"}, nil)
	raftLeaderDesc = prometheus.NewDesc(Namespace+"_raft_has_leader",
		"1 when this server knows a cluster leader, else 0.", nil, nil)
	raftTermDesc = prometheus.NewDesc(Namespace+"_raft_term",
		"This server's current Raft term.", nil, nil)
	raftCommitDesc = prometheus.NewDesc(Namespace+"_raft_commit_index",
		"Highest Raft log index this server knows to be committed.", nil, nil)
	raftAppliedDesc = prometheus.NewDesc(Namespace+"_raft_applied_index",
		"Highest Raft log index applied to this server's state machine.", nil, nil)
	raftLastLogDesc = prometheus.NewDesc(Namespace+"_raft_last_log_index",
		"Last index in this server's Raft log.", nil, nil)
	raftSnapshotDesc = prometheus.NewDesc(Namespace+"_raft_last_snapshot_index",
		"Raft log index of this server's latest snapshot.", nil, nil)
	raftPendingDesc = prometheus.NewDesc(Namespace+"_raft_fsm_pending",
		"Committed entries waiting to be applied to this server's state machine.", nil, nil)
	raftPeersDesc = prometheus.NewDesc(Namespace+"_raft_peers",
		"Voters other than this server in the Raft configuration it knows.", nil, nil)
	raftContactDesc = prometheus.NewDesc(Namespace+"_raft_last_contact_seconds",
		"Seconds since a follower last heard from the leader (0 on the leader); absent before any contact.", nil, nil)
	raftPeerContactDesc = prometheus.NewDesc(Namespace+"_raft_peer_last_contact_seconds",
		"Leader only: seconds since each other server in the configuration last answered an AppendEntries or heartbeat "+
			"successfully, by peer id (the follower's replication lag in time); absent before its first answer.", []string{"peer"}, nil)
)

var raftStates = []raft.RaftState{raft.Leader, raft.Follower, raft.Candidate, raft.Shutdown}

type raftCollector struct {
	m       *Metrics
	raft    RaftSource
	timings *raftTimings
}

func (c *raftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{raftStateDesc, raftLeaderDesc, raftTermDesc, raftCommitDesc, raftAppliedDesc,
		raftLastLogDesc, raftSnapshotDesc, raftPendingDesc, raftPeersDesc, raftContactDesc, raftPeerContactDesc} {
		ch <- d
	}
}

func (c *raftCollector) Collect(ch chan<- prometheus.Metric) {
	state := c.raft.State()
	for _, s := range raftStates {
		v := 0.0
		if s == state {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(raftStateDesc, prometheus.GaugeValue, v, strings.ToLower(s.String()))
	}
	hasLeader := 0.0
	if _, id := c.raft.LeaderWithID(); id != "" {
		hasLeader = 1
	}
	ch <- prometheus.MustNewConstMetric(raftLeaderDesc, prometheus.GaugeValue, hasLeader)
	stats := c.raft.Stats()
	for key, desc := range map[string]*prometheus.Desc{
		"term": raftTermDesc, "commit_index": raftCommitDesc, "applied_index": raftAppliedDesc,
		"last_log_index": raftLastLogDesc, "last_snapshot_index": raftSnapshotDesc, "fsm_pending": raftPendingDesc,
		"num_peers": raftPeersDesc,
	} {
		v, err := strconv.ParseUint(stats[key], 10, 64)
		if err != nil {
			c.m.collectError("raft")
			continue
		}
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(v))
	}
	switch contact := stats["last_contact"]; contact {
	case "never", "":
	case "0":
		ch <- prometheus.MustNewConstMetric(raftContactDesc, prometheus.GaugeValue, 0)
	default:
		if d, err := time.ParseDuration(contact); err == nil {
			ch <- prometheus.MustNewConstMetric(raftContactDesc, prometheus.GaugeValue, d.Seconds())
		}
	}
	if state == raft.Leader && c.timings != nil {
		c.collectPeerContact(ch)
	}
}

// collectPeerContact exports, on the leader, how long ago each other
// server of the configuration last answered it.
func (c *raftCollector) collectPeerContact(ch chan<- prometheus.Metric) {
	future := c.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		c.m.collectError("raft")
		return
	}
	_, self := c.raft.LeaderWithID()
	now := time.Now()
	for _, server := range future.Configuration().Servers {
		if server.ID == self {
			continue
		}
		if at, ok := c.timings.lastContact(string(server.ID)); ok {
			ch <- prometheus.MustNewConstMetric(raftPeerContactDesc, prometheus.GaugeValue, now.Sub(at).Seconds(), string(server.ID))
		}
	}
}

// Queue is one selector's dispatch queue as the state has it.
type Queue struct {
	// Selector is the canonical selector ("k=v,k=v"; "" for none).
	Selector string
	// Pending is the number of queued runs waiting on it.
	Pending int
	// MatchingWorkers is the number of workers not offline whose labels
	// satisfy the selector.
	MatchingWorkers int
}

// MaxSelectorSeries bounds the selector label: past this many selectors
// with queued runs, the rest are summed into selector="other". Selectors
// come from DAG definitions, so there are few, but a label must not be
// able to grow without bound.
const MaxSelectorSeries = 100

// WatchQueues exports queue depth and matching workers by selector, from
// queues, called at every scrape.
func (m *Metrics) WatchQueues(queues func() ([]Queue, error)) {
	if m != nil {
		m.registry.MustRegister(&queueCollector{m: m, queues: queues})
	}
}

var (
	queueDepthDesc = prometheus.NewDesc(Namespace+"_dispatch_queue_depth",
		"Runs queued for a worker, by worker selector (selector=\"any\": runs without a selector).", []string{"selector"}, nil)
	queueWorkersDesc = prometheus.NewDesc(Namespace+"_dispatch_queue_matching_workers",
		"Workers not offline whose labels satisfy a selector that has queued runs.", []string{"selector"}, nil)
)

type queueCollector struct {
	m      *Metrics
	queues func() ([]Queue, error)
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- queueWorkersDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	queues, err := c.queues()
	if err != nil {
		c.m.collectError("queues")
		return
	}
	sort.Slice(queues, func(i, j int) bool { return queues[i].Selector < queues[j].Selector })
	other := Queue{Selector: "other"}
	for i, q := range queues {
		if i >= MaxSelectorSeries-1 && len(queues) > MaxSelectorSeries {
			other.Pending += q.Pending
			other.MatchingWorkers = max(other.MatchingWorkers, q.MatchingWorkers)
			continue
		}
		label := q.Selector
		if label == "" {
			label = "any"
		}
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(q.Pending), label)
		ch <- prometheus.MustNewConstMetric(queueWorkersDesc, prometheus.GaugeValue, float64(q.MatchingWorkers), label)
	}
	if other.Pending > 0 {
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(other.Pending), other.Selector)
		ch <- prometheus.MustNewConstMetric(queueWorkersDesc, prometheus.GaugeValue, float64(other.MatchingWorkers), other.Selector)
	}
}

// Health states, as label values of daguha_workers.
var healthStates = []string{"healthy", "warning", "unhealthy", "offline"}

// WorkerCounts is the number of workers in each health state, by the
// seed's names (HEALTHY, WARNING, UNHEALTHY, OFFLINE); RunsRunning is the
// number of runs being executed.
type WorkerCounts struct {
	ByHealth    map[string]int
	RunsRunning int
}

// WatchWorkers exports workers by health and the runs in progress, from
// counts, called at every scrape.
func (m *Metrics) WatchWorkers(counts func() (WorkerCounts, error)) {
	if m != nil {
		m.registry.MustRegister(&workerCollector{m: m, counts: counts})
	}
}

var (
	workersDesc = prometheus.NewDesc(Namespace+"_workers",
		"Registered workers by health as this server computes it from heartbeat age (healthy, warning, unhealthy, offline).", []string{"health"}, nil)
	runningDesc = prometheus.NewDesc(Namespace+"_runs_running",
		"Runs held by a worker under a lease, as the replicated state has it.", nil, nil)
)

type workerCollector struct {
	m      *Metrics
	counts func() (WorkerCounts, error)
}

func (c *workerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- workersDesc
	ch <- runningDesc
}

func (c *workerCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.counts()
	if err != nil {
		c.m.collectError("workers")
		return
	}
	for _, state := range healthStates {
		n := counts.ByHealth[strings.ToUpper(state)]
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(counts.RunsRunning))
}
