package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/daguha/daguha/ops/service"
	"github.com/daguha/daguha/ops/wire"
)

// Dagu's REST API beside daguha's own. Current Dagu serves its calls
// under /api/v1, Dagu 1.x the same calls under /api/v2, where daguha's
// own API lives: a path only Dagu has answers in Dagu's shape under both
// prefixes; a path both have (GET and POST /api/v2/dags, GET
// /api/v2/dags/{name}, GET and POST /api/v2/dag-runs, GET /api/v2/health)
// answers under /api/v2 in a shape both kinds of client read, and under
// /api/v1 in Dagu's. docs/dagu-api.md is the table of what answers what.

const (
	apiV1 = "/api/v1"
	apiV2 = "/api/v2"
)

// dialect is the prefix a Dagu call came under. shared is true under
// /api/v2, where some of Dagu's paths are daguha's own too.
type dialect struct {
	prefix string
	shared bool
}

var (
	daguV1 = dialect{prefix: apiV1}
	daguV2 = dialect{prefix: apiV2, shared: true}
)

// errorShape is how a route answers an error.
type errorShape int

const (
	// daguhaErrors: {"error": message}.
	daguhaErrors errorShape = iota
	// daguErrors: Dagu's {"code", "message"}.
	daguErrors
	// sharedErrors: both, on paths daguha's API and Dagu's share.
	sharedErrors
)

// errors is the error shape of the dialect's Dagu routes.
func (d dialect) errors() errorShape {
	if d.shared {
		return sharedErrors
	}
	return daguErrors
}

// handle registers a route and remembers its pattern (Routes lists them
// for the OpenAPI document's test).
func (s *Server) handle(pattern string, handler http.HandlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.HandleFunc(pattern, handler)
}

// Routes are the patterns of every route the API serves, in the order
// they were registered ("METHOD /path/{param}").
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

// wrapIn is wrap for a route whose errors have another shape.
func wrapIn(shape errorShape, e endpoint) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := e(w, r); err != nil {
			writeFailureIn(shape, w, err)
		}
	}
}

// codedError gives an error Dagu's code for it, where the kind alone
// does not say it (a refused stop is not_running, not already_exists).
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// withCode marks err with Dagu's error code.
func withCode(code string, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

// daguCodes are Dagu's error codes of the service's kinds of error.
var daguCodes = map[service.Kind]string{
	service.Internal:       "internal_error",
	service.Invalid:        "bad_request",
	service.Forbidden:      "forbidden",
	service.NotFound:       "not_found",
	service.Conflict:       "already_exists",
	service.TooLarge:       "bad_request",
	service.Unavailable:    "internal_error",
	service.Interrupted:    "internal_error",
	service.Timeout:        "timeout",
	service.NotImplemented: "internal_error",
	service.Upstream:       "bad_gateway",
	service.NotUpgraded:    "bad_request",
}

// daguCode is Dagu's code for err.
func daguCode(err error) string {
	var coded *codedError
	if errors.As(err, &coded) {
		return coded.code
	}
	if code, ok := daguCodes[service.KindOf(err)]; ok {
		return code
	}
	return "internal_error"
}

// errorIn is the body of an error in a shape, with code as Dagu's code.
func errorIn(shape errorShape, code string, err error) any {
	switch shape {
	case daguErrors:
		return wire.DaguError{Code: code, Message: err.Error()}
	case sharedErrors:
		return wire.SharedError{Error: err.Error(), Code: code, Message: err.Error()}
	}
	return errorBody{Error: err.Error()}
}

// shapeOfPath is the error shape of a request the mux has not routed
// (refused by the token check, or no route at all).
func shapeOfPath(path string) errorShape {
	if strings.HasPrefix(path, apiV1+"/") || path == apiV1 {
		return daguErrors
	}
	return sharedErrors
}

// notFoundIn answers a path no route serves, in the prefix's shape.
func notFoundIn(shape errorShape) http.HandlerFunc {
	return wrapIn(shape, func(w http.ResponseWriter, r *http.Request) error {
		return &service.Error{Kind: service.NotFound, Err: fmt.Errorf("no API endpoint %s %s", r.Method, r.URL.Path)}
	})
}

// routeDagu registers Dagu's calls under one prefix (see docs/dagu-api.md).
// Under /api/v2 the paths daguha's own API has too are registered by New,
// with handlers that answer both kinds of client.
func (s *Server) routeDagu(d dialect) {
	p, e := d.prefix, d.errors()
	on := func(method, path string, h func(dialect) endpoint) {
		s.handle(method+" "+p+path, wrapIn(e, h(d)))
	}
	if !d.shared {
		s.handle("GET "+p+"/health", s.daguHealth)
		on("GET", "/workers", s.daguWorkers)
		on("GET", "/dags", s.listDagsDagu)
		on("POST", "/dags", s.createDag)
		on("GET", "/dags/{fileName}", s.getDagDagu)
		on("DELETE", "/dags/{fileName}", s.deleteDagDagu)
		on("GET", "/dag-runs", s.listRunsDagu)
		on("POST", "/dag-runs", s.runFromSpec)
		// Under /api/v2 this path is daguha's run detail, by run id.
		on("GET", "/dag-runs/{name}", s.listRunsOfDag)
	}
	s.handle("GET "+p+"/openapi.json", s.openAPI)
	on("POST", "/dags/validate", s.validateDag)
	on("GET", "/dags/{fileName}/spec", s.getDagSpec)
	on("PUT", "/dags/{fileName}/spec", s.putDagSpec)
	on("POST", "/dags/{fileName}/start", s.startDag)
	on("POST", "/dags/{fileName}/start-sync", s.startDagSync)
	on("POST", "/dags/{fileName}/enqueue", s.enqueueDag)
	on("POST", "/dags/{fileName}/stop-all", s.stopAll)
	on("GET", "/dags/{fileName}/dag-runs", s.dagHistory)
	on("GET", "/dags/{fileName}/dag-runs/{dagRunId}", s.dagHistoryRun)
	on("POST", "/dag-runs/enqueue", s.runFromSpec)
	on("GET", "/dag-runs/{name}/{dagRunId}", s.getRunDagu)
	on("POST", "/dag-runs/{name}/{dagRunId}/stop", s.stopRun)
	on("POST", "/dag-runs/{name}/{dagRunId}/retry", s.retryRunDagu)
	on("GET", "/dag-runs/{name}/{dagRunId}/dequeue", s.dequeueRunDagu)
	on("GET", "/dag-runs/{name}/{dagRunId}/log", s.runLog)
	on("GET", "/dag-runs/{name}/{dagRunId}/steps/{stepName}/log", s.stepLogDagu)
	on("GET", "/dag-runs/{name}/{dagRunId}/outputs", s.runOutputs)
	on("GET", "/dag-runs/{name}/{dagRunId}/sub-dag-runs", s.subRuns)
}
