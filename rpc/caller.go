package rpc

import (
	"context"

	"google.golang.org/grpc/metadata"

	"github.com/daguha/daguha/cluster/identity"
)

// Caller is who made a gRPC call, as this server established it when the
// call came in (the authorization interceptor puts it in the context).
type Caller struct {
	// Role and Name are what the caller proved: under TLS its
	// certificate's identity; without TLS a server proves its role with
	// the cluster token (and its name is then not proven). Unproven
	// callers (plaintext, no token) have an empty role.
	Role identity.Role
	Name string
	// Labels are the worker labels its certificate vouches for.
	Labels map[string]string
	// Proven is true when Role (and Name, under TLS) were proven.
	Proven bool
	// Host is the IP address the call came from; for a worker's call a
	// follower forwarded, the worker's own address as that follower saw it.
	Host string
}

type callerKey struct{}

// withCaller returns ctx carrying the caller.
func withCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller the interceptor established for ctx's
// call (the zero Caller, unproven, when none was).
func CallerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

type workerKey struct{}

// withWorker returns ctx carrying the worker a CoordinatorService call
// acts for.
func withWorker(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, workerKey{}, c)
}

// WorkerFrom returns the worker a CoordinatorService call acts for: the
// caller itself when a worker called, or the worker a forwarding server
// vouches for in the call's metadata. ok is false when the call acts for
// no worker.
func WorkerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(workerKey{}).(Caller)
	return c, ok
}

// Metadata a follower adds when it forwards a worker's call to the
// leader: who the worker proved to be to the follower. The leader
// believes it only from a caller proven to be a server.
const (
	forwardedWorkerKey = "x-daguha-worker"
	forwardedHostKey   = "x-daguha-worker-host"
	forwardedProvenKey = "x-daguha-worker-proven"
)

// forwardWorker adds the worker's identity to an outgoing forwarded call.
func forwardWorker(ctx context.Context, worker Caller) context.Context {
	id, proven := "", "0"
	if worker.Proven {
		id, proven = identity.Identity{Role: worker.Role, Name: worker.Name, Labels: worker.Labels}.String(), "1"
	}
	return metadata.AppendToOutgoingContext(ctx, forwardedWorkerKey, id, forwardedHostKey, worker.Host, forwardedProvenKey, proven)
}

// forwardedWorker reads the worker a forwarding server vouches for; ok is
// false when the call carries none or it does not parse.
func forwardedWorker(md metadata.MD) (Caller, bool) {
	ids, hosts, proven := md.Get(forwardedWorkerKey), md.Get(forwardedHostKey), md.Get(forwardedProvenKey)
	if len(ids) != 1 || len(hosts) != 1 || len(proven) != 1 {
		return Caller{}, false
	}
	c := Caller{Host: hosts[0]}
	if proven[0] != "1" {
		// A plaintext worker: it proved nothing, its id is its claim.
		return c, true
	}
	c.Proven = true
	id, err := identity.Parse(ids[0])
	if err != nil {
		return Caller{}, false
	}
	c.Role, c.Name, c.Labels = id.Role, id.Name, id.Labels
	return c, true
}
