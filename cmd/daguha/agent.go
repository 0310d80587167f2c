package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/dispatch/valid"
	"github.com/daguha/daguha/dispatch/worker"
	"github.com/daguha/daguha/ops/agent"
	"github.com/daguha/daguha/ops/tlsutil"
)

// leaveTimeout bounds the graceful part of a stop.
const leaveTimeout = 5 * time.Second

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:   "agent",
		Usage:  "run a daguha server (-server), or everything in one process (-dev)",
		Flags:  agentFlags(),
		Action: runAgent,
	}
}

// seedServerFlags are Dagu's names for the server's addresses.
func seedServerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "host", Value: "127.0.0.1", EnvVars: []string{"DAGU_HOST"}, Usage: "address the HTTP API (and web UI) listens on"},
		&cli.IntFlag{Name: "port", Value: cluster.DefaultHTTPPort, EnvVars: []string{"DAGU_PORT"}, Usage: "HTTP port"},
		&cli.StringFlag{Name: "coordinator.host", Value: "0.0.0.0", EnvVars: []string{"DAGU_COORDINATOR_HOST"}, Usage: "address the coordinator's gRPC port listens on"},
		&cli.IntFlag{Name: "coordinator.port", Value: cluster.DefaultGRPCPort, EnvVars: []string{"DAGU_COORDINATOR_PORT"}, Usage: "coordinator gRPC port"},
	}
}

// seedServerCommand is Dagu's start-all or coordinator: a server that
// bootstraps itself when alone, or joins with the cluster flags.
func seedServerCommand(name, usage string) *cli.Command {
	var flags []cli.Flag
	for _, f := range agentFlags() {
		if mailFlag(f.Names()[0]) {
			continue // servers send no mail
		}
		switch f.Names()[0] {
		case "dev", "server", "http-port", "grpc-port", "labels", "no-auto-labels", "max-active-runs", "worker-id", "heartbeat-interval", "metrics-addr",
			"worker.insecure", "worker.tls-cert", "worker.tls-key", "worker.tls-ca":
			continue
		}
		flags = append(flags, f)
	}
	return &cli.Command{Name: name, Usage: usage, Flags: append(seedServerFlags(), flags...), Action: runAgent}
}

func agentFlags() []cli.Flag {
	return append([]cli.Flag{
		configFlag(),
		&cli.BoolFlag{Name: "dev", Usage: "single-node server with data in a temporary directory; no set-up"},
		&cli.BoolFlag{Name: "server", Usage: "run as a server: a Raft voter that coordinates workers"},
		&cli.IntFlag{Name: "bootstrap-expect", Usage: "number of servers to wait for before forming the cluster"},
		&cli.StringFlag{Name: "node", Usage: "node name, unique in the cluster (default: hostname)"},
		&cli.StringFlag{Name: "data-dir", Usage: "directory for Raft state (dev mode: a temporary one, removed at exit)"},
		&cli.StringFlag{Name: "queues", EnvVars: []string{"DAGUHA_QUEUES"}, Usage: "Dagu's queues: how many runs of each named queue may run at once across the cluster, NAME=N,NAME=N (servers; give every server the same); config file: queues.config as in Dagu"},
		&cli.BoolFlag{Name: "queues-enabled", Value: true, Usage: "Dagu's queues.enabled; daguha always dispatches queued runs, so only true is accepted"},
		&cli.StringFlag{Name: "tz", Usage: "IANA time zone (such as Europe/Berlin) of the DAG schedules that name none with CRON_TZ= (servers; give every server the same); default: the server's local zone"},
		&cli.StringFlag{Name: "dags", Usage: "directory of DAG files (servers): pushed into the cluster at start and again whenever a file changes"},
		&cli.StringFlag{Name: "bind", Value: "0.0.0.0", Usage: "address to listen on (HTTP, gRPC, Raft, gossip)"},
		&cli.StringFlag{Name: "advertise", Usage: "address other nodes reach this one at (default: bind address, or a private address when binding to all)"},
		&cli.IntFlag{Name: "http-port", Value: cluster.DefaultHTTPPort, Usage: "HTTP API port"},
		&cli.IntFlag{Name: "grpc-port", Value: cluster.DefaultGRPCPort, Usage: "gRPC port (workers and servers)"},
		&cli.IntFlag{Name: "raft-port", Value: cluster.DefaultRaftPort, Usage: "Raft port"},
		&cli.IntFlag{Name: "gossip-port", Value: cluster.DefaultGossipPort, Usage: "gossip port (TCP and UDP)"},
		&cli.StringSliceFlag{Name: "join", Usage: "gossip seeds host:port, comma separated; retried until one answers"},
		&cli.DurationFlag{Name: "forward-hold", Value: cluster.DefaultForwardHold, Usage: "how long a request waits for a leader to be elected"},
		&cli.DurationFlag{Name: "raft-timeout", Value: time.Second, Usage: "Raft heartbeat and election timeout (the leader lease is half): a leader's death is noticed after 1-2x this; 300-500ms fails over sooner on a quiet LAN, 1s rides out a loaded host's stalls"},
		&cli.BoolFlag{Name: "pprof", Usage: "serve Go's profiler at /debug/pprof/ on the HTTP port (needs a full API token when tokens are set)"},
		&cli.DurationFlag{Name: "dead-server-timeout", Value: 2 * time.Minute, Usage: "how long a server must be failed before the leader removes it, once a healthy replacement has joined"},
		&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"DAGUHA_LOG_LEVEL"}, Usage: "debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: []string{"DAGUHA_LOG_FORMAT"}, Usage: "text or json"},
		&cli.StringSliceFlag{Name: "coordinator.signing-key", EnvVars: []string{"DAGU_COORDINATOR_SIGNING_KEY"}, Usage: "key that signs lease tokens (default: one the cluster makes up and keeps in its state); several, comma-separated, for rotation: the first signs, all verify"},
		&cli.DurationFlag{Name: "lease-ttl", Value: dispatch.DefaultLeaseTTL, Usage: "how long a worker's lease on a run lives without a heartbeat"},
		&cli.StringFlag{Name: "labels", Usage: "worker labels k=v,k=v (worker agents); they win over fingerprinted ones"},
		&cli.BoolFlag{Name: "no-auto-labels", EnvVars: []string{"DAGU_WORKER_NO_AUTO_LABELS"}, Usage: "worker agents: do not add fingerprinted labels (os, cpu-arch, cpu-cores, memory; gpu, gpu-count, gpu-model, vram, cuda where nvidia-smi answers)"},
		&cli.IntFlag{Name: "max-active-runs", Value: defaultMaxActiveRuns, Usage: "runs a worker executes at once (worker agents; dev mode's worker)"},
		&cli.StringFlag{Name: "worker-id", Usage: "worker id (default hostname@PID)"},
		&cli.DurationFlag{Name: "heartbeat-interval", Value: time.Second, Usage: "how often a worker heartbeats"},
		&cli.StringFlag{Name: "metrics-addr", Usage: "serve a worker agent's Prometheus /metrics on this host:port (servers serve theirs on the HTTP port)"},
		&cli.BoolFlag{Name: "noop-executor", Usage: "worker agents: complete every command or script step at once without starting a process, keeping no logs (to benchmark the coordinator alone)"},
		&cli.StringFlag{Name: "step-log-dir", Usage: "where a worker keeps the full logs of its steps (default: a new temporary directory)"},
		&cli.DurationFlag{Name: "step-log-retention", Value: worker.DefaultStepLogRetention, Usage: "how long a worker keeps a run's full step logs after they were last written; 0 keeps them forever"},
		&cli.IntFlag{Name: "step-log-port", Usage: "port a worker agent serves its step logs to the servers on, at -bind when given (0.0.0.0: every interface), else at the address it reaches the servers from (0: any free port; -1: none)"},
		&cli.StringSliceFlag{Name: "cluster-token", EnvVars: []string{"DAGUHA_CLUSTER_TOKEN"}, Usage: "servers only (workers never get it): the secret servers prove themselves to each other with on the gRPC and Raft ports when there is no TLS; several, comma-separated, for rotation: the first is sent, all are accepted"},
		&cli.StringSliceFlag{Name: "certified-labels", EnvVars: []string{"DAGUHA_CERTIFIED_LABELS"}, Usage: "servers: worker label keys whose values come only from a worker's certificate (daguha tls cert create -client -label k=v); a worker claiming one otherwise is refused"},
		&cli.StringSliceFlag{Name: "api-token", EnvVars: []string{"DAGUHA_API_TOKEN"}, Usage: "require this Bearer token on the HTTP API (repeat or comma-separate for several)"},
		&cli.StringSliceFlag{Name: "api-read-token", EnvVars: []string{"DAGUHA_API_READ_TOKEN"}, Usage: "a Bearer token that may read the API but not change anything"},
		&cli.DurationFlag{Name: "health-warning", Value: dispatch.DefaultThresholds.Warning, Usage: "heartbeat age from which a worker is WARNING"},
		&cli.DurationFlag{Name: "health-unhealthy", Value: dispatch.DefaultThresholds.Unhealthy, Usage: "heartbeat age past which a worker is UNHEALTHY"},
		&cli.DurationFlag{Name: "health-offline", Value: dispatch.DefaultThresholds.Offline, Usage: "heartbeat age past which a worker is OFFLINE and its runs are taken back"},
		&cli.DurationFlag{Name: "glance-every", Value: 5 * time.Second, Usage: "servers: how often the Cluster page's charts are sampled (the last 360 samples are kept)"},
		&cli.DurationFlag{Name: "worker-retention", Value: dispatch.DefaultRetention, Usage: "how long an offline worker stays listed"},
		&cli.DurationFlag{Name: "run-retention", Value: dispatch.DefaultRunRetention, Usage: "how long an ended run stays in the cluster's state (with its child runs) before the leader removes it; 0 keeps every run forever"},
	}, append(append(coordinatorTLSFlags(), workerTLSFlags()...), mailFlags()...)...)
}

// newLogger is the one logger of the process (raft and memberlist write
// through it too), in the format and at the level asked for.
func newLogger(c *cli.Context) (*slog.Logger, error) {
	level, err := parseLogLevel(c.String("log-level"))
	if err != nil {
		return nil, err
	}
	options := &slog.HandlerOptions{Level: level}
	switch c.String("log-format") {
	case "text", "":
		return slog.New(slog.NewTextHandler(os.Stderr, options)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, options)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", c.String("log-format"))
}

func parseLogLevel(name string) (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(name)); err != nil {
		return 0, fmt.Errorf("-log-level %q: want debug, info, warn or error", name)
	}
	return level, nil
}

func runAgent(c *cli.Context) error {
	logger, err := newLogger(c)
	if err != nil {
		return err
	}
	setMemoryLimit(logger)
	if err := loadSettings(c, logger.Warn); err != nil {
		return err
	}
	dev := c.Bool("dev")
	seed := c.Command.Name != "agent" // start-all or coordinator
	if !dev && !seed && !c.Bool("server") {
		return runWorkerAgent(c, logger)
	}

	nodeName := c.String("node")
	if nodeName == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("no -node given and the hostname is unknown: %w", err)
		}
		nodeName = host
		if err := valid.NodeName(nodeName); err != nil {
			return fmt.Errorf("no -node given, and the hostname cannot be a node name: %w; set -node", err)
		}
	}
	bind := c.String("bind")
	dataDir := c.String("data-dir")
	config := cluster.Config{
		NodeName:          nodeName,
		DataDir:           dataDir,
		BindAddr:          bind,
		AdvertiseAddr:     c.String("advertise"),
		RaftPort:          c.Int("raft-port"),
		GossipPort:        c.Int("gossip-port"),
		GRPCPort:          c.Int("grpc-port"),
		HTTPPort:          c.Int("http-port"),
		BootstrapExpect:   c.Int("bootstrap-expect"),
		Join:              splitList(c.StringSlice("join")),
		ForwardHold:       c.Duration("forward-hold"),
		DeadServerTimeout: c.Duration("dead-server-timeout"),
		RaftTimeout:       c.Duration("raft-timeout"),
	}
	if t := config.RaftTimeout; t < 50*time.Millisecond || t > time.Minute {
		return fmt.Errorf("-raft-timeout %s: must be between 50ms and 1m", t)
	}
	keys, err := gossipKeys(c)
	if err != nil {
		return err
	}
	config.GossipKeys = keys
	if config.ClusterTokens, err = clusterTokens(c.StringSlice("cluster-token")); err != nil {
		return err
	}
	certified := splitList(c.StringSlice("certified-labels"))
	for _, key := range certified {
		if strings.Contains(key, "=") {
			return fmt.Errorf("-certified-labels %q: want label keys, not k=v", key)
		}
	}
	httpBind, grpcBind := config.BindAddr, config.BindAddr
	if seed {
		httpBind, grpcBind = c.String("host"), c.String("coordinator.host")
		config.HTTPPort, config.GRPCPort = c.Int("port"), c.Int("coordinator.port")
		// Alone (no seeds, no count to wait for), the server is its own
		// cluster, as Dagu's single coordinator is.
		config.Bootstrap = len(config.Join) == 0 && config.BootstrapExpect == 0
		if config.DataDir == "" {
			dir, err := defaultDataDir()
			if err != nil {
				return err
			}
			config.DataDir = dir
		}
	}
	if dev {
		if !c.IsSet("bind") {
			config.BindAddr = "127.0.0.1"
		}
		config.Bootstrap = true
		config.BootstrapExpect = 0
		config.GossipTimings = cluster.GossipLocal
		if dataDir == "" {
			tmp, err := os.MkdirTemp("", "daguha-dev-")
			if err != nil {
				return fmt.Errorf("dev mode data directory: %w", err)
			}
			config.DataDir = tmp
			defer os.RemoveAll(tmp)
			logger.Info("dev mode: data in a temporary directory, removed at exit", "dir", tmp)
		}
	} else if config.DataDir == "" {
		return errors.New("-data-dir is required for a server (Raft state must survive restarts)")
	}

	if c.Duration("run-retention") < 0 {
		return fmt.Errorf("-run-retention=%s: want a duration of zero (keep every run) or more", c.Duration("run-retention"))
	}
	zone, err := scheduleZone(c.String("tz"))
	if err != nil {
		return err
	}
	config.ScheduleZone = zoneLabel(zone, time.Now())
	queues, err := parseQueues(c.String("queues"))
	if err != nil {
		return err
	}
	if !c.Bool("queues-enabled") {
		return errors.New("queues.enabled is false: Dagu's switch for its queue processor; daguha always dispatches queued runs (a queue's limit is set with queues.config or -queues NAME=N), so remove it or set it true")
	}
	dispatchConfig := dispatch.Config{
		Queues:       queues,
		ScheduleZone: zone,
		LeaseTTL:     c.Duration("lease-ttl"),
		Retention:    c.Duration("worker-retention"),
		RunRetention: c.Duration("run-retention"),
		Thresholds: dispatch.Thresholds{
			Warning: c.Duration("health-warning"), Unhealthy: c.Duration("health-unhealthy"), Offline: c.Duration("health-offline"),
		},
	}
	if err := dispatchConfig.Thresholds.Validate(); err != nil {
		return fmt.Errorf("-health-warning/-health-unhealthy/-health-offline: %w", err)
	}
	if dispatchConfig.SigningKeys, err = signingKeys(c.StringSlice("coordinator.signing-key")); err != nil {
		return err
	}
	var (
		workerTLSConfig *tls.Config
		devWorkerID     string
	)
	if dev {
		httpBind, grpcBind = config.BindAddr, config.BindAddr
		// Its worker's certificate is checked before the server starts.
		if workerTLSConfig, devWorkerID, err = devWorkerTLS(c); err != nil {
			return err
		}
	}
	a, err := agent.Start(agent.Config{
		Cluster: config, HTTPBind: httpBind, GRPCBind: grpcBind, Logger: logger,
		Dispatch: dispatchConfig, APITokens: splitList(c.StringSlice("api-token")),
		APIReadTokens: splitList(c.StringSlice("api-read-token")), TLS: coordinatorTLS(c), HTTPTLS: httpTLS(c),
		DagsDir: c.String("dags"), Pprof: c.Bool("pprof"), GlanceEvery: c.Duration("glance-every"), CertifiedLabels: certified, Dev: dev,
	})
	if err != nil {
		return err
	}
	var devWorker *agent.WorkerAgent
	if dev {
		workerConfig, err := worker.Settings(devWorkerID, c.String("labels"), c.Int("max-active-runs"))
		if err != nil {
			return err
		}
		workerConfig.HeartbeatInterval = c.Duration("heartbeat-interval")
		workerConfig.Mail = mailSettings(c)
		// Dev mode's worker finds its machine as any worker does, so the
		// seed's gpu: "true" pipeline runs on a GPU laptop as it is.
		addAutoLabels(c.Bool("no-auto-labels"), &workerConfig, logger)
		workerConfig.LogDir = c.String("step-log-dir")
		if workerConfig.LogRetention, err = stepLogRetention(c, "step-log-retention"); err != nil {
			return err
		}
		devWorker, err = agent.StartWorker(agent.WorkerConfig{Worker: workerConfig, Servers: []string{a.GRPCAddr()}, Logger: logger, TLS: workerTLSConfig,
			MetricsAddr: c.String("metrics-addr"), LogBind: stepLogBind(config.BindAddr, c.Int("step-log-port"))})
		if err != nil {
			return err
		}
	}
	fatal := waitForSignalOr(logger, a.Fatal())
	if devWorker != nil {
		devWorker.Stop()
	}
	if fatal != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
		return fatal
	}
	return stopServer(a, logger)
}

// defaultDataDir is where start-all and coordinator keep their state
// without -data-dir: $DAGU_HOME/data, else ~/.local/share/daguha.
func defaultDataDir() (string, error) {
	if home := os.Getenv("DAGU_HOME"); home != "" {
		return filepath.Join(home, "data"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no -data-dir, no DAGU_HOME and no home directory: %w", err)
	}
	return filepath.Join(home, ".local", "share", "daguha"), nil
}

// devWorkerTLS is dev mode's own worker's TLS and id: when the server
// speaks TLS, the worker needs a worker certificate of its own
// (--worker.tls-cert and --worker.tls-key; the CA defaults to the
// server's), since a server's certificate may not act as a worker.
func devWorkerTLS(c *cli.Context) (*tls.Config, string, error) {
	server := coordinatorTLS(c)
	if !server.Enabled() {
		return nil, c.String("worker-id"), nil
	}
	files := tlsutil.Files{CertFile: c.String("worker.tls-cert"), KeyFile: c.String("worker.tls-key"), CAFile: c.String("worker.tls-ca")}
	if files.CertFile == "" {
		return nil, "", errors.New("dev mode with TLS: its worker needs a worker certificate (a server's may not act as a worker): " +
			"make one with `daguha tls cert create -client -worker-id ID` and give --worker.tls-cert and --worker.tls-key")
	}
	if files.CAFile == "" {
		files.CAFile = server.CAFile
	}
	id, err := workerIDFromCertificate(c.String("worker-id"), files.CertFile)
	if err != nil {
		return nil, "", err
	}
	config, err := tlsutil.ClientConfig(files)
	return config, id, err
}

// waitForSignal returns at SIGINT or SIGTERM, for a graceful stop; a
// second signal exits at once.
func waitForSignal(logger *slog.Logger) { waitForSignalOr(logger, nil) }

// waitForSignalOr is waitForSignal that also returns the first error
// from fatal (the server found it must not go on).
func waitForSignalOr(logger *slog.Logger, fatal <-chan error) error {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	var sig os.Signal
	select {
	case sig = <-signals:
	case err := <-fatal:
		return err
	}
	logger.Info("stopping gracefully; signal again to exit at once", "signal", sig.String())
	go func() {
		sig := <-signals
		logger.Warn("second signal: exiting now", "signal", sig.String())
		os.Exit(1)
	}()
	return nil
}

// stopServer stops a server gracefully: a leader hands leadership over,
// the node leaves the gossip pool and Raft closes cleanly.
func stopServer(a *agent.Agent, logger *slog.Logger) error {
	if err := a.Leave(leaveTimeout); err != nil {
		logger.Warn("leave", "error", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// splitList accepts both repeated flags and comma-separated values.
func splitList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// scheduleZone is the -tz setting: nil for none or Local (the server's
// own zone), else the IANA zone it names.
func scheduleZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, nil
	}
	zone, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("-tz=%s: not an IANA time zone such as Europe/Berlin or UTC", name)
	}
	return zone, nil
}

// zoneLabel is how servers compare their schedule zones: the IANA name
// set with -tz, else the local zone as its abbreviation and UTC offset
// now (UTC for a local zone that is UTC, as in most containers).
func zoneLabel(zone *time.Location, now time.Time) string {
	if zone != nil {
		return zone.String()
	}
	name, offset := now.Zone()
	if offset == 0 && (name == "UTC" || name == "GMT" || name == "") {
		return "UTC"
	}
	return fmt.Sprintf("local %s%+03d:%02d", name, offset/3600, abs(offset%3600)/60)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
