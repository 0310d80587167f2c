package metrics

import (
	"net/http"
	"regexp"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/dispatch"
)

// Namespace prefixes every metric daguha defines.
const Namespace = "daguha"

// Label values of daguha_dispatch_leases_reclaimed_total and
// daguha_dispatch_reports_refused_total: dispatch, which counts them,
// names them.
const (
	ReclaimLeaseExpired  = dispatch.ReclaimLeaseExpired
	ReclaimWorkerOffline = dispatch.ReclaimWorkerOffline
	RefusedStep          = dispatch.RefusedStep
	RefusedFinish        = dispatch.RefusedFinish
	RefusedHeartbeat     = dispatch.RefusedHeartbeat
)

// A server's Metrics are what cluster and dispatch report to.
var (
	_ cluster.Observer  = (*Metrics)(nil)
	_ dispatch.Observer = (*Metrics)(nil)
)

// Buckets, in seconds. Raft commits on a LAN take milliseconds; a run may
// wait in its queue for hours when no worker matches.
var (
	raftBuckets      = prometheus.ExponentialBuckets(0.0005, 2, 15) // 0.5 ms .. 8 s
	queueWaitBuckets = prometheus.ExponentialBuckets(0.01, 2.5, 14) // 10 ms .. 25 min
	rpcBuckets       = prometheus.ExponentialBuckets(0.0005, 2, 14) // 0.5 ms .. 4 s
	httpBuckets      = prometheus.ExponentialBuckets(0.001, 3, 10)  // 1 ms .. 20 s
	// A run's stages range from a fraction of a millisecond (returning a
	// poll) to hours (waiting in a queue no worker matches).
	stageBuckets = prometheus.ExponentialBuckets(0.0002, 2.5, 18) // 0.2 ms .. 25 min
)

// Metrics is one server's metrics and the registry they are exported from.
// The zero of every hook is a nil *Metrics: it records nothing.
type Metrics struct {
	registry *prometheus.Registry

	raftCommit     prometheus.Histogram
	raftApply      *prometheus.HistogramVec
	leaderChanges  prometheus.Counter
	enqueued       prometheus.Counter
	started        prometheus.Counter
	startedCount   atomic.Uint64 // started, read back by RunsStarted
	finished       *prometheus.CounterVec
	pruned         prometheus.Counter
	granted        prometheus.Counter
	reclaimed      *prometheus.CounterVec
	refused        *prometheus.CounterVec
	queueWait      prometheus.Histogram
	stages         *prometheus.HistogramVec
	heartbeat      prometheus.Histogram
	grpc           *grpcprom.ServerMetrics
	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	httpInFlight   prometheus.Gauge
	scrapeFailures *prometheus.CounterVec
}

// New returns a server's metrics on a registry of their own, with the Go
// runtime and process collectors.
func New() *Metrics {
	m := &Metrics{registry: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.registry.MustRegister(c) }
	// The runtime's own estimates of the CPU its garbage collector, the
	// program and the scavenger used (go_cpu_classes_gc_total_, _user_
	// and _scavenge_total_cpu_seconds_total): comparable with each other
	// (not with process_cpu_seconds_total), they give the share of a
	// server's CPU that goes to GC.
	f(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/cpu/classes/(gc/total|user|scavenge/total):cpu-seconds$`)})))
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f(collectors.NewBuildInfoCollector())

	m.raftCommit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "raft", Name: "commit_duration_seconds",
		Help:    "Time from handing a command to Raft on the leader until it is committed and applied to the leader's state machine.",
		Buckets: raftBuckets,
	})
	m.raftApply = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "raft", Name: "apply_duration_seconds",
		Help:    "Time a write takes as its caller on this server sees it, including forwarding to the leader (path=forwarded) and waiting through elections.",
		Buckets: raftBuckets,
	}, []string{"path"})
	m.leaderChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "raft", Name: "leader_changes_total",
		Help: "Times this server saw the cluster's leader change to another server (an election won by someone).",
	})
	m.enqueued = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "runs", Name: "enqueued_total",
		Help: "Runs newly enqueued through this server (a retried enqueue of an existing run id is not counted). Sum over servers.",
	})
	m.started = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "runs", Name: "started_total",
		Help: "Runs whose first attempt this server, as leader, granted to a worker. Sum over servers.",
	})
	m.finished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "runs", Name: "finished_total",
		Help: "Runs this server, as leader, recorded as ended, by status (succeeded, failed, cancelled). Sum over servers.",
	}, []string{"status"})
	m.pruned = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "runs", Name: "pruned_total",
		Help: "Ended runs this server, as leader, removed past the run retention (a root and every run below it). Sum over servers.",
	})
	m.granted = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "dispatch", Name: "leases_granted_total",
		Help: "Leases this server, as leader, granted: every attempt of a run, first or after a reclaim.",
	})
	m.reclaimed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "dispatch", Name: "leases_reclaimed_total",
		Help: "Runs this server, as leader, took back from a worker, by reason (lease_expired, worker_offline).",
	}, []string{"reason"})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "dispatch", Name: "reports_refused_total",
		Help: "Reports from workers refused because their lease was stale or their token invalid, by kind (step, finish, heartbeat).",
	}, []string{"kind"})
	m.queueWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "dispatch", Name: "queue_wait_seconds",
		Help:    "Time from a run's enqueue (or its reclaim, for a later attempt) until the leader granted it to a worker.",
		Buckets: queueWaitBuckets,
	})
	m.stages = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "run", Name: "stage_seconds",
		Help: "A run's life by stage, each timed by the leader on its own clock: queue_wait (enqueue, or the previous attempt's end, " +
			"until the leader matched the run to a poll and wrote the grant), grant_commit (that grant written until committed and applied " +
			"on the leader), poll_return (grant committed until the poll returned its tasks), start_report (poll returned until the " +
			"leader received the worker's first report of the attempt), finish_commit (a finish received until committed and applied).",
		Buckets: stageBuckets,
	}, []string{"stage"})
	m.heartbeat = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "dispatch", Name: "heartbeat_duration_seconds",
		Help:    "Time the leader took to handle a worker's heartbeat (verifying and renewing its leases).",
		Buckets: rpcBuckets,
	})
	m.grpc = grpcprom.NewServerMetrics(
		grpcprom.WithServerCounterOptions(grpcprom.WithNamespace(Namespace)),
		grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramNamespace(Namespace), grpcprom.WithHistogramBuckets(rpcBuckets)),
	)
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "http", Name: "requests_total",
		Help: "HTTP requests served, by route pattern, method and status code.",
	}, []string{"route", "method", "code"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "http", Name: "request_duration_seconds",
		Help:    "Time to serve an HTTP request, by route pattern and method.",
		Buckets: httpBuckets,
	}, []string{"route", "method"})
	m.httpInFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: "http", Name: "requests_in_flight",
		Help: "HTTP requests being served.",
	})
	m.scrapeFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "metrics_collect_errors_total",
		Help: "Scrapes in which a collector could not read the state it reports, by collector.",
	}, []string{"collector"})
	for _, c := range []prometheus.Collector{m.raftCommit, m.raftApply, m.leaderChanges, m.enqueued, m.started, m.finished,
		m.pruned, m.granted, m.reclaimed, m.refused, m.queueWait, m.stages, m.heartbeat, m.grpc, m.httpRequests, m.httpDuration,
		m.httpInFlight, m.scrapeFailures} {
		f(c)
	}
	// Series that exist from the start, so rate() and alerts see a zero
	// rather than nothing.
	for _, status := range []string{"succeeded", "failed", "cancelled"} {
		m.finished.WithLabelValues(status)
	}
	for _, reason := range []string{ReclaimLeaseExpired, ReclaimWorkerOffline} {
		m.reclaimed.WithLabelValues(reason)
	}
	for _, kind := range []string{RefusedStep, RefusedFinish, RefusedHeartbeat} {
		m.refused.WithLabelValues(kind)
	}
	for _, path := range []string{"local", "forwarded"} {
		m.raftApply.WithLabelValues(path)
	}
	for _, stage := range dispatch.Stages {
		m.stages.WithLabelValues(stage)
	}
	for _, collector := range []string{"raft", "queues", "workers"} {
		m.scrapeFailures.WithLabelValues(collector)
	}
	return m
}

// Registry is where the metrics are registered; collectors of the state
// are added to it with the Watch methods.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics when asked).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry, EnableOpenMetrics: true})
}

// ObserveCommit records how long a command took to commit on the leader.
func (m *Metrics) ObserveCommit(d time.Duration) {
	if m != nil {
		m.raftCommit.Observe(d.Seconds())
	}
}

// ObserveApply records how long a write took for its caller.
func (m *Metrics) ObserveApply(forwarded bool, d time.Duration) {
	if m == nil {
		return
	}
	path := "local"
	if forwarded {
		path = "forwarded"
	}
	m.raftApply.WithLabelValues(path).Observe(d.Seconds())
}

// LeaderChanged counts a change of leader seen by this server.
func (m *Metrics) LeaderChanged() {
	if m != nil {
		m.leaderChanges.Inc()
	}
}

// RunEnqueued counts a new run.
func (m *Metrics) RunEnqueued() {
	if m != nil {
		m.enqueued.Inc()
	}
}

// LeaseGranted counts a grant; waited is how long the run was queued, and
// first says whether this is the run's first attempt.
func (m *Metrics) LeaseGranted(waited time.Duration, first bool) {
	if m == nil {
		return
	}
	m.granted.Inc()
	if first {
		m.started.Inc()
		m.startedCount.Add(1)
	}
	if waited >= 0 {
		m.queueWait.Observe(waited.Seconds())
		m.stages.WithLabelValues(dispatch.StageQueueWait).Observe(waited.Seconds())
	}
}

// ObserveStage records how long a stage of a run's life took
// (dispatch.StageGrantCommit, ...); a negative d (clocks that moved) is
// not recorded.
func (m *Metrics) ObserveStage(stage string, d time.Duration) {
	if m != nil && d >= 0 {
		m.stages.WithLabelValues(stage).Observe(d.Seconds())
	}
}

// RunsStarted is how many runs this server has started (first grants,
// given as leader) since it began: daguha_runs_started_total.
func (m *Metrics) RunsStarted() uint64 {
	if m == nil {
		return 0
	}
	return m.startedCount.Load()
}

// RunFinished counts a run's end with its status: succeeded, failed or
// cancelled.
func (m *Metrics) RunFinished(status string) {
	if m != nil {
		m.finished.WithLabelValues(status).Inc()
	}
}

// RunsCancelledAtOnce counts n runs that ended cancelled with no finish
// of a worker: queued runs cancelled (by a cancel or with their parent)
// and runs taken back whose cancel had been asked.
func (m *Metrics) RunsCancelledAtOnce(n uint32) {
	if m != nil && n > 0 {
		m.finished.WithLabelValues("cancelled").Add(float64(n))
	}
}

// RunsPruned counts n runs removed past the run retention.
func (m *Metrics) RunsPruned(n uint64) {
	if m != nil && n > 0 {
		m.pruned.Add(float64(n))
	}
}

// LeasesReclaimed counts n runs taken back for reason.
func (m *Metrics) LeasesReclaimed(reason string, n int) {
	if m != nil && n > 0 {
		m.reclaimed.WithLabelValues(reason).Add(float64(n))
	}
}

// ReportRefused counts a refused report of a kind (RefusedStep, ...).
func (m *Metrics) ReportRefused(kind string, n int) {
	if m != nil && n > 0 {
		m.refused.WithLabelValues(kind).Add(float64(n))
	}
}

// ObserveHeartbeat records how long the leader took over a heartbeat.
func (m *Metrics) ObserveHeartbeat(d time.Duration) {
	if m != nil {
		m.heartbeat.Observe(d.Seconds())
	}
}

// GRPCServerOptions are the interceptors that measure every gRPC method.
func (m *Metrics) GRPCServerOptions() []grpc.ServerOption {
	if m == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.grpc.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(m.grpc.StreamServerInterceptor()),
	}
}

// InitializeGRPC creates the zero series of every method registered on s,
// so each method is listed before its first call.
func (m *Metrics) InitializeGRPC(s *grpc.Server) {
	if m != nil {
		m.grpc.InitializeMetrics(s)
	}
}

// collectError counts a collector that could not read its source.
func (m *Metrics) collectError(collector string) {
	m.scrapeFailures.WithLabelValues(collector).Inc()
}
