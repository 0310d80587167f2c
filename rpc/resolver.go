package rpc

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
)

// ServerList is a gRPC resolver over a list of server addresses that can
// change (workers learn servers through gossip). The connection keeps a
// subchannel to every server and spreads calls over those that are up
// (round robin), so a server's death costs a worker no reconnection
// delay; a follower a call lands on forwards it to the leader.
type ServerList struct {
	scheme string

	mu    sync.Mutex
	addrs []string
	conns []resolver.ClientConn
}

var serverListSeq atomic.Uint64

// NewServerList returns a resolver starting with addrs.
func NewServerList(addrs []string) *ServerList {
	return &ServerList{scheme: fmt.Sprintf("daguha-servers-%d", serverListSeq.Add(1)), addrs: append([]string(nil), addrs...)}
}

// Dial returns a client connection that uses the list.
func (l *ServerList) Dial(options ...grpc.DialOption) (*grpc.ClientConn, error) {
	options = append(options, grpc.WithResolvers(l),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin": {}}]}`))
	return grpc.NewClient(l.scheme+":///servers", options...)
}

// Update replaces the addresses.
func (l *ServerList) Update(addrs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addrs = append([]string(nil), addrs...)
	for _, cc := range l.conns {
		_ = cc.UpdateState(l.state())
	}
}

func (l *ServerList) state() resolver.State {
	state := resolver.State{}
	for _, a := range l.addrs {
		// TLS checks each server's certificate against the host it is
		// reached at, not the list's made-up target name.
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			host = a
		}
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a, ServerName: host})
	}
	return state
}

// Build implements resolver.Builder.
func (l *ServerList) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conns = append(l.conns, cc)
	_ = cc.UpdateState(l.state())
	return &serverListResolver{list: l, cc: cc}, nil
}

// Scheme implements resolver.Builder.
func (l *ServerList) Scheme() string { return l.scheme }

type serverListResolver struct {
	list *ServerList
	cc   resolver.ClientConn
}

func (r *serverListResolver) ResolveNow(resolver.ResolveNowOptions) {
	r.list.mu.Lock()
	defer r.list.mu.Unlock()
	_ = r.cc.UpdateState(r.list.state())
}

func (r *serverListResolver) Close() {
	r.list.mu.Lock()
	defer r.list.mu.Unlock()
	for i, cc := range r.list.conns {
		if cc == r.cc {
			r.list.conns = append(r.list.conns[:i], r.list.conns[i+1:]...)
			break
		}
	}
}
