package api

import (
	"net/http"
	"time"

	"github.com/daguha/daguha/ops/wire"
)

// glance answers with the last minutes of the cluster as the leader
// sampled them (forwarded from a follower: only the leader counts the
// runs it starts), or this server's own with ?stale=true.
func (s *Server) glance(w http.ResponseWriter, r *http.Request) error {
	if !stale(r) && !s.cluster.IsLeader() {
		return s.forwardToLeader(w, r, func() any { return s.glanceView() })
	}
	writeJSON(w, http.StatusOK, s.glanceView())
	return nil
}

func (s *Server) glanceView() wire.Glance {
	body := wire.Glance{Server: s.cluster.NodeName(), Samples: []wire.GlanceSample{}}
	for _, sample := range s.service.Glance() {
		body.Samples = append(body.Samples, wire.GlanceSample{
			At: sample.At.UTC().Format(time.RFC3339Nano), QueueDepth: sample.QueueDepth, RunsRunning: sample.RunsRunning,
			RunsStarted: sample.RunsStarted, Workers: sample.Workers, Leader: sample.Leader,
		})
	}
	return body
}
