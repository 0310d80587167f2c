package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/dispatch/worker"
	"github.com/daguha/daguha/ops/metrics"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/rpc"
)

// WorkerConfig is one worker process's settings: where the servers are
// (gRPC addresses, or gossip seeds to learn them from) and the worker.
type WorkerConfig struct {
	Worker worker.Config
	// Servers are gRPC addresses of servers (the seed's
	// --worker.coordinator-host/port form, and dev mode).
	Servers []string
	// Gossip, when set, joins the gossip pool and follows the servers
	// found there.
	Gossip *cluster.WorkerMemberConfig
	// DiscoverGossip asks the Servers for the gossip pool's addresses and
	// joins it (the Dagu form, given one coordinator address), on
	// GossipPort (0: any free port).
	DiscoverGossip bool
	GossipPort     int
	// GossipKeys encrypt the gossip pool, as on the servers.
	GossipKeys [][]byte
	// TLS, when set, is the worker's side of TLS to the servers; nil
	// speaks plaintext.
	TLS    *tls.Config
	Logger *slog.Logger
	// MetricsAddr, when set (host:port), serves the worker's /metrics.
	MetricsAddr string
	// LogBind is where the worker serves its step logs to the servers
	// (host:port; port 0 picks a free one). An empty host (or an empty
	// LogBind, any port) is the local address this worker reaches the
	// servers from, which is where the servers dial it. A host of 0.0.0.0
	// (or ::) listens on every interface, only when given, and is
	// advertised as that same local address. "off": no log service.
	LogBind string
}

// WorkerAgent is a running worker.
type WorkerAgent struct {
	logger   *slog.Logger
	logs     *grpc.Server
	conn     *grpc.ClientConn
	mu       sync.Mutex
	member   *cluster.WorkerMember
	cancel   context.CancelFunc
	done     chan struct{}
	joinDone chan struct{}
	// stopMetrics ends the metrics listener, if any.
	stopMetrics context.CancelFunc
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
	a := &WorkerAgent{logger: config.Logger, done: make(chan struct{}), joinDone: make(chan struct{}), stopMetrics: func() {}}
	if config.MetricsAddr != "" {
		m := metrics.NewWorker()
		config.Worker.Metrics = m
		ctx, cancel := context.WithCancel(context.Background())
		if _, err := m.Serve(ctx, config.MetricsAddr, config.Logger); err != nil {
			cancel()
			return nil, fmt.Errorf("worker: %w", err)
		}
		a.stopMetrics = cancel
	}
	logLn, err := a.listenForLogs(&config)
	if err != nil {
		a.stopMetrics()
		return nil, err
	}
	list := rpc.NewServerList(config.Servers)
	if config.Gossip != nil {
		config.Gossip.Logger = config.Logger
		config.Gossip.Labels = config.Worker.Labels
		config.Gossip.GossipKeys = config.GossipKeys
		member, err := cluster.JoinAsWorker(*config.Gossip)
		if err != nil {
			a.stopMetrics()
			closeListener(logLn)
			return nil, err
		}
		a.follow(member, list, config.Servers)
	}
	creds := insecure.NewCredentials()
	if config.TLS != nil {
		creds = credentials.NewTLS(config.TLS)
	} else {
		config.Logger.Warn("worker speaks plaintext to the coordinator: set --worker.insecure=false or --worker.tls-* for TLS")
	}
	conn, err := list.Dial(grpc.WithTransportCredentials(creds), rpc.ClientMessageLimits())
	if err != nil {
		closeListener(logLn)
		a.shutdownMember()
		a.stopMetrics()
		return nil, fmt.Errorf("worker: connect: %w", err)
	}
	a.conn = conn
	w, err := worker.New(conn, config.Worker)
	if err != nil {
		closeListener(logLn)
		conn.Close()
		a.shutdownMember()
		a.stopMetrics()
		return nil, err
	}
	if logLn != nil {
		a.serveLogs(logLn, w, config)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() {
		defer close(a.done)
		_ = w.Run(ctx)
	}()
	if config.DiscoverGossip && config.Gossip == nil {
		go func() {
			defer close(a.joinDone)
			a.discoverAndJoin(ctx, conn, list, config)
		}()
	} else {
		close(a.joinDone)
	}
	return a, nil
}

// follow keeps the connection's server list in line with the servers the
// gossip pool knows, plus the addresses the worker was given.
func (a *WorkerAgent) follow(member *cluster.WorkerMember, list *rpc.ServerList, given []string) {
	a.mu.Lock()
	a.member = member
	a.mu.Unlock()
	followServers(member, list, given)
}

// serverSource is where a worker learns the servers' addresses: its
// gossip member (cluster.WorkerMember).
type serverSource interface {
	Servers() []string
	// Changed receives (at most one pending signal) when the pool
	// changes after the call.
	Changed() <-chan struct{}
	Done() <-chan struct{}
}

// followServers sets list to the source's servers plus given, and again
// at every change until the source is done. It subscribes before it
// reads: the pool joins in the background, and servers learned between
// a first read and a later subscription would never reach the list (a
// worker that joined a quiet pool then polled no server until some other
// member came or went).
func followServers(source serverSource, list *rpc.ServerList, given []string) {
	changed := source.Changed()
	update := func() {
		seen := map[string]bool{}
		var addrs []string
		for _, addr := range append(source.Servers(), given...) {
			if !seen[addr] {
				seen[addr] = true
				addrs = append(addrs, addr)
			}
		}
		list.Update(addrs)
	}
	update()
	go func() {
		for {
			select {
			case <-changed:
				update()
			case <-source.Done():
				return
			}
		}
	}()
}

// discoverAndJoin asks the coordinator where the gossip pool is, then
// joins it, retrying until it succeeds or the worker stops.
func (a *WorkerAgent) discoverAndJoin(ctx context.Context, conn *grpc.ClientConn, list *rpc.ServerList, config WorkerConfig) {
	client := daguhav1.NewCoordinatorServiceClient(conn)
	for attempt := 1; ; attempt++ {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := client.Discover(callCtx, &daguhav1.DiscoverRequest{})
		cancel()
		if err == nil && len(resp.GetServers()) > 0 {
			var seeds []string
			for _, s := range resp.GetServers() {
				seeds = append(seeds, s.GetGossipAddr())
			}
			bind, err := localAddressFor(config.Servers[0])
			if err == nil {
				member, err := cluster.JoinAsWorker(cluster.WorkerMemberConfig{
					NodeName: config.Worker.ID, BindAddr: bind, GossipPort: config.GossipPort,
					Join: seeds, Labels: config.Worker.Labels, Logger: config.Logger, GossipKeys: config.GossipKeys,
				})
				if err == nil {
					a.follow(member, list, config.Servers)
					return
				}
			}
			a.logger.Warn("could not join the gossip pool; retrying", "seeds", seeds, "error", err)
		} else if ctx.Err() == nil {
			a.logger.Debug("discover servers", "attempt", attempt, "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// localAddressFor is the local address this host uses to reach addr: the
// one the gossip pool can reach it at.
func localAddressFor(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.TCPAddr).IP.String(), nil
}

// listenForLogs opens the step log service's listener and sets the
// address the worker tells the cluster.
func (a *WorkerAgent) listenForLogs(config *WorkerConfig) (net.Listener, error) {
	bind := config.LogBind
	switch bind {
	case "off":
		return nil, nil
	case "":
		bind = ":0"
	}
	host, port, err := net.SplitHostPort(bind)
	if err != nil {
		return nil, fmt.Errorf("worker: step log address %q: want host:port, :port or \"off\": %w", bind, err)
	}
	if host == "" {
		// Not told where: where the servers reach this worker, never every
		// interface.
		if host, err = a.serverFacingAddress(config); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("worker: step log listener %s: %w", net.JoinHostPort(host, port), err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	advertised := addr.IP.String()
	if addr.IP.IsUnspecified() {
		a.logger.Info("step logs are served on every interface, as the step log address asks", "bind", bind)
		if advertised, err = a.serverFacingAddress(config); err != nil {
			ln.Close()
			return nil, err
		}
	}
	config.Worker.LogAddr = net.JoinHostPort(advertised, strconv.Itoa(addr.Port))
	return ln, nil
}

// serverFacingAddress is the local address this worker reaches the
// servers (or its gossip seeds) from: the one they see its calls come
// from and dial back for step logs. Found by routing, without sending
// anything, so the servers need not be up yet.
func (a *WorkerAgent) serverFacingAddress(config *WorkerConfig) (string, error) {
	var targets []string
	targets = append(targets, config.Servers...)
	if config.Gossip != nil {
		targets = append(targets, config.Gossip.Join...)
	}
	var errs []error
	for _, target := range targets {
		conn, err := net.Dial("udp", target)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		local := conn.LocalAddr().(*net.UDPAddr).IP
		conn.Close()
		if !local.IsUnspecified() {
			return local.String(), nil
		}
	}
	return "", fmt.Errorf("worker: cannot tell which address the servers reach this worker at for step logs (%v); give the step log address's host", errors.Join(errs...))
}

// serveLogs serves the worker's step logs. With TLS, the servers are
// asked for certificates the CA signed, as the servers ask workers, and
// only a caller whose certificate carries a server identity is served;
// every request must also carry its attempt's log ticket.
func (a *WorkerAgent) serveLogs(ln net.Listener, w *worker.Worker, config WorkerConfig) {
	options := []grpc.ServerOption{grpc.ChainStreamInterceptor(logAccess(a.logger, config.TLS != nil))}
	if config.TLS != nil {
		options = append(options, grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: config.TLS.Certificates, ClientCAs: config.TLS.RootCAs,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
		})))
	}
	a.logs = grpc.NewServer(options...)
	logServer := w.LogServer()
	// Only the security suite's deliberately broken build serves logs
	// without their tickets.
	logServer.SkipTickets = !identity.Enforced
	daguhav1.RegisterWorkerLogServiceServer(a.logs, logServer)
	go func() { _ = a.logs.Serve(ln) }()
	a.logger.Info("serving step logs", "addr", config.Worker.LogAddr, "listen", ln.Addr().String(), "dir", w.LogDir())
}

// logAccess admits to the log service, under TLS, only callers whose
// certificate carries a server identity (in every real build), and logs
// every refused request with who made it; the reasons name no ticket.
func logAccess(logger *slog.Logger, requireServer bool) grpc.StreamServerInterceptor {
	return func(srv any, stream grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		from := "unknown"
		p, hasPeer := peer.FromContext(stream.Context())
		if hasPeer && p.Addr != nil {
			from = p.Addr.String()
		}
		if requireServer && identity.Enforced {
			caller, err := serverCaller(p, hasPeer)
			if err != nil {
				logger.Warn("step log request refused: the caller is not a server", "method", info.FullMethod, "from", from, "reason", err)
				return status.Errorf(codes.PermissionDenied, "step logs are served to the cluster's servers only: %v", err)
			}
			from = caller + " at " + from
		}
		err := handler(srv, stream)
		if code := status.Code(err); code == codes.PermissionDenied || code == codes.InvalidArgument {
			logger.Warn("step log request refused", "method", info.FullMethod, "from", from, "reason", status.Convert(err).Message())
		}
		return err
	}
}

// serverCaller is the server identity of a TLS caller's verified
// certificate.
func serverCaller(p *peer.Peer, hasPeer bool) (string, error) {
	if !hasPeer {
		return "", errors.New("the call has no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return "", errors.New("the caller presented no verified certificate")
	}
	leaf := info.State.VerifiedChains[0][0]
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		return "", err
	}
	if id.Role != identity.RoleServer {
		return "", fmt.Errorf("certificate %q is %s/%s, not a server", leaf.Subject.CommonName, id.Role, id.Name)
	}
	return string(id.Role) + "/" + id.Name, nil
}

func closeListener(ln net.Listener) {
	if ln != nil {
		ln.Close()
	}
}

func (a *WorkerAgent) shutdownMember() {
	a.mu.Lock()
	member := a.member
	a.mu.Unlock()
	if member != nil {
		if err := member.Shutdown(2 * time.Second); err != nil {
			a.logger.Warn("worker gossip shutdown", "error", err)
		}
	}
}

// Stop stops polling, stops the runs in progress (they are left to be
// reclaimed and run elsewhere), leaves the gossip pool and disconnects.
func (a *WorkerAgent) Stop() {
	a.cancel()
	<-a.done
	<-a.joinDone
	a.shutdownMember()
	a.conn.Close()
	if a.logs != nil {
		a.logs.Stop()
	}
	a.stopMetrics()
}
