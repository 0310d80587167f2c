package service

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/dispatch"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// WorkerDialer connects to the log service of the worker with the given
// id at addr. Under TLS the connection must prove that it reached that
// worker (its certificate carries the identity worker/<id>), not merely
// some holder of a certificate of the cluster's CA.
type WorkerDialer func(addr, workerID string) (*grpc.ClientConn, error)

// Options configures the service.
type Options struct {
	Logger *slog.Logger
	// Now is the clock used for the times the service chooses (enqueue
	// and cancel times, DAG update times).
	Now func() time.Time
	// Heartbeats is this server's table of worker heartbeats, and
	// Thresholds turn their age into health (zero: the defaults). With no
	// table every worker shows as offline.
	Heartbeats *dispatch.Heartbeats
	Thresholds dispatch.Thresholds
	// LogTickets gives the tickets that let a worker serve the log of an
	// attempt to this server (the dispatcher's LogTickets); nil: none.
	LogTickets func(runID string, attempt uint32, workerID string) []string
	// DialWorker connects to workers' log services (step logs); nil: the
	// service cannot fetch full logs.
	DialWorker WorkerDialer
	// Queues are the servers' queue limits (dispatch.Config.Queues), for
	// saying why a queued run waits.
	Queues map[string]int
	// Metrics, when set, counts the runs enqueued and cancelled here.
	Metrics Metrics
}

// Service is what one server does for the HTTP API, the DAG directory
// sync and any other caller that reads or changes the cluster's state.
type Service struct {
	cluster    *cluster.Server
	logger     *slog.Logger
	now        func() time.Time
	heartbeats *dispatch.Heartbeats
	thresholds dispatch.Thresholds
	logTickets func(runID string, attempt uint32, workerID string) []string
	dialWorker WorkerDialer
	metrics    Metrics
	queues     map[string]int

	// glance keeps the last samples of the cluster (StartGlance).
	glance     *Glance
	glanceStop chan struct{}
	glanceDone chan struct{}

	// restoring is set while a snapshot restore is received or applied.
	restoring atomic.Bool

	enqueues    *dispatch.Batcher[*daguhav1.Run, enqueueResult]
	stopBatcher context.CancelFunc
	batcherDone chan struct{}
}

// New returns the service of a cluster server. Close it when done.
func New(c *cluster.Server, options Options) *Service {
	if options.Logger == nil {
		options.Logger = slog.Default()
	}
	if options.Now == nil {
		options.Now = time.Now
	}
	if options.Metrics == nil {
		options.Metrics = noMetrics{}
	}
	if options.Heartbeats == nil {
		options.Heartbeats = dispatch.NewHeartbeats(options.Now)
	}
	if options.Thresholds == (dispatch.Thresholds{}) {
		options.Thresholds = dispatch.DefaultThresholds
	}
	s := &Service{
		cluster: c, logger: options.Logger, now: options.Now,
		heartbeats: options.Heartbeats, thresholds: options.Thresholds,
		logTickets: options.LogTickets, dialWorker: options.DialWorker, metrics: options.Metrics,
		queues: options.Queues,
	}
	s.startEnqueueBatcher()
	return s
}

// Cluster is the cluster member the service works on, for callers that
// show this server's own status (its role, the leader it knows) or relay
// a request to the leader.
func (s *Service) Cluster() *cluster.Server { return s.cluster }

// consistent makes the read that follows linearizable unless the caller
// accepts a stale one.
func (s *Service) consistent(ctx context.Context, stale bool) error {
	if stale {
		return nil
	}
	return s.cluster.ConsistentRead(ctx)
}

// Metrics is what the service counts: runs enqueued and runs ended by a
// cancel at once. ops/metrics implements it; nil counts nothing.
type Metrics interface {
	RunEnqueued()
	RunsCancelledAtOnce(n uint32)
}

type noMetrics struct{}

func (noMetrics) RunEnqueued()               {}
func (noMetrics) RunsCancelledAtOnce(uint32) {}
