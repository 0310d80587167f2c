package rpc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/daguha/daguha/cluster/identity"
)

// clusterTokenKey is the metadata a server proves its role with when
// there is no TLS: the cluster token, which workers never hold.
const clusterTokenKey = "x-daguha-cluster-token"

// access is who may call a group of methods.
type access int

const (
	// accessNobody: methods the table does not know are refused, so a
	// service added later is closed until someone says who may call it.
	accessNobody access = iota
	// accessServers: server-to-server calls (Raft writes, peer changes,
	// restores, heartbeat tables).
	accessServers
	// accessWorkers: the worker protocol, called by a worker as itself,
	// or by a server forwarding a worker's call to the leader.
	accessWorkers
	// accessAnyone: health checks.
	accessAnyone
)

// methodAccess is the table of who may call what, by the full method
// name's service part; docs/security.md shows it to users.
var methodAccess = map[string]access{
	"/daguha.v1.ClusterService/":     accessServers,
	"/daguha.v1.CoordinatorService/": accessWorkers,
	"/grpc.health.v1.Health/":        accessAnyone,
	// RaftState is how a server proves who it is to another that learnt
	// its address from gossip: anyone may ask, the caller is not yet
	// known to be a server (so the cluster token is never sent with it),
	// and the answer tells nothing secret (cluster.AnswerRaftState).
	raftStateMethod: accessAnyone,
}

// raftStateMethod is the one ClusterService call open to every caller.
const raftStateMethod = "/daguha.v1.ClusterService/RaftState"

func accessFor(fullMethod string) access {
	if rule, ok := methodAccess[fullMethod]; ok {
		return rule
	}
	if i := strings.LastIndexByte(fullMethod, '/'); i > 0 {
		return methodAccess[fullMethod[:i+1]]
	}
	return accessNobody
}

// Authorizer decides, for every call on a server's gRPC port, who the
// caller is (a Caller in the call's context) and whether it may make the
// call.
//
// Under mutual TLS a caller is what its certificate's identity says; a
// certificate without a role (made before roles existed) is refused. With
// no verified certificate, the cluster token in the call's metadata
// proves the server role. With neither TLS nor a cluster token configured
// the port is open: every caller is taken for a server, as before roles
// existed (the server warns about it at start).
type Authorizer struct {
	mutualTLS bool
	tokens    [][sha256.Size]byte
	logger    *slog.Logger
}

// NewAuthorizer returns the authorizer of a server whose gRPC port
// requires client certificates (mutualTLS) and accepts any of tokens as
// the proof of a server without one.
func NewAuthorizer(mutualTLS bool, tokens []string, logger *slog.Logger) *Authorizer {
	if logger == nil {
		logger = slog.Default()
	}
	a := &Authorizer{mutualTLS: mutualTLS, logger: logger.With("component", "grpc-auth")}
	for _, t := range tokens {
		if t != "" {
			a.tokens = append(a.tokens, sha256.Sum256([]byte(t)))
		}
	}
	return a
}

// Open reports whether the port proves nothing: no TLS, no cluster token.
func (a *Authorizer) Open() bool { return !a.mutualTLS && len(a.tokens) == 0 }

// ServerOptions installs the authorizer on a gRPC server.
func (a *Authorizer) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(a.unary), grpc.ChainStreamInterceptor(a.stream)}
}

func (a *Authorizer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *Authorizer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &authorizedStream{ServerStream: ss, ctx: ctx})
}

type authorizedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authorizedStream) Context() context.Context { return s.ctx }

// refusal is why a call was refused: the status the caller gets (which
// names no secret) and what the log says.
type refusal struct {
	code   codes.Code
	reason string
}

// authorize establishes the caller of a call to method and decides; it
// returns the context the handler runs with (carrying the Caller, and
// for the worker protocol the worker the call acts for).
func (a *Authorizer) authorize(ctx context.Context, method string) (context.Context, error) {
	caller, certErr := a.establish(ctx)
	md, _ := metadata.FromIncomingContext(ctx)
	worker, refused := a.decide(method, caller, certErr, md)
	if refused != nil {
		who := "none proven"
		if caller.Proven {
			who = identity.Identity{Role: caller.Role, Name: caller.Name}.String()
		}
		a.logger.Warn("gRPC call refused", "method", method, "peer", peerAddr(ctx), "identity", who, "reason", refused.reason)
		if identity.Enforced {
			return nil, status.Error(refused.code, refused.reason)
		}
		// The deliberately broken build lets the call through, to show
		// the attack the refusal stops.
	}
	ctx = withCaller(ctx, caller)
	if accessFor(method) == accessWorkers {
		if refused != nil {
			// Let through by the broken build: a worker that proved nothing.
			worker = Caller{Host: caller.Host}
		}
		ctx = withWorker(ctx, worker)
	}
	return ctx, nil
}

// establish says who the caller proved to be. certErr is set when the
// caller presented a certificate the CA signed that carries no usable
// identity.
func (a *Authorizer) establish(ctx context.Context) (Caller, error) {
	c := Caller{}
	p, ok := peer.FromContext(ctx)
	if ok && p.Addr != nil {
		c.Host = hostOf(p.Addr)
	}
	if ok {
		if info, isTLS := p.AuthInfo.(credentials.TLSInfo); isTLS && len(info.State.VerifiedChains) > 0 && len(info.State.VerifiedChains[0]) > 0 {
			id, err := identity.FromCertificate(info.State.VerifiedChains[0][0])
			if err != nil {
				return c, err
			}
			c.Role, c.Name, c.Labels, c.Proven = id.Role, id.Name, id.Labels, true
			return c, nil
		}
	}
	if a.tokenPresented(ctx) {
		c.Role, c.Proven = identity.RoleServer, true
		return c, nil
	}
	if a.Open() {
		// Nothing can be proven here: every caller is a server, as before.
		c.Role = identity.RoleServer
	}
	return c, nil
}

func (a *Authorizer) tokenPresented(ctx context.Context) bool {
	if len(a.tokens) == 0 {
		return false
	}
	md, _ := metadata.FromIncomingContext(ctx)
	presented := md.Get(clusterTokenKey)
	if len(presented) != 1 {
		return false
	}
	sum := sha256.Sum256([]byte(presented[0]))
	match := 0
	for _, t := range a.tokens {
		match |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	return match == 1
}

// decide applies the table. For the worker protocol it also returns the
// worker the call acts for: the caller itself, or the worker a forwarding
// server vouches for.
func (a *Authorizer) decide(method string, caller Caller, certErr error, md metadata.MD) (worker Caller, refused *refusal) {
	rule := accessFor(method)
	if rule == accessAnyone {
		return Caller{}, nil
	}
	if certErr != nil {
		return Caller{}, &refusal{codes.Unauthenticated, certErr.Error()}
	}
	switch rule {
	case accessServers:
		if caller.Role == identity.RoleServer {
			return Caller{}, nil
		}
		switch {
		case caller.Proven:
			return Caller{}, &refusal{codes.PermissionDenied, fmt.Sprintf("%s is for servers only; the caller is %s %q", method, caller.Role, caller.Name)}
		case a.mutualTLS:
			return Caller{}, &refusal{codes.Unauthenticated, fmt.Sprintf("%s is for servers only, proven by a server certificate", method)}
		}
		return Caller{}, &refusal{codes.Unauthenticated, fmt.Sprintf("%s is for servers only, proven by the cluster token, which the call did not carry", method)}
	case accessWorkers:
		switch caller.Role {
		case identity.RoleWorker:
			return caller, nil
		case identity.RoleServer:
			if w, ok := forwardedWorker(md); ok {
				return w, nil
			}
			if caller.Proven && len(md.Get(forwardedKey)) > 0 {
				// A server from before forwarded calls named their worker
				// (a rolling upgrade): the worker proved nothing here, and
				// where it called from is unknown.
				return Caller{}, nil
			}
			if !caller.Proven {
				// An open port: the caller is a plaintext worker.
				return Caller{Host: caller.Host}, nil
			}
			return Caller{}, &refusal{codes.PermissionDenied, fmt.Sprintf("%s: a server calls the worker protocol only to forward a worker's call, and this call names no worker", method)}
		}
		// Unproven (plaintext on a cluster with a token): a worker that
		// proves nothing; what it may do rests on its lease tokens.
		return Caller{Host: caller.Host}, nil
	}
	return Caller{}, &refusal{codes.PermissionDenied, fmt.Sprintf("%s is not served to any caller", method)}
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return "unknown"
}

// hostOf is the IP address of a peer's address.
func hostOf(addr net.Addr) string {
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return ""
	}
	return host
}

// clusterTokenCredentials sends the cluster token with every call a server
// makes to another server, but RaftState: that call goes to addresses
// gossip advertises before anything proved they are servers' (it is the
// proof), and an impostor must not collect the token with it.
type clusterTokenCredentials struct{ token string }

func (c clusterTokenCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if info, ok := credentials.RequestInfoFromContext(ctx); ok && info.Method == raftStateMethod {
		return nil, nil
	}
	return map[string]string{clusterTokenKey: c.token}, nil
}

// RequireTransportSecurity is false: without TLS the token is what
// proves a server; with TLS it travels encrypted.
func (c clusterTokenCredentials) RequireTransportSecurity() bool { return false }

// WithClusterToken makes every call on the connection carry the cluster
// token (the first of a server's tokens); an empty token adds nothing.
func WithClusterToken(token string) []grpc.DialOption {
	if token == "" {
		return nil
	}
	return []grpc.DialOption{grpc.WithPerRPCCredentials(clusterTokenCredentials{token: token})}
}
