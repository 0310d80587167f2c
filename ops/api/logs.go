package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// WorkerDialer connects to the log service of the worker with the given
// id at addr. Under TLS the connection must prove that it reached that
// worker (its certificate carries the identity worker/<id>), not merely
// some holder of a certificate of the cluster's CA.
type WorkerDialer func(addr, workerID string) (*grpc.ClientConn, error)

// stepLog streams the full log of a step from the worker that ran it:
// GET /api/v2/dag-runs/{id}/steps/{step}/log[?attempt=N]. The cluster keeps
// only the tail of each step's output; the whole log stays on the worker
// and is there to fetch while the worker lives. The request to the worker
// carries the attempt's log tickets, which only a server can compute (see
// package logticket); they go nowhere else.
func (s *Server) stepLog(w http.ResponseWriter, r *http.Request) {
	id, step := r.PathValue("dag_run_id"), r.PathValue("step")
	if s.dialWorker == nil {
		writeError(w, http.StatusNotImplemented, errors.New("this server cannot reach workers for logs"))
		return
	}
	if !s.readBarrier(w, r) {
		return
	}
	state := s.cluster.FSM().State()
	run, err := state.Run(id)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if run == nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("no DAG run with id %q", id))
		return
	}
	attempt, workerID := run.GetAttempt(), run.GetWorkerId()
	if v := r.URL.Query().Get("attempt"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("attempt %q: want a number from 1", v))
			return
		}
		attempt, workerID = uint32(n), ""
		for _, a := range run.GetAttempts() {
			if a.GetAttempt() == attempt {
				workerID = a.GetWorkerId()
			}
		}
	}
	if workerID == "" {
		writeError(w, http.StatusNotFound, fmt.Errorf("run %q has no attempt %d on any worker", id, attempt))
		return
	}
	worker, err := state.Worker(workerID)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if worker == nil || worker.GetLogAddr() == "" {
		writeError(w, http.StatusNotFound, fmt.Errorf("worker %q of run %q is gone or serves no logs: only the output tail in the run's steps is kept", workerID, id))
		return
	}
	conn, err := s.dialWorker(worker.GetLogAddr(), workerID)
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Errorf("worker %q at %s: %w", workerID, worker.GetLogAddr(), err))
		return
	}
	defer conn.Close()
	var tickets []string
	if s.dispatcher != nil {
		tickets = s.dispatcher.LogTickets(id, attempt, workerID)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	stream, err := daguhav1.NewWorkerLogServiceClient(conn).StepLog(ctx, &daguhav1.StepLogRequest{RunId: id, StepName: step, Attempt: attempt, LogTickets: tickets})
	var first *daguhav1.StepLogChunk
	if err == nil {
		first, err = stream.Recv()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		code := http.StatusBadGateway
		if status.Code(err) == codes.NotFound {
			code = http.StatusNotFound
		} else {
			// A worker that is not who it must be (under TLS), or one that
			// refuses this server, is worth an operator's look.
			s.logger.Warn("step log not fetched from the run's worker", "run", id, "attempt", attempt, "step", step,
				"worker", workerID, "addr", worker.GetLogAddr(), "error", status.Convert(err).Message())
		}
		writeError(w, code, fmt.Errorf("worker %q: %s", workerID, status.Convert(err).Message()))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Daguha-Worker", workerID)
	w.WriteHeader(http.StatusOK)
	for chunk := first; chunk != nil; {
		if _, err := w.Write(chunk.GetData()); err != nil {
			return
		}
		if chunk, err = stream.Recv(); err != nil {
			return
		}
	}
}
