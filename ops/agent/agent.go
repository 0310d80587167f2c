// Package agent assembles one daguha server process: the cluster member
// (Raft, gossip, forwarding), its gRPC listener and its HTTP API. The
// command line and the tests both start servers through it, so they run
// the same wiring.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/ops/api"
	"github.com/daguha/daguha/ops/metrics"
	"github.com/daguha/daguha/ops/service"
	"github.com/daguha/daguha/ops/tlsutil"
	"github.com/daguha/daguha/ops/webui"
	"github.com/daguha/daguha/rpc"
	"github.com/daguha/daguha/store"
)

// Config is one server's settings. Cluster.Peers is filled in here.
type Config struct {
	Cluster cluster.Config
	// HTTPBind and GRPCBind are the listen addresses (host only); the
	// ports come from Cluster.HTTPPort and Cluster.GRPCPort (0 = any free
	// port, which is then advertised).
	HTTPBind string
	GRPCBind string
	Logger   *slog.Logger
	// Dispatch configures the leader's dispatcher (lease TTL, signing keys,
	// health thresholds).
	Dispatch dispatch.Config
	// APITokens, when any, are required as Bearer tokens on /api/;
	// APIReadTokens may only read.
	APITokens     []string
	APIReadTokens []string
	// HTTPTLS, when set (cert and key), serves the HTTP API over HTTPS;
	// its CA file, if any, is trusted when forwarding to the leader.
	HTTPTLS tlsutil.Files
	// TLS, when set, makes the gRPC port (workers and servers) and Raft
	// speak TLS with this certificate; with a CA, mutual TLS: every peer,
	// worker or server, must present a certificate the CA signed.
	TLS tlsutil.Files
	// Metrics are served at /metrics on the HTTP port (nil: new ones).
	Metrics *metrics.Metrics
	// DagsDir, when set, is a directory of DAG files this server pushes
	// into the cluster, and pushes again whenever one changes.
	DagsDir string
	// Pprof serves Go's profiler at /debug/pprof/ on the HTTP port,
	// behind a full API token when tokens are set.
	Pprof bool
	// GlanceEvery is how often the cluster is sampled for the Cluster
	// page's charts (0: every 5 s).
	GlanceEvery time.Duration
	// CertifiedLabels are worker label keys whose values come only from
	// a worker's certificate (see rpc.CoordinatorOptions).
	CertifiedLabels []string
	// Dev is dev mode: one process on loopback, no set-up asked for.
	Dev bool
}

// Bounds on the HTTP API's connections, so that a client cannot hold one
// open by sending slowly or not at all: its request's headers must come
// within HTTPReadHeaderTimeout and the whole request, body included,
// within HTTPReadTimeout (a handler may still run longer: blocking
// queries and log streams do); a kept-alive connection is closed after
// HTTPIdleTimeout without a request. A handler that must read a body for
// longer (a large snapshot restore on a slow link) moves its own deadline
// with http.NewResponseController(w).SetReadDeadline.
const (
	HTTPReadHeaderTimeout = 10 * time.Second
	HTTPReadTimeout       = 30 * time.Second
	HTTPIdleTimeout       = 60 * time.Second
	HTTPMaxHeaderBytes    = 64 << 10
)

// Agent is a running server.
type Agent struct {
	logger  *slog.Logger
	cluster *cluster.Server
	peers   *rpc.PeerClient
	grpc    *grpc.Server
	health  *health.Server
	http    *http.Server
	service *service.Service
	httpLn  net.Listener
	grpcLn  net.Listener
	served  chan error

	stopFollowing context.CancelFunc
	following     chan struct{}
	healthDone    chan struct{}
	syncing       chan struct{}
}

// Start opens the listeners, joins the cluster and starts serving. It
// runs the steps of startSteps in order; each step pushes the clean-up of
// what it opened onto one stack, so a step that fails closes everything
// the earlier ones opened, newest first, and Start returns its error.
func Start(config Config) (*Agent, error) {
	if config.Logger == nil {
		config.Logger = slog.Default()
	}
	s := &startup{config: config, a: &Agent{logger: config.Logger, served: make(chan error, 2)}}
	for _, step := range s.steps() {
		if err := step.run(); err != nil {
			s.undo.run()
			return nil, err
		}
	}
	s.serve()
	return s.a, nil
}

// startup is an agent being started: what the steps have built so far.
type startup struct {
	config Config
	a      *Agent
	undo   cleanups

	serverOptions []grpc.ServerOption
	peerOptions   []grpc.DialOption
	// workerTLS verifies the workers' log services (nil without TLS).
	workerTLS   *tls.Config
	heartbeats  *dispatch.Heartbeats
	dispatcher  *dispatch.Dispatcher
	httpsConfig *tls.Config
}

// cleanups is a stack of clean-ups, run newest first.
type cleanups []func()

func (c *cleanups) push(f func()) { *c = append(*c, f) }

func (c cleanups) run() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// startStep is one named step of a start.
type startStep struct {
	name string
	run  func() error
}

// steps are the steps of a start, in order.
func (s *startup) steps() []startStep {
	return []startStep{
		{"listeners", s.listen},
		{"trust", func() error { return checkTrust(s.config) }},
		{"transport security", s.transportSecurity},
		{"cluster", s.joinCluster},
		{"gRPC services", s.registerServices},
		{"HTTP", s.buildHTTP},
	}
}

// listen opens the HTTP and gRPC listeners (port 0: any free port, which
// the cluster then advertises).
func (s *startup) listen() error {
	config := &s.config
	httpLn, err := net.Listen("tcp", net.JoinHostPort(config.HTTPBind, strconv.Itoa(config.Cluster.HTTPPort)))
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	s.undo.push(func() { httpLn.Close() })
	grpcLn, err := net.Listen("tcp", net.JoinHostPort(config.GRPCBind, strconv.Itoa(config.Cluster.GRPCPort)))
	if err != nil {
		return fmt.Errorf("gRPC listener: %w", err)
	}
	s.undo.push(func() { grpcLn.Close() })
	config.Cluster.HTTPPort = httpLn.Addr().(*net.TCPAddr).Port
	config.Cluster.GRPCPort = grpcLn.Addr().(*net.TCPAddr).Port
	s.a.httpLn, s.a.grpcLn = httpLn, grpcLn
	return nil
}

// transportSecurity reads the certificates and sets up how this server
// authenticates servers and workers: TLS roles, or the cluster token.
func (s *startup) transportSecurity() error {
	config := &s.config
	if config.TLS.Enabled() {
		serverTLS, err := tlsutil.ServerConfig(config.TLS)
		if err != nil {
			return fmt.Errorf("coordinator TLS: %w", err)
		}
		// Towards other servers this server is the client, with its own
		// certificate.
		clientTLS, err := tlsutil.ClientConfig(config.TLS)
		if err != nil {
			return fmt.Errorf("coordinator TLS: %w", err)
		}
		// Towards workers' log services, which serve with the workers'
		// client certificates: the chain to the CA, then, per dial, the
		// identity of the worker whose logs are wanted.
		s.workerTLS, err = tlsutil.PeerCAConfig(config.TLS)
		if err != nil {
			return fmt.Errorf("coordinator TLS: %w", err)
		}
		s.serverOptions = append(s.serverOptions, grpc.Creds(credentials.NewTLS(serverTLS)))
		s.peerOptions = append(s.peerOptions, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
		config.Cluster.RaftTLS = &cluster.RaftTLS{Server: serverTLS, Client: clientTLS}
	}
	if config.Metrics == nil {
		config.Metrics = metrics.New()
	}
	config.Cluster.Metrics = config.Metrics
	config.Dispatch.Metrics = config.Metrics
	s.serverOptions = append(s.serverOptions, config.Metrics.GRPCServerOptions()...)
	authorizer := rpc.NewAuthorizer(config.TLS.Enabled(), config.Cluster.ClusterTokens, config.Logger)
	s.serverOptions = append(s.serverOptions, authorizer.ServerOptions()...)
	if len(config.Cluster.ClusterTokens) > 0 {
		s.peerOptions = append(s.peerOptions, rpc.WithClusterToken(config.Cluster.ClusterTokens[0])...)
	}
	if !config.TLS.Enabled() {
		s.peerOptions = append(s.peerOptions, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	return nil
}

// joinCluster starts this server's Raft and gossip, with the heartbeat
// table gossip feeds.
func (s *startup) joinCluster() error {
	config := &s.config
	peers := rpc.NewPeerClient(s.peerOptions...)
	s.undo.push(func() { peers.Close() })
	s.a.peers = peers
	config.Cluster.Peers = peers
	config.Cluster.Logger = config.Logger
	config.Cluster.SigningKeyIDs = nil
	for _, key := range config.Dispatch.SigningKeys {
		config.Cluster.SigningKeyIDs = append(config.Cluster.SigningKeyIDs, dispatch.KeyID(key))
	}
	heartbeats := dispatch.NewHeartbeats(config.Dispatch.Now)
	config.Dispatch.Heartbeats = heartbeats
	s.heartbeats = heartbeats
	// Gossip tells every server when a worker joins or leaves gracefully.
	config.Cluster.OnMemberChange = func(m cluster.Member) {
		if m.Meta.Role != cluster.RoleWorker {
			return
		}
		switch {
		case m.Status == cluster.MemberLeft || m.Meta.Leaving:
			heartbeats.Left(m.Name)
		case m.Status == cluster.MemberAlive:
			heartbeats.Seen(m.Name)
		}
	}
	server, err := cluster.New(config.Cluster)
	if err != nil {
		return err
	}
	s.undo.push(func() { server.Shutdown() })
	s.a.cluster = server
	return nil
}

// registerServices starts dispatch (its duties run while this server
// leads) and registers the gRPC services.
func (s *startup) registerServices() error {
	config := &s.config
	server := s.a.cluster
	config.Dispatch.Logger = config.Logger
	s.dispatcher = dispatch.New(clusterBackend{server}, config.Dispatch)
	for _, duty := range s.dispatcher.LeaderDuties() {
		server.RegisterLeaderDuty(duty.Name, duty.Run)
	}
	// One message limit for workers and servers alike
	// (rpc.ServerMessageLimits); a restore forwarded to the leader comes
	// in 1 MiB chunks.
	s.a.grpc = grpc.NewServer(append(s.serverOptions, rpc.ServerMessageLimits(config.Logger)...)...)
	s.undo.push(s.a.grpc.Stop)
	s.a.health = health.NewServer()
	rpc.RegisterClusterService(s.a.grpc, server, s.heartbeats)
	rpc.RegisterCoordinatorService(s.a.grpc, server, s.dispatcher, s.a.peers, rpc.CoordinatorOptions{CertifiedLabels: config.CertifiedLabels, Logger: config.Logger})
	healthpb.RegisterHealthServer(s.a.grpc, s.a.health)
	config.Metrics.InitializeGRPC(s.a.grpc)
	watchState(config.Metrics, server, s.dispatcher)
	return nil
}

// buildHTTP builds the service, the REST API, the web UI and /metrics on
// the HTTP listener (HTTPS when configured).
func (s *startup) buildHTTP() error {
	config := &s.config
	workerTLS := s.workerTLS
	svc := service.New(s.a.cluster, service.Options{
		Logger: config.Logger, Metrics: config.Metrics,
		Heartbeats: s.heartbeats, Thresholds: s.dispatcher.Thresholds(), LogTickets: s.dispatcher.LogTickets,
		Queues: config.Dispatch.Queues,
		// Workers' log services speak what the gRPC port speaks: TLS with
		// this server's certificate when TLS is on, and then the worker
		// must prove it is the one whose logs are asked for (a worker
		// registering another's address, or its own address for
		// another's runs, is not believed).
		DialWorker: func(addr, workerID string) (*grpc.ClientConn, error) {
			creds := insecure.NewCredentials()
			if workerTLS != nil {
				creds = credentials.NewTLS(tlsutil.ExpectPeer(workerTLS, tlsutil.ExpectIdentity(identity.RoleWorker, workerID, workerTLS.Certificates)))
			}
			return grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		},
	})
	s.undo.push(svc.Close)
	svc.StartGlance(service.GlanceOptions{Every: config.GlanceEvery, Started: config.Metrics.RunsStarted})
	s.a.service = svc
	apiOptions := api.Options{Logger: config.Logger, Tokens: config.APITokens, ReadTokens: config.APIReadTokens}
	if config.HTTPTLS.Enabled() {
		var err error
		// HTTPS verifies callers only through API tokens: no client
		// certificates are asked for on the API.
		s.httpsConfig, err = tlsutil.ServerConfig(tlsutil.Files{CertFile: config.HTTPTLS.CertFile, KeyFile: config.HTTPTLS.KeyFile})
		if err == nil {
			apiOptions.ForwardTLS, err = tlsutil.ClientConfig(tlsutil.Files{CAFile: config.HTTPTLS.CAFile})
		}
		if err != nil {
			return fmt.Errorf("HTTP TLS: %w", err)
		}
	}
	apiServer := api.New(svc, apiOptions)
	routes := http.NewServeMux()
	routes.Handle("GET /metrics", config.Metrics.Handler())
	routes.Handle("/api/", apiServer)
	routes.Handle("/", webui.Handler())
	if config.Pprof {
		routes.Handle("/debug/pprof/", api.RequireWriteToken(config.APITokens, config.APIReadTokens, pprofHandler()))
		s.a.logger.Info("profiler served at /debug/pprof/")
	}
	s.a.http = &http.Server{
		Handler:           config.Metrics.InstrumentHTTP(routes),
		ReadHeaderTimeout: HTTPReadHeaderTimeout,
		ReadTimeout:       HTTPReadTimeout,
		IdleTimeout:       HTTPIdleTimeout,
		MaxHeaderBytes:    HTTPMaxHeaderBytes,
		TLSConfig:         s.httpsConfig,
	}
	if len(config.APITokens) == 0 && len(config.APIReadTokens) == 0 {
		s.a.logger.Warn("no API token configured: the HTTP API is open to anyone who can reach it")
	}
	return nil
}

// serve starts what runs for the agent's life: the leader-health watch,
// heartbeat sharing, the DAG directory sync and the two servers. From
// here on, Shutdown stops them in order.
func (s *startup) serve() {
	config, a := s.config, s.a
	followCtx, stopFollowing := context.WithCancel(context.Background())
	a.stopFollowing = stopFollowing
	a.following = make(chan struct{})
	a.healthDone = make(chan struct{})
	go func() {
		defer close(a.healthDone)
		a.watchLeaderHealth(followCtx)
	}()
	go func() {
		defer close(a.following)
		rpc.ShareHeartbeats(followCtx, a.cluster, a.peers, s.heartbeats, time.Second, config.Logger)
	}()
	a.syncing = make(chan struct{})
	go func() {
		defer close(a.syncing)
		if config.DagsDir != "" {
			statePath := ""
			if config.Cluster.DataDir != "" && !config.Cluster.InMemory {
				statePath = filepath.Join(config.Cluster.DataDir, DagsDirStateFile)
			}
			syncDags(followCtx, config.DagsDir, statePath, a.service, config.Logger)
		}
	}()
	go func() { a.served <- a.grpc.Serve(a.grpcLn) }()
	go func() {
		var err error
		if s.httpsConfig != nil {
			err = a.http.ServeTLS(a.httpLn, "", "")
		} else {
			err = a.http.Serve(a.httpLn)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		a.served <- err
	}()
	a.logger.Info("agent started", "node", config.Cluster.NodeName,
		"http", a.httpLn.Addr().String(), "grpc", a.grpcLn.Addr().String(),
		"raft_port", config.Cluster.RaftPort, "gossip_port", config.Cluster.GossipPort)
}

// clusterBackend gives the dispatcher writes through Raft and the state.
type clusterBackend struct{ *cluster.Server }

func (b clusterBackend) State() *store.StateStore { return b.FSM().State() }

// Fatal receives an error when the server must stop.
func (a *Agent) Fatal() <-chan error { return a.cluster.Fatal() }

// Cluster returns the cluster member.
func (a *Agent) Cluster() *cluster.Server { return a.cluster }

// HTTPAddr and GRPCAddr are the addresses actually listened on.
func (a *Agent) HTTPAddr() string { return a.httpLn.Addr().String() }
func (a *Agent) GRPCAddr() string { return a.grpcLn.Addr().String() }

// Leave is the graceful part of a stop: leadership is handed over and the
// server leaves the gossip pool. Call Shutdown after it.
func (a *Agent) Leave(timeout time.Duration) error {
	a.health.Shutdown()
	return a.cluster.Leave(timeout)
}

// Shutdown stops serving and stops the cluster member, waiting for every
// goroutine it started.
func (a *Agent) Shutdown(ctx context.Context) error {
	var errs []error
	a.health.Shutdown()
	a.stopFollowing()
	<-a.following
	<-a.healthDone
	<-a.syncing
	if err := a.http.Shutdown(ctx); err != nil {
		a.http.Close()
	}
	a.service.Close()
	stopped := make(chan struct{})
	go func() {
		a.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		a.grpc.Stop()
		<-stopped
	}
	if err := a.cluster.Shutdown(); err != nil {
		errs = append(errs, err)
	}
	a.peers.Close()
	for range 2 {
		if err := <-a.served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
