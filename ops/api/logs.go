package api

import (
	"net/http"

	"github.com/daguha/daguha/ops/service"
)

// stepLog streams the full log of a step from the worker that ran it:
// GET /api/v2/dag-runs/{id}/steps/{step}/log[?attempt=N][&offset=B][&limit=B]
// (see service.StepLog): offset and limit cut it to at most limit bytes
// from byte offset, for a page that follows a running step.
func (s *Server) stepLog(w http.ResponseWriter, r *http.Request) error {
	log, err := s.service.StepLog(r.Context(), service.StepLogQuery{
		RunID: r.PathValue("dag_run_id"), Step: r.PathValue("step"), Attempt: r.URL.Query().Get("attempt"), Stale: stale(r),
		Offset: r.URL.Query().Get("offset"), Limit: r.URL.Query().Get("limit"),
	})
	if err != nil {
		return err
	}
	defer log.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Daguha-Worker", log.WorkerID)
	w.WriteHeader(http.StatusOK)
	for {
		data, err := log.Next()
		if err != nil {
			return nil
		}
		if _, err := w.Write(data); err != nil {
			return nil
		}
	}
}
