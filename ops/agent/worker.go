package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/rpc"
)

// WorkerConfig is one worker process's settings: where the servers are
// (gRPC addresses, or gossip seeds to learn them from) and the worker.
type WorkerConfig struct {
	Worker dispatch.WorkerConfig
	// Servers are gRPC addresses of servers (the seed's
	// --worker.coordinator-host/port form, and dev mode).
	Servers []string
	// Gossip, when set, joins the gossip pool and follows the servers
	// found there.
	Gossip *cluster.WorkerMemberConfig
	Logger *slog.Logger
}

// WorkerAgent is a running worker.
type WorkerAgent struct {
	logger *slog.Logger
	conn   *grpc.ClientConn
	member *cluster.WorkerMember
	cancel context.CancelFunc
	done   chan struct{}
}

// StartWorker connects to the cluster and starts polling.
func StartWorker(config WorkerConfig) (*WorkerAgent, error) {
	if config.Logger == nil {
		config.Logger = slog.Default()
	}
	config.Worker.Logger = config.Logger
	if len(config.Servers) == 0 && config.Gossip == nil {
		return nil, errors.New("worker: no server address and no gossip seed given")
	}
	a := &WorkerAgent{logger: config.Logger, done: make(chan struct{})}
	list := rpc.NewServerList(config.Servers)
	if config.Gossip != nil {
		config.Gossip.Logger = config.Logger
		member, err := cluster.JoinAsWorker(*config.Gossip)
		if err != nil {
			return nil, err
		}
		a.member = member
		list.Update(member.Servers())
		changed := member.Changed()
		go func() {
			for {
				select {
				case <-changed:
					list.Update(member.Servers())
				case <-member.Done():
					return
				}
			}
		}()
	}
	conn, err := list.Dial(grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		a.shutdownMember()
		return nil, fmt.Errorf("worker: connect: %w", err)
	}
	a.conn = conn
	worker, err := dispatch.NewWorker(conn, config.Worker)
	if err != nil {
		conn.Close()
		a.shutdownMember()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() {
		defer close(a.done)
		_ = worker.Run(ctx)
	}()
	return a, nil
}

func (a *WorkerAgent) shutdownMember() {
	if a.member != nil {
		if err := a.member.Shutdown(2 * time.Second); err != nil {
			a.logger.Warn("worker gossip shutdown", "error", err)
		}
	}
}

// Stop stops polling, stops the runs in progress (they are left to be
// reclaimed and run elsewhere), leaves the gossip pool and disconnects.
func (a *WorkerAgent) Stop() {
	a.cancel()
	<-a.done
	a.shutdownMember()
	a.conn.Close()
}
