package api

import (
	"bytes"
	"fmt"
	"io"
	"net/http"

	"github.com/daguha/daguha/ops/service"
	"github.com/daguha/daguha/ops/wire"
)

// The API of Dagu's verbs on runs beyond enqueue and cancel (daguha
// retry, restart, dequeue, stop): daguha's own shapes, beside the others
// under /api/v2/dag-runs/{id}.

// decodeOptionalJSON is decodeJSON for a body that may be left out: no
// body (or only white space) leaves out as it is.
func decodeOptionalJSON(r *http.Request, out any) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return decodeJSON(r, out)
}

// retryRun queues a finished run again for a new attempt: see
// service.Retry.
func (s *Server) retryRun(w http.ResponseWriter, r *http.Request) error {
	var req wire.RetryRequest
	if err := decodeOptionalJSON(r, &req); err != nil {
		return invalid(err)
	}
	id := r.PathValue("dag_run_id")
	if err := s.service.Retry(r.Context(), id, req.Step); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.Retried{DagRunID: id, Status: "queued", Step: req.Step})
	return nil
}

// dequeueRun ends a queued run cancelled: see service.Dequeue.
func (s *Server) dequeueRun(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("dag_run_id")
	if err := s.service.Dequeue(r.Context(), id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.Dequeued{DagRunID: id, Status: "cancelled"})
	return nil
}

// restartRun enqueues a new run like an ended one: see service.Restart.
func (s *Server) restartRun(w http.ResponseWriter, r *http.Request) error {
	var req wire.RestartRequest
	if err := decodeOptionalJSON(r, &req); err != nil {
		return invalid(err)
	}
	id := r.PathValue("dag_run_id")
	enqueued, err := s.service.Restart(r.Context(), service.RestartRequest{ID: id, NewID: req.DagRunID})
	if err != nil {
		return err
	}
	code := http.StatusOK
	if enqueued.Created {
		code = http.StatusCreated
	}
	writeJSON(w, code, wire.Restarted{DagRunID: enqueued.RunID, Created: enqueued.Created, RestartedFrom: id})
	return nil
}

// cancelRunning asks every running run of a DAG to stop: see
// service.CancelRunning.
func (s *Server) cancelRunning(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	ids, err := s.service.CancelRunning(r.Context(), name)
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, wire.CancelledRuns{DagName: name, DagRunIDs: ids})
	return nil
}
