package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/ops/client"
	"github.com/daguha/daguha/ops/wire"
)

// RunningTask is a run on a worker, in the seed's shape plus the ids of
// the run's root and parent (empty parent fields for a root run).
type RunningTask = wire.RunningTask

// WorkerView is one worker in the seed's /api/v2/workers shape.
type WorkerView = wire.Worker

// WorkersBody is the answer of GET /api/v2/workers.
type WorkersBody = wire.Workers

// workers answers with the leader's view (forwarded from a follower)
// unless the caller asks ?stale=true for this server's own.
func (s *Server) workers(w http.ResponseWriter, r *http.Request) error {
	if !stale(r) && !s.cluster.IsLeader() {
		return s.forwardToLeader(w, r, func() any { return s.workersView() })
	}
	writeJSON(w, http.StatusOK, s.workersView())
	return nil
}

// workersView shows this server's view of the workers in the seed's shape.
func (s *Server) workersView() WorkersBody {
	body := WorkersBody{Workers: []WorkerView{}}
	versions := map[string]string{}
	for _, member := range s.cluster.Members() {
		if member.Meta.Role == cluster.RoleWorker {
			versions[member.Name] = member.Meta.Versions().Version
		}
	}
	for _, worker := range s.service.Workers() {
		view := WorkerView{
			ID:            worker.Worker.GetId(),
			Labels:        worker.Worker.GetLabels(),
			AutoLabels:    nonNil(worker.Worker.GetAutoLabels()),
			Executors:     nonNil(worker.Worker.GetExecutors()),
			HealthStatus:  worker.Health,
			LastHeartbeat: rfc3339(worker.LastHeartbeat),
			RunningTasks:  []RunningTask{},
			Version:       versions[worker.Worker.GetId()],
		}
		if view.Version == "" {
			view.Version = cluster.UnknownVersion
		}
		if view.Labels == nil {
			view.Labels = map[string]string{}
		}
		for _, run := range worker.Running {
			view.RunningTasks = append(view.RunningTasks, RunningTask{
				DagName:          run.GetDagName(),
				DagRunID:         run.GetId(),
				RootDagRunName:   run.GetRootDagRunName(),
				RootDagRunID:     run.GetRootDagRunId(),
				ParentDagRunName: run.GetParentDagRunName(),
				ParentDagRunID:   run.GetParentDagRunId(),
				StartedAt:        timestamp(run.GetStartedAtUnixNano()),
			})
		}
		sort.Slice(view.RunningTasks, func(i, j int) bool { return view.RunningTasks[i].StartedAt < view.RunningTasks[j].StartedAt })
		body.Workers = append(body.Workers, view)
	}
	return body
}

// nonNil is list, or an empty one: JSON shows [] rather than null.
func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// maxRelayBytes bounds an answer relayed from the leader.
const maxRelayBytes = 64 << 20

// forwardToLeader relays a read to the leader's HTTP API with ?stale=true
// (the leader answers from its own view), holding through an election;
// should this server become the leader meanwhile, it answers localView.
func (s *Server) forwardToLeader(w http.ResponseWriter, r *http.Request, localView func() any) error {
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
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		leaderAPI := client.New(s.scheme+"://"+httpAddr, client.Options{Token: token, HTTPClient: s.forward})
		resp, err := leaderAPI.Send(ctx, r.Method, r.URL.Path+"?"+query.Encode(), nil)
		if err != nil {
			return &cluster.RetryableError{Err: fmt.Errorf("forward to the leader at %s: %w", httpAddr, err)}
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxRelayBytes+1))
		if err != nil {
			return &cluster.RetryableError{Err: err}
		}
		if len(body) > maxRelayBytes {
			return fmt.Errorf("the leader's answer is larger than %d bytes", maxRelayBytes)
		}
		status, header = resp.StatusCode, resp.Header
		return nil
	})
	if err != nil {
		return err
	}
	if status == 0 {
		// This server became the leader meanwhile.
		writeJSON(w, http.StatusOK, localView())
		return nil
	}
	w.Header().Set("Content-Type", header.Get("Content-Type"))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}
