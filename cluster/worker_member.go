package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// WorkerMemberConfig describes a worker's place in the gossip pool.
type WorkerMemberConfig struct {
	NodeName      string
	BindAddr      string
	AdvertiseAddr string
	GossipPort    int
	// Join lists gossip seeds (any server's or worker's gossip address).
	Join              []string
	JoinRetryInterval time.Duration
	GossipTimings     GossipTimings
	Logger            *slog.Logger
	// Labels are announced in gossip when they fit in memberlist's meta.
	Labels map[string]string
	// GossipKeys encrypt the pool, as on the servers.
	GossipKeys [][]byte
}

// WorkerMember is a worker in the gossip pool: through it the worker
// learns where the servers are, and the servers learn the worker is there.
type WorkerMember struct {
	gossip     *memberlist.Memberlist
	meta       *metaDelegate
	members    *members
	shutdownCh chan struct{}
	once       sync.Once
	wg         sync.WaitGroup
}

// JoinAsWorker starts the worker's gossip member and keeps trying the
// seeds in the background until one answers.
func JoinAsWorker(config WorkerMemberConfig) (*WorkerMember, error) {
	if config.NodeName == "" {
		return nil, errors.New("worker gossip: node name is empty")
	}
	if len(config.Join) == 0 {
		return nil, errors.New("worker gossip: no seed to join (-join)")
	}
	if config.BindAddr == "" {
		config.BindAddr = "0.0.0.0"
	}
	if config.AdvertiseAddr == "" {
		addr, err := advertiseFor(config.BindAddr)
		if err != nil {
			return nil, err
		}
		config.AdvertiseAddr = addr
	}
	if config.JoinRetryInterval <= 0 {
		config.JoinRetryInterval = time.Second
	}
	if config.Logger == nil {
		config.Logger = slog.Default()
	}
	w := &WorkerMember{members: newMembers(time.Now), shutdownCh: make(chan struct{})}
	meta := &metaDelegate{meta: ownVersions(Meta{Version: metaVersion, Role: RoleWorker, Labels: config.Labels})}
	if meta.NodeMeta(memberlist.MetaMaxSize) == nil {
		config.Logger.Warn("worker labels are too long for gossip meta; servers learn them from the worker's first poll", "limit_bytes", memberlist.MetaMaxSize)
		meta.meta.Labels = nil
	}
	list, err := newMemberlist(gossipSettings{
		name: config.NodeName, bind: config.BindAddr, advertise: config.AdvertiseAddr,
		port: config.GossipPort, timings: config.GossipTimings, keys: config.GossipKeys,
	}, meta, w.members, config.Logger)
	if err != nil {
		return nil, err
	}
	w.gossip = list
	w.meta = meta
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		joinLoop(list, config.NodeName, w.members, config.Join, config.JoinRetryInterval, w.shutdownCh, config.Logger)
	}()
	return w, nil
}

// Servers returns the gRPC addresses of the live servers, sorted.
func (w *WorkerMember) Servers() []string {
	var addrs []string
	for _, m := range w.members.list(RoleServer) {
		if m.Status == MemberAlive && m.Meta.GRPCAddr != "" {
			addrs = append(addrs, m.Meta.GRPCAddr)
		}
	}
	sort.Strings(addrs)
	return addrs
}

// Changed returns a channel that receives when the pool changes.
func (w *WorkerMember) Changed() <-chan struct{} { return w.members.subscribe() }

// Done is closed when the member shuts down.
func (w *WorkerMember) Done() <-chan struct{} { return w.shutdownCh }

// Shutdown leaves the pool (gracefully, within timeout) and stops.
func (w *WorkerMember) Shutdown(timeout time.Duration) error {
	var err error
	w.once.Do(func() {
		w.meta.setLeaving()
		if e := w.gossip.UpdateNode(timeout); e != nil {
			err = e
		}
		leaveErr := w.gossip.Leave(timeout)
		close(w.shutdownCh)
		w.wg.Wait()
		if e := w.gossip.Shutdown(); e != nil || leaveErr != nil || err != nil {
			err = fmt.Errorf("leave gossip: %w", errors.Join(err, leaveErr, e))
		}
	})
	return err
}
