package rpc

import (
	"context"
	"log/slog"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/dispatch"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// FollowHeartbeats copies the leader's worker heartbeat table into this
// server's every interval while this server is a follower, so that if it
// becomes leader it neither declares live workers offline nor forgets how
// long a dead one has been silent. It returns when ctx ends.
func FollowHeartbeats(ctx context.Context, c *cluster.Server, peers *PeerClient, table *dispatch.Heartbeats, interval time.Duration, logger *slog.Logger) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if c.IsLeader() {
			continue
		}
		err := c.OnLeader(ctx, func(ctx context.Context, local bool, grpcAddr string) error {
			if local {
				return nil
			}
			client, err := peers.client(grpcAddr)
			if err != nil {
				return err
			}
			callCtx, cancel := context.WithTimeout(ctx, interval)
			defer cancel()
			resp, err := client.WorkerHeartbeats(callCtx, &daguhav1.WorkerHeartbeatsRequest{})
			if err != nil {
				return fromStatus(err)
			}
			now := time.Now()
			for i, id := range resp.GetWorkerIds() {
				if i < len(resp.GetAgeMillis()) {
					table.SeenAt(id, now.Add(-time.Duration(resp.GetAgeMillis()[i])*time.Millisecond))
				}
			}
			return nil
		})
		if err != nil && ctx.Err() == nil {
			logger.Debug("copy worker heartbeats from the leader", "error", err)
		}
	}
}
