package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/dispatch/worker"
)

// resolve runs a command with flags, applies config.yaml and returns the
// effective value of each named flag, or the error.
func resolve(t *testing.T, flags []cli.Flag, args []string, names ...string) (map[string]string, error) {
	t.Helper()
	got := map[string]string{}
	probe := &cli.Command{Name: "probe", Flags: flags, Action: func(c *cli.Context) error {
		// Only the file is applied: the seed's example paths do not exist,
		// and checking them is TestBadConfigurationIsNamed's business.
		if _, _, err := applyConfig(c); err != nil {
			return err
		}
		for _, name := range names {
			switch v := c.Value(name).(type) {
			case cli.StringSlice:
				got[name] = "[" + strings.Join(v.Value(), ",") + "]"
			case *cli.StringSlice:
				got[name] = "[" + strings.Join(v.Value(), ",") + "]"
			default:
				got[name] = fmt.Sprint(v)
			}
		}
		return nil
	}}
	app := &cli.App{Name: "daguha", Commands: []*cli.Command{probe}, ExitErrHandler: func(*cli.Context, error) {}}
	app.Writer, app.ErrWriter = &strings.Builder{}, &strings.Builder{}
	err := app.Run(append([]string{"daguha", "probe"}, args...))
	return got, err
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Every seed key, at each layer: default, then config.yaml over the
// default, the environment over the file, the flag over the environment.
func TestConfigPrecedence(t *testing.T) {
	server := seedServerCommand("start-all", "").Flags
	worker := workerCommand().Flags
	cases := []struct {
		key, flag, env    string
		flags             []cli.Flag
		yaml              string
		def, file, envVal string
		flagVal           string
	}{
		{"coordinator.host", "coordinator.host", "DAGU_COORDINATOR_HOST", server, "coordinator:\n  host: 10.0.0.1\n", "0.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3"},
		{"coordinator.port", "coordinator.port", "DAGU_COORDINATOR_PORT", server, "coordinator:\n  port: 50001\n", "50055", "50001", "50002", "50003"},
		{"coordinator.signingKey", "coordinator.signing-key", "DAGU_COORDINATOR_SIGNING_KEY", server, "coordinator:\n  signingKey: from-file\n", "[]", "[from-file]", "[from-env]", "[from-flag]"},
		{"coordinator.tls.certFile", "coordinator.tls-cert", "DAGU_COORDINATOR_TLS_CERT", server, "coordinator:\n  tls:\n    certFile: file.crt\n", "", "file.crt", "env.crt", "flag.crt"},
		{"coordinator.tls.keyFile", "coordinator.tls-key", "DAGU_COORDINATOR_TLS_KEY", server, "coordinator:\n  tls:\n    keyFile: file.key\n", "", "file.key", "env.key", "flag.key"},
		{"coordinator.tls.caFile", "coordinator.tls-ca", "DAGU_COORDINATOR_TLS_CA", server, "coordinator:\n  tls:\n    caFile: file-ca.crt\n", "", "file-ca.crt", "env-ca.crt", "flag-ca.crt"},
		{"cluster.tokens", "cluster-token", "DAGUHA_CLUSTER_TOKEN", server, "cluster:\n  tokens: [from-file]\n", "[]", "[from-file]", "[from-env]", "[from-flag]"},
		{"cluster.certifiedLabels", "certified-labels", "DAGUHA_CERTIFIED_LABELS", server, "cluster:\n  certifiedLabels: [tier]\n", "[]", "[tier]", "[zone]", "[team]"},
		{"worker.id", "worker.id", "DAGU_WORKER_ID", worker, "worker:\n  id: file-worker\n", "", "file-worker", "env-worker", "flag-worker"},
		{"worker.maxActiveRuns", "worker.max-active-runs", "DAGU_WORKER_MAX_ACTIVE_RUNS", worker, "worker:\n  maxActiveRuns: 3\n", "10", "3", "4", "5"},
		{"worker.coordinatorHost", "worker.coordinator-host", "DAGU_WORKER_COORDINATOR_HOST", worker, "worker:\n  coordinatorHost: file.example\n", "127.0.0.1", "file.example", "env.example", "flag.example"},
		{"worker.coordinatorPort", "worker.coordinator-port", "DAGU_WORKER_COORDINATOR_PORT", worker, "worker:\n  coordinatorPort: 50011\n", "50055", "50011", "50012", "50013"},
		{"worker.labels", "worker.labels", "DAGU_WORKER_LABELS", worker, "worker:\n  labels:\n    gpu: \"true\"\n    memory: 64G\n", "", "gpu=true,memory=64G", "region=us-east-1", "cpu=yes"},
		{"worker.insecure", "worker.insecure", "DAGU_WORKER_INSECURE", worker, "worker:\n  insecure: false\n", "true", "false", "true", "false"},
		{"worker.tls.certFile", "worker.tls-cert", "DAGU_WORKER_TLS_CERT", worker, "worker:\n  tls:\n    certFile: file.crt\n", "", "file.crt", "env.crt", "flag.crt"},
		{"worker.tls.keyFile", "worker.tls-key", "DAGU_WORKER_TLS_KEY", worker, "worker:\n  tls:\n    keyFile: file.key\n", "", "file.key", "env.key", "flag.key"},
		{"worker.tls.caFile", "worker.tls-ca", "DAGU_WORKER_TLS_CA", worker, "worker:\n  tls:\n    caFile: file-ca.crt\n", "", "file-ca.crt", "env-ca.crt", "flag-ca.crt"},
	}
	t.Setenv("DAGU_HOME", t.TempDir()) // no config file found by default
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			want := func(layer, got, expected string) {
				t.Helper()
				if got != expected {
					t.Errorf("%s: %s = %q, want %q", layer, tc.key, got, expected)
				}
			}
			got, err := resolve(t, tc.flags, nil, tc.flag)
			if err != nil {
				t.Fatal(err)
			}
			want("default", got[tc.flag], tc.def)
			file := writeConfig(t, tc.yaml)
			if got, err = resolve(t, tc.flags, []string{"--config=" + file}, tc.flag); err != nil {
				t.Fatal(err)
			}
			want("file over default", got[tc.flag], tc.file)
			t.Setenv(tc.env, strings.Trim(tc.envVal, "[]"))
			if got, err = resolve(t, tc.flags, []string{"--config=" + file}, tc.flag); err != nil {
				t.Fatal(err)
			}
			want("env over file", got[tc.flag], tc.envVal)
			if got, err = resolve(t, tc.flags, []string{"--config=" + file, "--" + tc.flag + "=" + strings.Trim(tc.flagVal, "[]")}, tc.flag); err != nil {
				t.Fatal(err)
			}
			want("flag over env", got[tc.flag], tc.flagVal)
		})
	}
}

// The seed's config.yaml blocks and environment variables load as written.
func TestSeedConfigurationLoads(t *testing.T) {
	t.Setenv("DAGU_HOME", t.TempDir())
	file := writeConfig(t, `# config.yaml
coordinator:
  host: 0.0.0.0
  port: 50055
  signingKey: "your-secret-key"
  tls:
    certFile: /path/to/server.crt
    keyFile: /path/to/server.key
    caFile: /path/to/ca.crt # For mutual TLS
worker:
  id: "worker-gpu-01" # Defaults to hostname@PID
  maxActiveRuns: 10
  coordinatorHost: coordinator.example.com
  coordinatorPort: 50055
  labels:
    gpu: "true"
    memory: "64G"
    region: "us-east-1"
  insecure: false # Use TLS
  tls:
    certFile: /path/to/client.crt
    keyFile: /path/to/client.key
    caFile: /path/to/ca.crt
`)
	got, err := resolve(t, seedServerCommand("coordinator", "").Flags, []string{"--config=" + file},
		"coordinator.host", "coordinator.port", "coordinator.signing-key", "coordinator.tls-cert", "coordinator.tls-key", "coordinator.tls-ca")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"coordinator.host": "0.0.0.0", "coordinator.port": "50055", "coordinator.signing-key": "[your-secret-key]",
		"coordinator.tls-cert": "/path/to/server.crt", "coordinator.tls-key": "/path/to/server.key", "coordinator.tls-ca": "/path/to/ca.crt"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	got, err = resolve(t, workerCommand().Flags, []string{"--config=" + file}, "worker.id", "worker.max-active-runs", "worker.coordinator-host",
		"worker.coordinator-port", "worker.labels", "worker.insecure", "worker.tls-cert", "worker.tls-key", "worker.tls-ca")
	if err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"worker.id": "worker-gpu-01", "worker.max-active-runs": "10", "worker.coordinator-host": "coordinator.example.com",
		"worker.coordinator-port": "50055", "worker.labels": "gpu=true,memory=64G,region=us-east-1", "worker.insecure": "false",
		"worker.tls-cert": "/path/to/client.crt", "worker.tls-key": "/path/to/client.key", "worker.tls-ca": "/path/to/ca.crt"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k, v := range map[string]string{"DAGU_COORDINATOR_HOST": "0.0.0.0", "DAGU_COORDINATOR_PORT": "50055", "DAGU_COORDINATOR_SIGNING_KEY": "secret"} {
		t.Setenv(k, v)
	}
	got, err = resolve(t, seedServerCommand("coordinator", "").Flags, nil, "coordinator.host", "coordinator.port", "coordinator.signing-key")
	if err != nil || got["coordinator.host"] != "0.0.0.0" || got["coordinator.port"] != "50055" || got["coordinator.signing-key"] != "[secret]" {
		t.Fatalf("the seed's coordinator variables: %v %v", got, err)
	}
	for k, v := range map[string]string{"DAGU_WORKER_ID": "worker-01", "DAGU_WORKER_COORDINATOR_HOST": "coordinator.example.com", "DAGU_WORKER_LABELS": "gpu=true,region=us-east-1"} {
		t.Setenv(k, v)
	}
	got, err = resolve(t, workerCommand().Flags, nil, "worker.id", "worker.coordinator-host", "worker.labels")
	if err != nil || got["worker.id"] != "worker-01" || got["worker.coordinator-host"] != "coordinator.example.com" || got["worker.labels"] != "gpu=true,region=us-east-1" {
		t.Fatalf("the seed's worker variables: %v %v", got, err)
	}
}

// Bad configuration ends the process with one line naming the key and
// where the value came from.
func TestBadConfigurationIsNamed(t *testing.T) {
	bin := clustertest.BuildBinary(t)
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"wrong type", "worker:\n  coordinatorPort: abc\n", []string{"worker.coordinatorPort", "config.yaml", `"abc"`}},
		{"bad port", "worker:\n  coordinatorPort: 70000\n", []string{"worker.coordinator-port", "port 70000", "worker.coordinatorPort in", "out of range"}},
		{"label without value", "worker:\n  labels: gpu\n", []string{"worker.labels", `label "gpu"`, "worker.labels in"}},
		// The label rules are package valid's, as for a DAG's workerSelector.
		{"label without key", "worker:\n  labels: \"=x\"\n", []string{"worker.labels", `label key "": must not be empty`}},
		{"label with two =", "worker:\n  labels: a=b=c\n", []string{"worker.labels", `label value "b=c" of "a": must not contain '=' or ','`}},
		{"label with an empty value", "worker:\n  labels: \"tier=\"\n", []string{"worker.labels", `label value "" of "tier": must not be empty`}},
		{"label value of 900 KB", "worker:\n  labels: zone=" + strings.Repeat("z", 900_000) + "\n", []string{"worker.labels", `(900000 bytes) of "zone": must be at most 63 bytes`}},
		{"worker id with a slash", "worker:\n  id: a/b\n", []string{"worker.id", `worker id "a/b": must be 1-253 letters`, "worker.id in"}},
		{"missing certificate", "worker:\n  insecure: false\n  tls:\n    certFile: /nonexistent/client.crt\n", []string{"worker.tls-cert", "/nonexistent/client.crt", "worker.tls.certFile in"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := writeConfig(t, tc.yaml)
			cmd := exec.Command(bin, "worker", "--config="+file, "--worker.coordinator-host=127.0.0.1")
			cmd.Env = append(os.Environ(), "DAGU_HOME="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("daguha worker started with a bad config:\n%s", out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			last := lines[len(lines)-1]
			for _, w := range tc.want {
				if !strings.Contains(last, w) {
					t.Errorf("error %q does not name %q", last, w)
				}
			}
		})
	}
}

// `daguha config show` prints each setting with its source and hides
// secrets; `daguha config validate` accepts a good file and names every
// problem of a bad one.
func TestConfigShowAndValidate(t *testing.T) {
	bin := clustertest.BuildBinary(t)
	file := writeConfig(t, "coordinator:\n  port: 50001\n  signingKey: very-secret\ncluster:\n  tokens: [cluster-secret]\nworker:\n  id: file-worker\n  labels:\n    gpu: \"true\"\n")
	cmd := exec.Command(bin, "config", "show", "--for=start-all", "--", "--config="+file, "--port=9999")
	cmd.Env = append(os.Environ(), "DAGU_HOME="+t.TempDir(), "DAGU_COORDINATOR_HOST=10.1.2.3")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("config show: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"coordinator.port", "50001", "coordinator.port in " + file, "10.1.2.3", "flag or environment", "9999", "(set, hidden)"} {
		if !strings.Contains(text, want) {
			t.Errorf("config show does not say %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "very-secret") || strings.Contains(text, "cluster-secret") {
		t.Fatalf("config show printed the signing key or the cluster token:\n%s", text)
	}
	if out, err := exec.Command(bin, "config", "validate", file).CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("a good file did not validate: %v\n%s", err, out)
	}
	bad := writeConfig(t, "coordinator:\n  port: 70000\nworker:\n  labels: a=b=c\nnonsense: 1\n")
	out, err = exec.Command(bin, "config", "validate", bad).CombinedOutput()
	if err == nil {
		t.Fatalf("a bad file validated:\n%s", out)
	}
	for _, want := range []string{"unknown key nonsense", "port 70000", `label value "b=c" of "a"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("config validate does not say %q:\n%s", want, out)
		}
	}
	help, err := exec.Command(bin, "worker", "--help").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(help), "\n") {
		if strings.Contains(line, "--worker.labels") && !(strings.Contains(line, "(config: worker.labels)") && strings.Contains(line, "$DAGU_WORKER_LABELS")) {
			t.Fatalf("--help does not name the config key and variable beside the flag: %q", line)
		}
	}
}

func TestEnvNamesFollowTheSeedsScheme(t *testing.T) {
	for key, want := range map[string]string{
		"cluster.dataDir":        "DAGU_CLUSTER_DATA_DIR",
		"cluster.nodeName":       "DAGU_CLUSTER_NODE_NAME",
		"worker.coordinatorHost": "DAGU_WORKER_COORDINATOR_HOST",
		"coordinator.signingKey": "DAGU_COORDINATOR_SIGNING_KEY",
		"cluster.health.warning": "DAGU_CLUSTER_HEALTH_WARNING",
	} {
		if got := envName(key); got != want {
			t.Errorf("envName(%q) = %q, want %q", key, got, want)
		}
	}
}

// worker.metricsAddr sets the metrics address of both worker command
// lines: Dagu's worker (--worker.metrics-addr) and the worker agent
// (-metrics-addr); a flag still wins over the file.
func TestWorkerMetricsAddrFromConfig(t *testing.T) {
	path := writeConfig(t, "worker:\n  metricsAddr: 127.0.0.1:9100\n")
	for _, tc := range []struct {
		name  string
		flags []cli.Flag
		flag  string
	}{
		{"worker", workerCommand().Flags, "worker.metrics-addr"},
		{"agent", agentFlags(), "metrics-addr"},
	} {
		got, err := resolve(t, tc.flags, []string{"--config=" + path}, tc.flag)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got[tc.flag] != "127.0.0.1:9100" {
			t.Errorf("%s: %s = %q from the file; want 127.0.0.1:9100", tc.name, tc.flag, got[tc.flag])
		}
		got, err = resolve(t, tc.flags, []string{"--config=" + path, "--" + tc.flag + "=0.0.0.0:9200"}, tc.flag)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got[tc.flag] != "0.0.0.0:9200" {
			t.Errorf("%s: %s = %q; the flag should win over the file", tc.name, tc.flag, got[tc.flag])
		}
	}
}

// A Raft timeout outside what elections can work with stops the server
// with a line naming the flag, whether from the flag or from the file.
func TestBadRaftTimeoutIsNamed(t *testing.T) {
	bin := clustertest.BuildBinary(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"flag too short", []string{"-raft-timeout=10ms"}, "-raft-timeout 10ms: must be between 50ms and 1m"},
		{"file too long", []string{"--config=" + writeConfig(t, "cluster:\n  raftTimeout: 2m\n")}, "-raft-timeout 2m0s: must be between 50ms and 1m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"agent", "-server", "-bind=127.0.0.1", "-data-dir=" + t.TempDir()}, tc.args...)
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), "DAGU_HOME="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("daguha agent started with a bad Raft timeout:\n%s", out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output does not say %q:\n%s", tc.want, out)
			}
		})
	}
}

// worker.stepLogRetention sets the step log retention of both worker
// command lines; the default is the run retention's; a negative one stops
// the worker with a line naming the flag, from the flag or from the file.
func TestWorkerStepLogRetention(t *testing.T) {
	path := writeConfig(t, "worker:\n  stepLogRetention: 72h\n")
	for _, tc := range []struct {
		name  string
		flags []cli.Flag
		flag  string
	}{
		{"worker", workerCommand().Flags, "worker.step-log-retention"},
		{"agent", agentFlags(), "step-log-retention"},
	} {
		got, err := resolve(t, tc.flags, nil, tc.flag)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got[tc.flag] != worker.DefaultStepLogRetention.String() || got[tc.flag] != dispatch.DefaultRunRetention.String() {
			t.Errorf("%s: %s defaults to %q; want the run retention's %s", tc.name, tc.flag, got[tc.flag], dispatch.DefaultRunRetention)
		}
		got, err = resolve(t, tc.flags, []string{"--config=" + path}, tc.flag)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got[tc.flag] != "72h0m0s" {
			t.Errorf("%s: %s = %q from the file; want 72h0m0s", tc.name, tc.flag, got[tc.flag])
		}
	}
	bin := clustertest.BuildBinary(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"worker flag", []string{"worker", "--worker.step-log-retention=-1h"}, "-worker.step-log-retention=-1h0m0s: want a duration of zero (keep every log) or more"},
		{"worker file", []string{"worker", "--config=" + writeConfig(t, "worker:\n  stepLogRetention: -5m\n")}, "-worker.step-log-retention=-5m0s: want a duration"},
		{"agent flag", []string{"agent", "-join=127.0.0.1:1", "-step-log-retention=-2h"}, "-step-log-retention=-2h0m0s: want a duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(), "DAGU_HOME="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("%v: %v, output:\n%s\nwant it to say %q", tc.args, err, out, tc.want)
			}
		})
	}
}

// Dagu's tz setting (-tz, config tz, DAGU_TZ) reaches the scheduler; a
// zone that does not exist stops the server with a line naming it.
func TestScheduleZoneSetting(t *testing.T) {
	got, err := resolve(t, agentFlags(), []string{"--config=" + writeConfig(t, "tz: Europe/Berlin\n")}, "tz")
	if err != nil || got["tz"] != "Europe/Berlin" {
		t.Fatalf("tz from the file: %q, %v", got["tz"], err)
	}
	bin := clustertest.BuildBinary(t)
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"flag", []string{"-tz=Mars/Olympus"}, "", "-tz=Mars/Olympus: not an IANA time zone"},
		{"environment", nil, "DAGU_TZ=Atlantis", "-tz=Atlantis: not an IANA time zone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"agent", "-dev", "-http-port=0", "-grpc-port=0", "-raft-port=0", "-gossip-port=0"}, tc.args...)...)
			cmd.Env = append(os.Environ(), "DAGU_HOME="+t.TempDir())
			if tc.env != "" {
				cmd.Env = append(cmd.Env, tc.env)
			}
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("%v %s: %v, output:\n%s\nwant it to say %q", tc.args, tc.env, err, out, tc.want)
			}
		})
	}
	good := clustertest.NewProcess(t, "tz", t.TempDir(), bin, "agent", "-dev", "-tz=Asia/Tokyo",
		"-http-port=0", "-grpc-port=0", "-raft-port=0", "-gossip-port=0")
	if err := good.Start(); err != nil {
		t.Fatal(err)
	}
	defer good.Stop()
	clustertest.WaitFor(t, 60*time.Second, "the leader's scheduler to take the zone", func() (bool, string) {
		tail := good.Tail(200)
		return strings.Contains(tail, "schedule_zone=Asia/Tokyo"), tail
	})
}

// Servers that read schedules in different zones say so, naming each
// other; the ones that agree say nothing of it.
func TestServersWarnOfDifferentScheduleZones(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ArgsFor: func(i int) []string {
		if i == 2 {
			return []string{"-tz=Asia/Tokyo"}
		}
		return []string{"-tz=UTC"}
	}})
	c.WaitLeader(t, 30*time.Second)
	odd, even := c.Agents[2], c.Agents[0]
	clustertest.WaitFor(t, 30*time.Second, "both sides to warn", func() (bool, string) {
		a, b := odd.Tail(300), even.Tail(300)
		return strings.Contains(a, "servers disagree on the schedule zone") &&
				strings.Contains(a, "in Asia/Tokyo, "+c.Agents[0].Name+" reads them in UTC, "+c.Agents[1].Name+" reads them in UTC") &&
				strings.Contains(b, "in UTC, "+odd.Name+" reads them in Asia/Tokyo"),
			a + "\n----\n" + b
	})
	if strings.Contains(even.Tail(300), c.Agents[1].Name+" reads them") {
		t.Fatalf("%s warned of %s, which reads schedules in its zone too:\n%s", even.Name, c.Agents[1].Name, even.Tail(300))
	}
}

func TestZoneLabel(t *testing.T) {
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	india, _ := time.LoadLocation("Asia/Kolkata")
	for _, tc := range []struct {
		zone *time.Location
		now  time.Time
		want string
	}{
		{tokyo, time.Now(), "Asia/Tokyo"},
		{nil, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "UTC"},
		{nil, time.Date(2026, 1, 1, 0, 0, 0, 0, india), "local IST+05:30"},
		{nil, time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("NST", -(3*3600+1800))), "local NST-03:30"},
	} {
		if got := zoneLabel(tc.zone, tc.now); got != tc.want {
			t.Errorf("zoneLabel(%v, %v) = %q, want %q", tc.zone, tc.now, got, tc.want)
		}
	}
}

// Dagu's queues setting: queues.config in the file (a list of name and
// maxActiveRuns), -queues or DAGUHA_QUEUES on the command line; bad
// entries are named; queues.enabled: false is refused at start, since
// daguha always dispatches.
func TestQueuesSetting(t *testing.T) {
	file := writeConfig(t, "queues:\n  enabled: true\n  config:\n    - name: batch\n      maxActiveRuns: 1\n    - name: critical\n      max_active_runs: 5\n")
	got, err := resolve(t, agentFlags(), []string{"--config=" + file}, "queues", "queues-enabled")
	if err != nil || got["queues"] != "batch=1,critical=5" || got["queues-enabled"] != "true" {
		t.Fatalf("queues from the file: %v, %v", got, err)
	}
	if _, err := resolve(t, agentFlags(), []string{"--config=" + writeConfig(t, "queues:\n  config:\n    - name: batch\n      limit: 2\n")}, "queues"); err == nil || !strings.Contains(err.Error(), `unknown key "limit"`) {
		t.Fatalf("an unknown key in a queue: %v", err)
	}
	queues, err := parseQueues("batch=1, critical=5,zero=0")
	if err != nil || len(queues) != 3 || queues["batch"] != 1 || queues["critical"] != 5 || queues["zero"] != 0 {
		t.Fatalf("parseQueues: %v %v", queues, err)
	}
	for text, want := range map[string]string{
		"batch":           `"batch": want NAME=N`,
		"../x=1":          `queue name "../x"`,
		"batch=-1":        `maxActiveRuns "-1"`,
		"batch=1,batch=2": `queue "batch" is given twice`,
	} {
		if _, err := parseQueues(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseQueues(%q): %v, want %q", text, err, want)
		}
	}
	bin := clustertest.BuildBinary(t)
	out, err := exec.Command(bin, "agent", "-dev", "-queues-enabled=false").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "daguha always dispatches queued runs") {
		t.Fatalf("queues.enabled false: %v\n%s", err, out)
	}
}
