package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/ops/service"
)

// Every endpoint answers an error the same way: the status code of its
// kind, {"error": message} with the message as it is, and Retry-After
// when the cluster cannot take the call now.
func TestWrapAnswersEachKindWithItsStatusCode(t *testing.T) {
	cases := []struct {
		err        error
		code       int
		retryAfter bool
	}{
		{&service.Error{Kind: service.Invalid, Err: errors.New("dag_name is required")}, http.StatusBadRequest, false},
		{&service.Error{Kind: service.Forbidden, Err: errors.New("no")}, http.StatusForbidden, false},
		{&service.Error{Kind: service.NotFound, Err: errors.New(`no DAG run with id "x"`)}, http.StatusNotFound, false},
		{&service.Error{Kind: service.Conflict, Err: errors.New("run r1 exists with other params")}, http.StatusConflict, false},
		{&service.Error{Kind: service.TooLarge, Err: cluster.ErrArchiveTooLarge}, http.StatusRequestEntityTooLarge, false},
		{&service.Error{Kind: service.NotImplemented, Err: errors.New("this server cannot reach workers for logs")}, http.StatusNotImplemented, false},
		{&service.Error{Kind: service.Upstream, Err: errors.New(`worker "w": refused`)}, http.StatusBadGateway, false},
		{&service.Error{Kind: service.Interrupted, Err: context.Canceled}, http.StatusServiceUnavailable, false},
		{fmt.Errorf("%w after waiting 5s", cluster.ErrNoLeader), http.StatusServiceUnavailable, true},
		{&cluster.RetryableError{Err: cluster.ErrNotLeader}, http.StatusServiceUnavailable, true},
		{&cluster.CommandError{Err: errors.New("refused by the state machine")}, http.StatusConflict, false},
		{&cluster.UpgradeError{Msg: "retry needs every server at state schema 1 or later (daguha 0.1.0); s2 runs daguha before 0.1.0 (state schema 0): finish upgrading the servers first"}, http.StatusConflict, false},
		{fmt.Errorf("%w (last: no cluster leader)", context.DeadlineExceeded), http.StatusGatewayTimeout, false},
		{fmt.Errorf("%w (last: x)", context.Canceled), http.StatusServiceUnavailable, false},
		{fmt.Errorf("%w: the server is shutting down", cluster.ErrNotLeader), http.StatusInternalServerError, false},
		{errors.New("raft apply: disk full"), http.StatusInternalServerError, false},
	}
	for _, c := range cases {
		t.Run(c.err.Error(), func(t *testing.T) {
			w := httptest.NewRecorder()
			wrap(func(http.ResponseWriter, *http.Request) error { return c.err })(w, httptest.NewRequest("GET", "/api/v2/x", nil))
			var body errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != c.code || body.Error != c.err.Error() {
				t.Fatalf("HTTP %d %q (%v), want %d with the error's message", w.Code, w.Body.String(), err, c.code)
			}
			if got := w.Header().Get("Retry-After") == "1"; got != c.retryAfter {
				t.Fatalf("Retry-After %q, want it: %t", w.Header().Get("Retry-After"), c.retryAfter)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content type %q", ct)
			}
		})
	}
}
