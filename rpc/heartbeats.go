package rpc

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/dispatch"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// ShareHeartbeats merges every other server's worker heartbeat table into
// this server's each interval, until ctx ends. A worker talks to one
// server at a time; sharing gives every server (the next leader among
// them) a warm view even while there is no leader, so a failover neither
// marks live workers unhealthy nor forgets how long a dead one has been
// silent. Tables carry ages, not times, so clocks that differ between
// servers do not matter.
func ShareHeartbeats(ctx context.Context, c *cluster.Server, peers *PeerClient, table *dispatch.Heartbeats, interval time.Duration, logger *slog.Logger) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		var wg sync.WaitGroup
		for _, m := range c.Members() {
			if m.Meta.Role != cluster.RoleServer || m.Status != cluster.MemberAlive || m.Name == c.NodeName() || m.Meta.GRPCAddr == "" {
				continue
			}
			wg.Add(1)
			go func(name, addr string) {
				defer wg.Done()
				if err := copyHeartbeats(ctx, peers, addr, table, interval); err != nil && ctx.Err() == nil {
					logger.Debug("copy worker heartbeats", "server", name, "error", err)
				}
			}(m.Name, m.Meta.GRPCAddr)
		}
		wg.Wait()
	}
}

func copyHeartbeats(ctx context.Context, peers *PeerClient, addr string, table *dispatch.Heartbeats, timeout time.Duration) error {
	client, err := peers.client(addr)
	if err != nil {
		return err
	}
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The ages were measured somewhere between sending and receiving;
	// counting them back from the moment of sending never dates a
	// heartbeat later than it was, so copies passed from server to server
	// cannot creep forward and keep a dead worker alive.
	sent := time.Now()
	resp, err := client.WorkerHeartbeats(callCtx, &daguhav1.WorkerHeartbeatsRequest{})
	if err != nil {
		return fromStatus(err)
	}
	now := sent
	for i, id := range resp.GetWorkerIds() {
		if i < len(resp.GetAgeMillis()) {
			table.SeenAt(id, now.Add(-time.Duration(resp.GetAgeMillis()[i])*time.Millisecond))
		}
	}
	return nil
}
