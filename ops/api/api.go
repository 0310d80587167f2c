package api

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/buildinfo"
	"github.com/daguha/daguha/ops/service"
	"github.com/daguha/daguha/ops/wire"
)

// maxBodyBytes bounds a request body: the API takes small JSON documents.
const maxBodyBytes = 1 << 20

// Server is the HTTP API of one daguha server.
type Server struct {
	forward *http.Client
	scheme  string
	service *service.Service
	// cluster answers for this server's own status (role, leader, peers)
	// and relays reads to the leader's API.
	cluster *cluster.Server
	logger  *slog.Logger
	mux     *http.ServeMux
	handler http.Handler
	// routes are the patterns registered on mux (see Routes).
	routes []string
	// version is the build's, started when this API was made: Dagu's
	// health call shows both.
	version string
	started time.Time
}

// Options configures the API.
type Options struct {
	Logger *slog.Logger
	// Tokens, when any, are required on every /api/ request but health.
	Tokens []string
	// ReadTokens may read but not change anything.
	ReadTokens []string
	// ForwardTLS, when set, means the servers' HTTP API speaks HTTPS:
	// requests forwarded to the leader use it to verify the leader.
	ForwardTLS *tls.Config
}

// New returns the API handler over a server's service.
func New(svc *service.Service, options Options) *Server {
	if options.Logger == nil {
		options.Logger = slog.Default()
	}
	s := &Server{service: svc, cluster: svc.Cluster(), logger: options.Logger, mux: http.NewServeMux(), version: buildinfo.Version(), started: time.Now()}
	s.handler = requireToken(options.Tokens, options.ReadTokens, s.logger, s.mux)
	// Reads relayed to the leader go through the API's one client, with
	// the caller's token; a redirect is answered, never followed.
	s.scheme, s.forward = "http", &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if options.ForwardTLS != nil {
		s.scheme = "https"
		s.forward.Transport = &http.Transport{TLSClientConfig: options.ForwardTLS}
	}
	s.handle("GET /api/v2/health", s.health)
	s.handle("GET /api/v2/cluster/leader", s.leader)
	s.handle("GET /api/v2/cluster/peers", wrap(s.peers))
	s.handle("GET /api/v2/cluster/members", s.members)
	s.handle("GET /api/v2/agent/self", s.self)
	s.handle("GET /api/v2/cluster/glance", wrap(s.glance))
	// The paths daguha's API shares with Dagu 1.x's answer both kinds of
	// client: see dagu.go.
	s.handle("POST /api/v2/dag-runs", wrapIn(sharedErrors, s.enqueueRun))
	s.handle("GET /api/v2/dag-runs", wrapIn(sharedErrors, s.listRuns))
	s.handle("GET /api/v2/dag-runs/{dag_run_id}", wrap(s.getRun))
	s.handle("POST /api/v2/dag-runs/{dag_run_id}/cancel", wrap(s.cancelRun))
	s.handle("POST /api/v2/dag-runs/{dag_run_id}/retry", wrap(s.retryRun))
	s.handle("POST /api/v2/dag-runs/{dag_run_id}/dequeue", wrap(s.dequeueRun))
	s.handle("POST /api/v2/dag-runs/{dag_run_id}/restart", wrap(s.restartRun))
	s.handle("GET /api/v2/dag-runs/{dag_run_id}/steps/{step}/log", wrap(s.stepLog))
	s.handle("GET /api/v2/workers", wrap(s.workers))
	s.handle("POST /api/v2/dags", wrapIn(sharedErrors, s.pushDags))
	s.handle("GET /api/v2/dags", wrapIn(sharedErrors, s.listDags))
	s.handle("GET /api/v2/dags/{name}", wrapIn(sharedErrors, s.getDag))
	s.handle("DELETE /api/v2/dags/{name}", wrap(s.deleteDag))
	s.handle("POST /api/v2/dags/{name}/cancel-running", wrap(s.cancelRunning))
	s.handle("GET /api/v2/operator/raft/peers", wrap(s.raftPeers))
	s.handle("POST /api/v2/operator/raft/remove-peer", wrap(s.removePeer))
	s.handle("POST /api/v2/operator/raft/transfer-leadership", wrap(s.transferLeadership))
	// Saving a snapshot needs a full token (saveSnapshot checks it).
	s.handle("GET /api/v2/operator/snapshot", wrap(s.saveSnapshot))
	s.handle("POST /api/v2/operator/snapshot", wrap(s.restoreSnapshot))
	s.routeDagu(daguV2)
	s.routeDagu(daguV1)
	s.mux.HandleFunc("/api/", notFoundIn(sharedErrors))
	s.mux.HandleFunc(apiV1+"/", notFoundIn(daguErrors))
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

// endpoint is a handler that writes its answer, or returns the error to
// answer with instead (having written nothing).
type endpoint func(w http.ResponseWriter, r *http.Request) error

// wrap makes an endpoint a handler: an error it returns is answered as
// {"error": message} with the status code of the error's kind.
func wrap(e endpoint) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := e(w, r); err != nil {
			writeFailure(w, err)
		}
	}
}

// statusCodes are the HTTP status codes of the service's kinds of error.
var statusCodes = map[service.Kind]int{
	service.Internal:       http.StatusInternalServerError,
	service.Invalid:        http.StatusBadRequest,
	service.Forbidden:      http.StatusForbidden,
	service.NotFound:       http.StatusNotFound,
	service.Conflict:       http.StatusConflict,
	service.TooLarge:       http.StatusRequestEntityTooLarge,
	service.Unavailable:    http.StatusServiceUnavailable,
	service.Interrupted:    http.StatusServiceUnavailable,
	service.Timeout:        http.StatusGatewayTimeout,
	service.NotImplemented: http.StatusNotImplemented,
	service.Upstream:       http.StatusBadGateway,
	service.NotUpgraded:    http.StatusConflict,
}

// writeFailure answers with err, its status code picked by its kind. A
// cluster that cannot take the call now asks the caller to retry in a
// second.
func writeFailure(w http.ResponseWriter, err error) { writeFailureIn(daguhaErrors, w, err) }

// writeFailureIn is writeFailure with the body in a shape.
func writeFailureIn(shape errorShape, w http.ResponseWriter, err error) {
	code := statusOf(err)
	if service.KindOf(err) == service.Unavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, code, errorIn(shape, daguCode(err), err))
}

// statusOf is the HTTP status code of err's kind.
func statusOf(err error) int {
	if code, ok := statusCodes[service.KindOf(err)]; ok {
		return code
	}
	return http.StatusInternalServerError
}

// invalid marks an error in the caller's request (its body or query).
func invalid(err error) error { return &service.Error{Kind: service.Invalid, Err: err} }

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
