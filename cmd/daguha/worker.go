package main

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/dispatch/valid"
	"github.com/daguha/daguha/dispatch/worker"
	"github.com/daguha/daguha/ops/agent"
	"github.com/daguha/daguha/ops/tlsutil"
)

// defaultMaxActiveRuns is the seed's example value for worker.maxActiveRuns.
const defaultMaxActiveRuns = 10

// workerIDFromCertificate is the worker id a worker runs with when it has
// a certificate (certFile): the certificate's worker name, which is the
// only id the servers let it act as. A given id must be that name; a
// certificate without a worker identity is refused here, as the servers
// would refuse it, with the way to reissue it.
func workerIDFromCertificate(id, certFile string) (string, error) {
	if certFile == "" || !identity.Enforced {
		return id, nil
	}
	cert, err := tlsutil.Identity(certFile)
	if err != nil {
		return "", fmt.Errorf("worker TLS: %w", err)
	}
	if cert.Role != identity.RoleWorker {
		return "", fmt.Errorf("worker TLS: certificate %s is for %s, not a worker; make a worker certificate with `daguha tls cert create -client -worker-id ID`", certFile, cert)
	}
	if id != "" && id != cert.Name {
		return "", fmt.Errorf("worker id %q, but certificate %s proves worker %q: the servers let a worker act only as the worker its certificate names; drop the id or make them agree", id, certFile, cert.Name)
	}
	return cert.Name, nil
}

// addAutoLabels adds the labels the worker fingerprints about its
// machine (worker.Fingerprint) to config's, under the ones given by hand,
// and looks again every worker.DefaultLabelRefreshInterval, unless off; it
// logs which it added, so an operator sees where a label came from.
func addAutoLabels(off bool, config *worker.Config, logger *slog.Logger) {
	if off {
		logger.Info("fingerprinted labels are off")
		return
	}
	probe := worker.HostProbe()
	config.RefreshLabels = worker.RefreshWith(config.Labels, probe)
	added, err := worker.AddFingerprint(config, worker.Fingerprint(probe))
	if err != nil {
		logger.Warn(err.Error())
		return
	}
	config.AutoLabels = added
	auto := make(map[string]string, len(added))
	for _, k := range added {
		auto[k] = config.Labels[k]
	}
	logger.Info("fingerprinted labels", "labels", valid.FormatLabels(auto))
}

// stepLogRetention is a worker's step log retention flag, checked.
func stepLogRetention(c *cli.Context, flag string) (time.Duration, error) {
	retention := c.Duration(flag)
	if retention < 0 {
		return 0, fmt.Errorf("-%s=%s: want a duration of zero (keep every log) or more", flag, retention)
	}
	return retention, nil
}

// stepLogBind is the step log service's address for a worker bound to
// host (empty: the address it reaches the servers from): port 0 picks a
// free port, a negative one turns the service off.
func stepLogBind(host string, port int) string {
	if port < 0 {
		return "off"
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// givenBind is -bind when it was given (flag, environment or config
// file), else empty.
func givenBind(c *cli.Context) string {
	if c.IsSet("bind") {
		return c.String("bind")
	}
	return ""
}

// runWorkerAgent is `daguha agent -join=...`: a worker that finds the
// servers through the gossip pool.
func runWorkerAgent(c *cli.Context, logger *slog.Logger) error {
	join := splitList(c.StringSlice("join"))
	if len(join) == 0 {
		return fmt.Errorf("agent needs -server (a coordinator server), -dev (everything in one process), or -join=HOST:GOSSIPPORT (a worker)")
	}
	id, err := workerIDFromCertificate(c.String("worker-id"), c.String("worker.tls-cert"))
	if err != nil {
		return err
	}
	config, err := worker.Settings(id, c.String("labels"), c.Int("max-active-runs"))
	if err != nil {
		return err
	}
	addAutoLabels(c.Bool("no-auto-labels"), &config, logger)
	config.HeartbeatInterval = c.Duration("heartbeat-interval")
	config.Mail = mailSettings(c)
	config.LogDir = c.String("step-log-dir")
	if config.LogRetention, err = stepLogRetention(c, "step-log-retention"); err != nil {
		return err
	}
	config.NoopExecutor = c.Bool("noop-executor")
	bind := c.String("bind")
	tlsConfig, err := workerTLS(c)
	if err != nil {
		return err
	}
	keys, err := gossipKeys(c)
	if err != nil {
		return err
	}
	w, err := agent.StartWorker(agent.WorkerConfig{
		Worker: config, TLS: tlsConfig, GossipKeys: keys,
		Gossip: &cluster.WorkerMemberConfig{
			NodeName: config.ID, BindAddr: bind, AdvertiseAddr: c.String("advertise"),
			GossipPort: c.Int("gossip-port"), Join: join, Labels: config.Labels,
		},
		Logger: logger,
		// The log service listens where -bind says when it is given (every
		// interface only when it says 0.0.0.0), else at the address the
		// servers see this worker's calls come from: never on every
		// interface by default.
		LogBind:     stepLogBind(givenBind(c), c.Int("step-log-port")),
		MetricsAddr: c.String("metrics-addr"),
	})
	if err != nil {
		return err
	}
	waitForSignal(logger)
	w.Stop()
	logger.Info("stopped")
	return nil
}

// workerCommand is Dagu's `worker` command, with the seed's flags and
// environment variables.
func workerCommand() *cli.Command {
	return &cli.Command{
		Name:  "worker",
		Usage: "run a worker that polls a coordinator for DAG runs (Dagu's command line)",
		Flags: append([]cli.Flag{
			configFlag(),
			&cli.StringFlag{Name: "worker.id", EnvVars: []string{"DAGU_WORKER_ID"}, Usage: "worker id (default hostname@PID)"},
			&cli.StringFlag{Name: "worker.labels", EnvVars: []string{"DAGU_WORKER_LABELS"}, Usage: "labels k=v,k=v that workerSelector matches; they win over fingerprinted ones"},
			&cli.BoolFlag{Name: "worker.no-auto-labels", EnvVars: []string{"DAGU_WORKER_NO_AUTO_LABELS"}, Usage: "do not add fingerprinted labels (os, cpu-arch, cpu-cores, memory; gpu, gpu-count, gpu-model, vram, cuda where nvidia-smi answers)"},
			&cli.StringFlag{Name: "worker.coordinator-host", Value: "127.0.0.1", EnvVars: []string{"DAGU_WORKER_COORDINATOR_HOST"}, Usage: "a coordinator server's host"},
			&cli.IntFlag{Name: "worker.coordinator-port", Value: cluster.DefaultGRPCPort, EnvVars: []string{"DAGU_WORKER_COORDINATOR_PORT"}, Usage: "the coordinator's gRPC port"},
			&cli.IntFlag{Name: "worker.max-active-runs", Value: defaultMaxActiveRuns, EnvVars: []string{"DAGU_WORKER_MAX_ACTIVE_RUNS"}, Usage: "runs executed at once"},
			&cli.DurationFlag{Name: "worker.heartbeat-interval", Value: time.Second, EnvVars: []string{"DAGU_WORKER_HEARTBEAT_INTERVAL"}, Usage: "how often the worker heartbeats"},
			&cli.IntFlag{Name: "worker.gossip-port", EnvVars: []string{"DAGU_WORKER_GOSSIP_PORT"}, Usage: "gossip port (default: any free port)"},
			&cli.StringFlag{Name: "worker.step-log-dir", Usage: "where the worker keeps the full logs of its steps (default: a new temporary directory)"},
			&cli.DurationFlag{Name: "worker.step-log-retention", Value: worker.DefaultStepLogRetention, Usage: "how long the worker keeps a run's full step logs after they were last written; 0 keeps them forever"},
			&cli.StringFlag{Name: "worker.step-log-addr", Usage: "host:port the worker serves its step logs to the servers on (default: the address it reaches the coordinator from, any free port; an empty host: that address; 0.0.0.0: every interface; port 0: any free one; \"off\": none)"},
			&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"DAGUHA_LOG_LEVEL"}, Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: []string{"DAGUHA_LOG_FORMAT"}, Usage: "text or json"},
			&cli.StringSliceFlag{Name: "encrypt", EnvVars: []string{"DAGU_CLUSTER_ENCRYPT"}, Usage: "gossip encryption key(s), as on the servers"},
			&cli.StringFlag{Name: "worker.metrics-addr", Usage: "serve the worker's Prometheus /metrics on this host:port (default: not served)"},
		}, append(workerTLSFlags(), mailFlags()...)...),
		Action: func(c *cli.Context) error {
			logger, err := newLogger(c)
			if err != nil {
				return err
			}
			setMemoryLimit(logger)
			if err := loadSettings(c, logger.Warn); err != nil {
				return err
			}
			id, err := workerIDFromCertificate(c.String("worker.id"), c.String("worker.tls-cert"))
			if err != nil {
				return err
			}
			config, err := worker.Settings(id, c.String("worker.labels"), c.Int("worker.max-active-runs"))
			if err != nil {
				return err
			}
			addAutoLabels(c.Bool("worker.no-auto-labels"), &config, logger)
			config.HeartbeatInterval = c.Duration("worker.heartbeat-interval")
			config.Mail = mailSettings(c)
			config.LogDir = c.String("worker.step-log-dir")
			if config.LogRetention, err = stepLogRetention(c, "worker.step-log-retention"); err != nil {
				return err
			}
			addr := net.JoinHostPort(c.String("worker.coordinator-host"), strconv.Itoa(c.Int("worker.coordinator-port")))
			tlsConfig, err := workerTLS(c)
			if err != nil {
				return err
			}
			keys, err := gossipKeys(c)
			if err != nil {
				return err
			}
			w, err := agent.StartWorker(agent.WorkerConfig{
				Worker: config, Servers: []string{addr}, Logger: logger, TLS: tlsConfig, GossipKeys: keys,
				// Find the gossip pool from the coordinator, so every
				// server sees this worker join, fail and leave.
				DiscoverGossip: true, GossipPort: c.Int("worker.gossip-port"),
				LogBind:     c.String("worker.step-log-addr"),
				MetricsAddr: c.String("worker.metrics-addr"),
			})
			if err != nil {
				return err
			}
			waitForSignal(logger)
			w.Stop()
			logger.Info("stopped")
			return nil
		},
	}
}
