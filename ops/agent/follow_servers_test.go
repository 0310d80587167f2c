package agent

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/rpc"
)

// joiningPool is a gossip pool that a worker joins in the background: the
// servers arrive just after the worker's first look, the moment a real
// join can land in.
type joiningPool struct {
	mu      sync.Mutex
	servers []string
	arrive  []string
	subs    []chan struct{}
	done    chan struct{}
}

func (p *joiningPool) Servers() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := slices.Clone(p.servers)
	if p.arrive != nil {
		p.servers, p.arrive = p.arrive, nil
		for _, ch := range p.subs {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	return seen
}

func (p *joiningPool) Changed() <-chan struct{} {
	ch := make(chan struct{}, 1)
	p.mu.Lock()
	p.subs = append(p.subs, ch)
	p.mu.Unlock()
	return ch
}

func (p *joiningPool) Done() <-chan struct{} { return p.done }

// A worker that joins a quiet pool learns its servers even when they
// arrive between its first look and its subscription to changes: no later
// change would tell it (the bench once saw a worker poll no server for a
// minute, "produced zero addresses", while its three peers ran).
func TestFollowServersMissesNoServerThatArrivesDuringTheFirstLook(t *testing.T) {
	pool := &joiningPool{arrive: []string{"127.0.0.1:7001", "127.0.0.1:7002"}, done: make(chan struct{})}
	defer close(pool.done)
	list := rpc.NewServerList(nil)
	followServers(pool, list, []string{"127.0.0.1:7009"})
	want := []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7009"}
	clustertest.WaitFor(t, 5*time.Second, "the list holds the servers that arrived", func() (bool, string) {
		got := list.Addrs()
		return slices.Equal(got, want), fmt.Sprint(got)
	})
}
