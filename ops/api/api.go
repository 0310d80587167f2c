package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/ops/metrics"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// maxBodyBytes bounds a request body: the API takes small JSON documents.
const maxBodyBytes = 1 << 20

// Server is the HTTP API of one daguha server.
type Server struct {
	forward    *http.Client
	scheme     string
	cluster    *cluster.Server
	dispatcher *dispatch.Dispatcher
	metrics    *metrics.Metrics
	logger     *slog.Logger
	now        func() time.Time
	mux        *http.ServeMux
	handler    http.Handler
	dialWorker WorkerDialer

	// restoring is set while a snapshot restore is received or applied.
	restoring atomic.Bool

	enqueues    *dispatch.Batcher[*daguhav1.Run, enqueueResult]
	stopBatcher context.CancelFunc
	batcherDone chan struct{}
}

// Options configures the API.
type Options struct {
	Logger *slog.Logger
	// Now is the clock used for timestamps the API chooses (enqueue time).
	Now func() time.Time
	// Dispatcher supplies worker health (heartbeats and thresholds).
	Dispatcher *dispatch.Dispatcher
	// Tokens, when any, are required on every /api/ request but health.
	Tokens []string
	// ReadTokens may read but not change anything.
	ReadTokens []string
	// ForwardTLS, when set, means the servers' HTTP API speaks HTTPS:
	// requests forwarded to the leader use it to verify the leader.
	ForwardTLS *tls.Config
	// Metrics, when set, counts the runs enqueued here.
	Metrics *metrics.Metrics
	// DialWorker connects to workers' log services (step logs); nil: the
	// API cannot fetch full logs.
	DialWorker WorkerDialer
}

// New returns the API handler for a cluster server.
func New(c *cluster.Server, options Options) *Server {
	if options.Logger == nil {
		options.Logger = slog.Default()
	}
	if options.Now == nil {
		options.Now = time.Now
	}
	if options.Dispatcher == nil {
		options.Dispatcher = dispatch.New(nil, dispatch.Config{Now: options.Now})
	}
	s := &Server{cluster: c, dispatcher: options.Dispatcher, metrics: options.Metrics, logger: options.Logger, now: options.Now, mux: http.NewServeMux(), dialWorker: options.DialWorker}
	s.handler = requireToken(options.Tokens, options.ReadTokens, s.logger, s.mux)
	s.startEnqueueBatcher()
	s.scheme, s.forward = "http", &http.Client{Timeout: 30 * time.Second}
	if options.ForwardTLS != nil {
		s.scheme = "https"
		s.forward.Transport = &http.Transport{TLSClientConfig: options.ForwardTLS}
	}
	s.mux.HandleFunc("GET /api/v2/health", s.health)
	s.mux.HandleFunc("GET /api/v2/cluster/leader", s.leader)
	s.mux.HandleFunc("GET /api/v2/cluster/peers", s.peers)
	s.mux.HandleFunc("GET /api/v2/cluster/members", s.members)
	s.mux.HandleFunc("GET /api/v2/agent/self", s.self)
	s.mux.HandleFunc("POST /api/v2/dag-runs", s.enqueueRun)
	s.mux.HandleFunc("GET /api/v2/dag-runs", s.listRuns)
	s.mux.HandleFunc("GET /api/v2/dag-runs/{dag_run_id}", s.getRun)
	s.mux.HandleFunc("POST /api/v2/dag-runs/{dag_run_id}/cancel", s.cancelRun)
	s.mux.HandleFunc("GET /api/v2/dag-runs/{dag_run_id}/steps/{step}/log", s.stepLog)
	s.mux.HandleFunc("GET /api/v2/workers", s.workers)
	s.mux.HandleFunc("POST /api/v2/dags", s.pushDags)
	s.mux.HandleFunc("GET /api/v2/dags", s.listDags)
	s.mux.HandleFunc("GET /api/v2/dags/{name}", s.getDag)
	s.mux.HandleFunc("DELETE /api/v2/dags/{name}", s.deleteDag)
	s.mux.HandleFunc("GET /api/v2/operator/raft/peers", s.raftPeers)
	s.mux.HandleFunc("POST /api/v2/operator/raft/remove-peer", s.removePeer)
	s.mux.HandleFunc("POST /api/v2/operator/raft/transfer-leadership", s.transferLeadership)
	// Saving a snapshot needs a full token (saveSnapshot checks it).
	s.mux.HandleFunc("GET /api/v2/operator/snapshot", s.saveSnapshot)
	s.mux.HandleFunc("POST /api/v2/operator/snapshot", s.restoreSnapshot)
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no API endpoint %s %s", r.Method, r.URL.Path))
	})
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

type errorBody = wire.Error

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(body)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, errorBody{Error: err.Error()})
}

// writeClusterError picks the status code for an error from the cluster.
func writeClusterError(w http.ResponseWriter, err error) {
	var command *cluster.CommandError
	switch {
	case errors.Is(err, cluster.ErrNoLeader), errors.As(err, new(*cluster.RetryableError)):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, err)
	case errors.As(err, &command):
		writeError(w, http.StatusConflict, err)
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, err)
	case errors.Is(err, context.Canceled):
		writeError(w, http.StatusServiceUnavailable, err)
	default:
		writeError(w, http.StatusInternalServerError, err)
	}
}

// decodeJSON reads a JSON body strictly: unknown fields and trailing data
// are errors that name what was wrong.
func decodeJSON(r *http.Request, out any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	if dec.More() {
		return errors.New("request body: more than one JSON value")
	}
	return nil
}

// stale reports whether the caller accepts a read from local state that
// may lag the leader.
func stale(r *http.Request) bool {
	v, ok := r.URL.Query()["stale"]
	return ok && (len(v) == 0 || v[0] == "" || strings.EqualFold(v[0], "true"))
}
