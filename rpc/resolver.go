package rpc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

// ServerList is a gRPC resolver over a list of server addresses that can
// change (workers learn servers through gossip). The connection keeps a
// subchannel to every server, so a server's death costs a worker no
// reconnection delay. Calls go to the leader once a server has named it:
// a follower a call lands on forwards it to the leader and names the
// leader's address in the answer's header (leaderHeader), and the list
// remembers it. Until then, whenever the named server is not up or not in
// the list, and from a call that found no server or timed out until a
// server names the leader again, calls are spread over the servers that
// are up (round robin). A name that is not one of the list's addresses
// is never dialled.
type ServerList struct {
	scheme string

	mu    sync.Mutex
	addrs []string
	conns []resolver.ClientConn

	// leader is the address the last answer that named one named.
	leader atomic.Pointer[string]
}

// leaderHeader is the header a follower sets on a worker's call it
// forwarded: the leader's gRPC address, as servers advertise it in gossip
// (the addresses a worker's ServerList holds).
const leaderHeader = "x-daguha-leader"

// leaderFirst is the balancer of a ServerList's connections.
const leaderFirst = "daguha_leader_first"

func init() {
	balancer.Register(base.NewBalancerBuilder(leaderFirst, leaderFirstPickers{}, base.Config{}))
}

// listKey finds a ServerList in its addresses' balancer attributes.
type listKey struct{}

var serverListSeq atomic.Uint64

// NewServerList returns a resolver starting with addrs.
func NewServerList(addrs []string) *ServerList {
	return &ServerList{scheme: fmt.Sprintf("daguha-servers-%d", serverListSeq.Add(1)), addrs: append([]string(nil), addrs...)}
}

// Dial returns a client connection that uses the list.
func (l *ServerList) Dial(options ...grpc.DialOption) (*grpc.ClientConn, error) {
	options = append(options, grpc.WithResolvers(l),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"`+leaderFirst+`": {}}]}`),
		grpc.WithChainUnaryInterceptor(l.learnLeader))
	return grpc.NewClient(l.scheme+":///servers", options...)
}

// Leader returns the address the servers last named as the leader's, or
// "" before any did.
func (l *ServerList) Leader() string {
	if p := l.leader.Load(); p != nil {
		return *p
	}
	return ""
}

// learnLeader keeps the leader's address named in a call's answer.
func (l *ServerList) learnLeader(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	var header metadata.MD
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Header(&header))...)
	switch code := status.Code(err); {
	case code == codes.Unavailable || code == codes.DeadlineExceeded:
		// The named server may be cut off from the others, paused or
		// no longer the leader: go round the servers again until one
		// names the leader. (A call that went round already changes
		// nothing by this.)
		if l.leader.Load() != nil {
			l.leader.Store(nil)
		}
	default:
		// A forward retried across a leader change names each leader
		// it tried: the last is the one that answered.
		if named := header.Get(leaderHeader); len(named) > 0 {
			if addr := named[len(named)-1]; addr != l.Leader() {
				l.leader.Store(&addr)
			}
		}
	}
	return err
}

// Addrs returns the addresses the list holds now.
func (l *ServerList) Addrs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.addrs...)
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
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a, ServerName: host,
			BalancerAttributes: attributes.New(listKey{}, l)})
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

// leaderFirstPickers builds the pickers of a ServerList's connection.
type leaderFirstPickers struct{}

func (leaderFirstPickers) Build(info base.PickerBuildInfo) balancer.Picker {
	if len(info.ReadySCs) == 0 {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	p := &leaderFirstPicker{byAddr: make(map[string]balancer.SubConn, len(info.ReadySCs))}
	// Workers that start together do not all begin at the same server.
	p.next.Store(rand.Uint32())
	for sc, sci := range info.ReadySCs {
		p.ready = append(p.ready, sc)
		p.byAddr[sci.Address.Addr] = sc
		if list, ok := sci.Address.BalancerAttributes.Value(listKey{}).(*ServerList); ok {
			p.list = list
		}
	}
	return p
}

// leaderFirstPicker sends a call to the named leader when it is up, and
// otherwise to the next server that is (round robin).
type leaderFirstPicker struct {
	list   *ServerList
	byAddr map[string]balancer.SubConn
	ready  []balancer.SubConn
	next   atomic.Uint32
}

func (p *leaderFirstPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	if p.list != nil {
		if sc, ok := p.byAddr[p.list.Leader()]; ok {
			return balancer.PickResult{SubConn: sc}, nil
		}
	}
	n := p.next.Add(1)
	return balancer.PickResult{SubConn: p.ready[n%uint32(len(p.ready))]}, nil
}
