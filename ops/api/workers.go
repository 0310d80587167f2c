package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// The API's views of workers are the wire types (ops/wire).
type (
	RunningTask = wire.RunningTask
	WorkerView  = wire.Worker
	WorkersBody = wire.Workers
)

// workers answers with the leader's view (forwarded from a follower)
// unless the caller asks ?stale=true for this server's own.
func (s *Server) workers(w http.ResponseWriter, r *http.Request) {
	if !stale(r) && !s.cluster.IsLeader() {
		s.forwardToLeader(w, r)
		return
	}
	writeJSON(w, http.StatusOK, s.workersView())
}

// workersView builds the list from the replicated registry and runs and
// this server's heartbeat table.
func (s *Server) workersView() WorkersBody {
	state := s.cluster.FSM().State()
	thresholds := s.dispatcher.Thresholds()
	body := WorkersBody{Workers: []WorkerView{}}
	_ = state.EachWorker(func(worker *daguhav1.Worker) bool {
		health, last := s.dispatcher.Heartbeats().Health(worker.GetId(), thresholds)
		if worker.GetOffline() {
			health = dispatch.Offline
		}
		view := WorkerView{
			ID:            worker.GetId(),
			Labels:        worker.GetLabels(),
			HealthStatus:  health,
			LastHeartbeat: rfc3339(last),
			RunningTasks:  []RunningTask{},
		}
		if view.Labels == nil {
			view.Labels = map[string]string{}
		}
		_ = state.EachRunning(worker.GetId(), func(run *daguhav1.Run) bool {
			view.RunningTasks = append(view.RunningTasks, RunningTask{
				DagName:          run.GetDagName(),
				DagRunID:         run.GetId(),
				RootDagRunName:   run.GetRootDagRunName(),
				RootDagRunID:     run.GetRootDagRunId(),
				ParentDagRunName: run.GetParentDagRunName(),
				ParentDagRunID:   run.GetParentDagRunId(),
				StartedAt:        timestamp(run.GetStartedAtUnixNano()),
			})
			return true
		})
		sort.Slice(view.RunningTasks, func(i, j int) bool { return view.RunningTasks[i].StartedAt < view.RunningTasks[j].StartedAt })
		body.Workers = append(body.Workers, view)
		return true
	})
	return body
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// forwardToLeader relays a read to the leader's HTTP API with ?stale=true
// (the leader answers from its own view), holding through an election.
func (s *Server) forwardToLeader(w http.ResponseWriter, r *http.Request) {
	var (
		status int
		header http.Header
		body   []byte
	)
	err := s.cluster.OnLeader(r.Context(), func(ctx context.Context, local bool, grpcAddr string) error {
		if local {
			status, header, body = 0, nil, nil
			return nil
		}
		httpAddr := s.cluster.HTTPAddrOf(grpcAddr)
		if httpAddr == "" {
			return &cluster.RetryableError{Err: fmt.Errorf("the leader's HTTP address is not known yet")}
		}
		query := r.URL.Query()
		query.Set("stale", "true")
		req, err := http.NewRequestWithContext(ctx, r.Method, s.scheme+"://"+httpAddr+r.URL.Path+"?"+query.Encode(), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", r.Header.Get("Authorization"))
		resp, err := s.forward.Do(req)
		if err != nil {
			return &cluster.RetryableError{Err: fmt.Errorf("forward to the leader at %s: %w", httpAddr, err)}
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
		if err != nil {
			return &cluster.RetryableError{Err: err}
		}
		status, header = resp.StatusCode, resp.Header
		return nil
	})
	if err != nil {
		writeClusterError(w, err)
		return
	}
	if status == 0 {
		// This server became the leader meanwhile.
		writeJSON(w, http.StatusOK, s.workersView())
		return
	}
	w.Header().Set("Content-Type", header.Get("Content-Type"))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
