package agent

import (
	"context"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Services of the gRPC health service (grpc.health.v1.Health) a server
// answers for.
const (
	// HealthServiceReady is the default service (""): SERVING while this
	// server knows a cluster leader, so a request it gets can be served;
	// NOT_SERVING before the cluster forms and during an election. For
	// readiness probes and `daguha health`.
	HealthServiceReady = ""
	// HealthServiceLive is SERVING as long as the process serves gRPC at
	// all, leader or not: for liveness probes, which must not restart a
	// server because the cluster has no leader.
	HealthServiceLive = "liveness"
)

// healthPoll is how often the leader is looked at; leader changes are
// rare, and a probe is not expected to see one sooner than this.
const healthPoll = 200 * time.Millisecond

// watchLeaderHealth keeps the ready service's status in line with whether
// this server knows a leader, until ctx ends.
func (a *Agent) watchLeaderHealth(ctx context.Context) {
	a.health.SetServingStatus(HealthServiceLive, healthpb.HealthCheckResponse_SERVING)
	last := healthpb.HealthCheckResponse_UNKNOWN
	ticker := time.NewTicker(healthPoll)
	defer ticker.Stop()
	for {
		status := healthpb.HealthCheckResponse_NOT_SERVING
		if name, _ := a.cluster.Leader(); name != "" {
			status = healthpb.HealthCheckResponse_SERVING
		}
		if status != last {
			a.health.SetServingStatus(HealthServiceReady, status)
			a.logger.Debug("health", "status", status.String())
			last = status
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
