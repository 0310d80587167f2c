package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/daguha/daguha/dispatch/worker"
)

// stepBuckets span quick shell steps to hour-long jobs.
var stepBuckets = prometheus.ExponentialBuckets(0.05, 3, 12) // 50 ms .. 2.5 h

// WorkerMetrics is one worker process's metrics. A nil *WorkerMetrics
// records nothing.
type WorkerMetrics struct {
	registry   *prometheus.Registry
	inProgress prometheus.Gauge
	capacity   prometheus.Gauge
	runs       *prometheus.CounterVec
	steps      *prometheus.HistogramVec
	heartbeat  prometheus.Histogram
	hbFailures prometheus.Counter
}

// WorkerMetrics is the hooks a worker calls.
var _ worker.Metrics = (*WorkerMetrics)(nil)

// Label values of daguha_worker_runs_total: the results the worker
// passes to RunEnded (package worker names them).
const (
	RunSucceeded = worker.RunSucceeded
	RunFailed    = worker.RunFailed
	RunCancelled = worker.RunCancelled
	RunAbandoned = worker.RunAbandoned
)

// NewWorker returns a worker's metrics on a registry of their own, with
// the Go runtime and process collectors.
func NewWorker() *WorkerMetrics {
	m := &WorkerMetrics{registry: prometheus.NewRegistry()}
	m.inProgress = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: "worker", Name: "runs_in_progress",
		Help: "Runs this worker is executing.",
	})
	m.capacity = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: "worker", Name: "max_active_runs",
		Help: "Runs this worker executes at once at most (maxActiveRuns).",
	})
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "worker", Name: "runs_total",
		Help: "Runs this worker ended, by result (succeeded, failed, cancelled, abandoned).",
	}, []string{"result"})
	m.steps = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "worker", Name: "step_duration_seconds",
		Help:    "Time a step's command ran, by its status (succeeded, failed, cancelled).",
		Buckets: stepBuckets,
	}, []string{"status"})
	m.heartbeat = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "worker", Name: "heartbeat_duration_seconds",
		Help:    "Round trip of a successful heartbeat to the cluster, as this worker sees it.",
		Buckets: rpcBuckets,
	})
	m.hbFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "worker", Name: "heartbeat_failures_total",
		Help: "Heartbeats that got no answer from the cluster.",
	})
	m.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(), m.inProgress, m.capacity, m.runs, m.steps, m.heartbeat, m.hbFailures)
	for _, result := range []string{RunSucceeded, RunFailed, RunCancelled, RunAbandoned} {
		m.runs.WithLabelValues(result)
	}
	for _, status := range []string{"succeeded", "failed", "cancelled"} {
		m.steps.WithLabelValues(status)
	}
	return m
}

// Registry is where the worker's metrics are registered.
func (m *WorkerMetrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the worker's metrics.
func (m *WorkerMetrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry, EnableOpenMetrics: true})
}

// SetCapacity records the worker's maxActiveRuns.
func (m *WorkerMetrics) SetCapacity(n int) {
	if m != nil {
		m.capacity.Set(float64(n))
	}
}

// RunStarted counts a run the worker began executing; call RunEnded
// when it is over.
func (m *WorkerMetrics) RunStarted() {
	if m != nil {
		m.inProgress.Inc()
	}
}

// RunEnded counts a run's end with its result (RunSucceeded, ...).
func (m *WorkerMetrics) RunEnded(result string) {
	if m != nil {
		m.inProgress.Dec()
		m.runs.WithLabelValues(result).Inc()
	}
}

// StepFinished records a step's run time by its status.
func (m *WorkerMetrics) StepFinished(status string, d time.Duration) {
	if m != nil {
		m.steps.WithLabelValues(status).Observe(d.Seconds())
	}
}

// Heartbeat records one heartbeat: its round trip, or a failure.
func (m *WorkerMetrics) Heartbeat(d time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.hbFailures.Inc()
		return
	}
	m.heartbeat.Observe(d.Seconds())
}

// Serve listens on addr and serves /metrics until ctx ends. It returns
// once the listener is open (or could not be), so a bad address fails
// the start of the worker.
func (m *WorkerMetrics) Serve(ctx context.Context, addr string, logger *slog.Logger) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	// As the API's: nobody holds a connection open by sending slowly or
	// not at all.
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10}
	go func() {
		if err := server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("metrics server stopped", "error", err)
		}
	}()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdownCtx)
	}()
	logger.Info("worker metrics served", "addr", ln.Addr().String())
	return ln.Addr(), nil
}
