package clustertest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/daguha/daguha/ops/client"
	"github.com/daguha/daguha/ops/wire"
)

// Process is one OS process started from a test, in its own process group
// so that a kill reaches everything it started. Its output is appended to
// a log file that survives restarts.
type Process struct {
	Name string
	// Env is added to the test's environment for the process.
	Env []string
	// Wrap, when set, is put before the binary on the command line: for
	// example ip netns exec NAME, to run the process in a network
	// namespace (the wrapper must exec the binary, keeping its pid).
	Wrap []string
	bin  string
	args []string
	log  string

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	exitCode int
	starts   int
}

// NewProcess prepares a process; Start runs it (again after an exit).
// Cleanup kills it and fails the test if it outlives the kill.
func NewProcess(t testing.TB, name, dir, bin string, args ...string) *Process {
	p := &Process{Name: name, bin: bin, args: args, log: filepath.Join(dir, name+".log")}
	t.Cleanup(func() {
		p.Kill()
		if !p.gone() {
			t.Errorf("process %s (pid %d) is still alive after the test", name, p.Pid())
		}
		if data, err := os.ReadFile(p.log); err == nil && bytes.Contains(data, []byte("WARNING: DATA RACE")) {
			t.Errorf("the race detector reported a data race in %s; see %s", name, p.log)
		}
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", p.log, p.Tail(60))
		}
	})
	return p
}

// Start runs the process; it fails if the previous incarnation still runs.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.exited:
		default:
			return fmt.Errorf("%s is already running (pid %d)", p.Name, p.cmd.Process.Pid)
		}
	}
	out, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.starts++
	argv := append(append(append([]string(nil), p.Wrap...), p.bin), p.args...)
	fmt.Fprintf(out, "=== start %d %s %s\n", p.starts, time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	go func() {
		err := cmd.Wait()
		out.Close()
		code := 0
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			code = exitErr.ExitCode()
		} else if err != nil {
			code = -1
		}
		p.mu.Lock()
		p.exitCode = code
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

func (p *Process) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.exited
}

// Args returns the arguments of the next Start.
func (p *Process) Args() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.args...)
}

// SetArgs changes the arguments for the next Start (a restart with a new
// setting).
func (p *Process) SetArgs(args []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.args = append([]string(nil), args...)
}

// SetBin changes the binary of the next Start: a server or worker
// replaced by another build in place (an upgrade), with the same
// arguments, data and log.
func (p *Process) SetBin(bin string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bin = bin
}

// Running reports whether the current incarnation has not exited.
func (p *Process) Running() bool {
	cmd, exited := p.current()
	if cmd == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// Pid is the current (or last) incarnation's process id, 0 before Start.
func (p *Process) Pid() int {
	cmd, _ := p.current()
	if cmd == nil {
		return 0
	}
	return cmd.Process.Pid
}

// Exited is closed when the current incarnation exits.
func (p *Process) Exited() <-chan struct{} {
	_, exited := p.current()
	return exited
}

// ExitCode is the last incarnation's exit code (-1 when killed by signal).
func (p *Process) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitCode
}

// signal sends sig to the whole process group of the current incarnation.
func (p *Process) signal(sig syscall.Signal) {
	if p.Running() {
		_ = syscall.Kill(-p.Pid(), sig)
	}
}

// Kill is kill -9 of the process group; it returns once the process is reaped.
func (p *Process) Kill() {
	if !p.Running() {
		return
	}
	p.signal(syscall.SIGCONT) // a stopped process must not hold the kill up
	p.signal(syscall.SIGKILL)
	<-p.Exited()
}

// Stop sends SIGTERM and waits up to 15 s for a graceful exit, then kills.
func (p *Process) Stop() {
	if !p.Running() {
		return
	}
	p.signal(syscall.SIGTERM)
	p.signal(syscall.SIGCONT) // a paused process only sees the TERM once continued
	select {
	case <-p.Exited():
	case <-time.After(15 * time.Second):
		p.Kill()
	}
}

// Pause stops the process (SIGSTOP), as a long GC pause or a frozen VM would.
func (p *Process) Pause() { p.signal(syscall.SIGSTOP) }

// Resume continues a paused process.
func (p *Process) Resume() { p.signal(syscall.SIGCONT) }

// gone reports whether no process of the last incarnation's id remains.
func (p *Process) gone() bool {
	pid := p.Pid()
	if pid == 0 {
		return true
	}
	return Eventually(5*time.Second, 20*time.Millisecond, func() bool {
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	})
}

// LogPath is the file the process writes to.
func (p *Process) LogPath() string { return p.log }

// Tail returns the last n lines of the log.
func (p *Process) Tail(n int) string {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Agent is a daguha server process and its addresses.
type Agent struct {
	*Process
	Name                                     string
	DataDir                                  string
	HTTPPort, GRPCPort, RaftPort, GossipPort int
	// Host is the address the agent listens on (default 127.0.0.1).
	Host string
	// HTTPS, when set, is how the test reaches an API served over HTTPS;
	// Token, when set, is sent as a Bearer token.
	HTTPS *tls.Config
	Token string
}

// HTTPAddr is the base URL of the agent's HTTP API.
func (a *Agent) HTTPAddr() string {
	scheme := "http"
	if a.HTTPS != nil {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(a.host(), strconv.Itoa(a.HTTPPort))
}

func (a *Agent) host() string {
	if a.Host == "" {
		return "127.0.0.1"
	}
	return a.Host
}

// GossipAddr is the agent's gossip address, for -join.
func (a *Agent) GossipAddr() string { return net.JoinHostPort(a.host(), strconv.Itoa(a.GossipPort)) }

// requestTimeout bounds one API call of a test, so a paused or dead
// server makes a call fail instead of hanging the test.
const requestTimeout = 2 * time.Second

// API is a client of the agent's HTTP API with the agent's token and
// HTTPS settings. Each JSON call may take requestTimeout (change it with
// WithTimeout); no connection is kept alive, so a call never rides a
// connection to a server that was killed or paused since.
func (a *Agent) API() *client.Client {
	return client.New(a.HTTPAddr(), client.Options{Token: a.Token, TLS: a.HTTPS, DisableKeepAlives: true, Timeout: requestTimeout})
}

// do sends one API call and returns the status whatever it is: a JSON
// answer, an error answer included, is decoded into out.
func (a *Agent) do(method, path string, body any, out any, timeout time.Duration) (int, error) {
	code, err := a.API().WithTimeout(timeout).Do(context.Background(), method, path, body, out)
	var apiErr *client.Error
	if !errors.As(err, &apiErr) {
		return code, err
	}
	if out != nil && strings.HasPrefix(apiErr.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(apiErr.Body, out); err != nil {
			return code, fmt.Errorf("decode %s %s: %w: %s", method, path, err, apiErr.Body)
		}
	}
	return code, nil
}

// GetJSON sends GET path and decodes a JSON answer into out (if not nil).
func (a *Agent) GetJSON(path string, out any) (int, error) {
	return a.do(http.MethodGet, path, nil, out, requestTimeout)
}

// PostJSON sends body as JSON and decodes a JSON answer into out.
func (a *Agent) PostJSON(path string, body, out any) (int, error) {
	return a.do(http.MethodPost, path, body, out, requestTimeout)
}

// PostJSONTimeout is PostJSON with another time-out, for calls that may
// be held through an election.
func (a *Agent) PostJSONTimeout(path string, body, out any, timeout time.Duration) (int, error) {
	return a.do(http.MethodPost, path, body, out, timeout)
}

// Health is the answer of GET /api/v2/health, with its status code.
type Health struct {
	wire.Health
	Code int `json:"-"`
}

// Health asks the agent for its health.
func (a *Agent) Health() (Health, error) {
	var h Health
	code, err := a.GetJSON("/api/v2/health", &h)
	h.Code = code
	return h, err
}

// ClusterOptions describes a cluster of server processes.
type ClusterOptions struct {
	Servers         int
	BootstrapExpect int // 0: the number of servers
	ExtraArgs       []string
	// JoinOrder orders the gossip addresses server self is given in -join.
	JoinOrder func(self int, others []string) []string
	// ArgsFor adds flags for one server (after ExtraArgs).
	ArgsFor func(i int) []string
	// HTTPS and Token are set on every agent (see Agent).
	HTTPS *tls.Config
	Token string
	// Binary is the daguha binary to run (empty: BuildBinary's), for
	// suites that run a build with other tags.
	Binary string
}

// Cluster is a set of daguha server processes on loopback ports.
type Cluster struct {
	Agents []*Agent
	Dir    string
	t      testing.TB
	bin    string
}

// NewCluster prepares the servers (ports, data directories, command
// lines) without starting them, so a test can start them in any order.
func NewCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	bin := opts.Binary
	if bin == "" {
		bin = BuildBinary(t)
	}
	expect := opts.BootstrapExpect
	if expect == 0 {
		expect = opts.Servers
	}
	c := &Cluster{Dir: t.TempDir(), t: t, bin: bin}
	ports := FreePorts(t, 4*opts.Servers)
	for i := 0; i < opts.Servers; i++ {
		a := &Agent{
			HTTPS:      opts.HTTPS,
			Token:      opts.Token,
			Name:       fmt.Sprintf("server%d", i+1),
			HTTPPort:   ports[4*i],
			GRPCPort:   ports[4*i+1],
			RaftPort:   ports[4*i+2],
			GossipPort: ports[4*i+3],
		}
		a.DataDir = filepath.Join(c.Dir, a.Name)
		c.Agents = append(c.Agents, a)
	}
	for i, a := range c.Agents {
		var others []string
		for j, b := range c.Agents {
			if j != i {
				others = append(others, b.GossipAddr())
			}
		}
		if opts.JoinOrder != nil {
			others = opts.JoinOrder(i, others)
		}
		args := []string{"agent", "-server",
			"-bootstrap-expect=" + strconv.Itoa(expect),
			"-node=" + a.Name,
			"-data-dir=" + a.DataDir,
			"-bind=127.0.0.1",
			"-http-port=" + strconv.Itoa(a.HTTPPort),
			"-grpc-port=" + strconv.Itoa(a.GRPCPort),
			"-raft-port=" + strconv.Itoa(a.RaftPort),
			"-gossip-port=" + strconv.Itoa(a.GossipPort),
			"-join=" + strings.Join(others, ","),
		}
		args = append(args, opts.ExtraArgs...)
		if opts.ArgsFor != nil {
			args = append(args, opts.ArgsFor(i)...)
		}
		a.Process = NewProcess(t, a.Name, c.Dir, bin, args...)
	}
	return c
}

// StartCluster is NewCluster followed by starting every server in order.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	c := NewCluster(t, opts)
	for _, a := range c.Agents {
		if err := a.Start(); err != nil {
			t.Fatalf("start %s: %v", a.Name, err)
		}
	}
	return c
}

// GossipAddrs returns every server's gossip address, for a worker's -join.
func (c *Cluster) GossipAddrs() []string {
	var addrs []string
	for _, a := range c.Agents {
		addrs = append(addrs, a.GossipAddr())
	}
	return addrs
}

// NewWorker prepares a worker agent that joins the cluster through gossip
// (`daguha agent -join=...`), with id as its worker id and extra flags
// (-labels, -max-active-runs). Start it with Start.
func (c *Cluster) NewWorker(id string, extra ...string) *Process {
	c.t.Helper()
	// Gossip port 0: the worker binds any free port and advertises it.
	// A port picked free here could be taken by another test's process
	// before the worker binds it (a CI run lost a worker that way).
	args := append([]string{"agent", "-join=" + strings.Join(c.GossipAddrs(), ","), "-bind=127.0.0.1",
		"-gossip-port=0", "-worker-id=" + id}, extra...)
	p := NewProcess(c.t, id, c.Dir, c.bin, args...)
	p.Env = []string{NoAutoLabels}
	return p
}

// NoAutoLabels is the environment NewWorker and NewDaguWorker give their
// workers: no fingerprinted labels, so a test's workers carry only the
// labels it gives them, whatever the machine (a GPU host's nvidia-smi
// would make every worker gpu=true). A test that sets Process.Env
// replaces it and gets them.
const NoAutoLabels = "DAGU_WORKER_NO_AUTO_LABELS=true"

// NewDaguWorker prepares a worker started with Dagu's command line,
// pointed at one server's gRPC port.
func (c *Cluster) NewDaguWorker(id string, server *Agent, extra ...string) *Process {
	c.t.Helper()
	args := append([]string{"worker", "--worker.id=" + id, "--worker.coordinator-host=127.0.0.1",
		"--worker.coordinator-port=" + strconv.Itoa(server.GRPCPort)}, extra...)
	p := NewProcess(c.t, id, c.Dir, c.bin, args...)
	p.Env = []string{NoAutoLabels}
	return p
}

// Running returns the agents whose process runs.
func (c *Cluster) Running() []*Agent {
	var out []*Agent
	for _, a := range c.Agents {
		if a.Running() {
			out = append(out, a)
		}
	}
	return out
}

// WaitLeader waits until every running agent names the same leader and
// exactly one of them says it is the leader, and returns that agent.
func (c *Cluster) WaitLeader(t testing.TB, timeout time.Duration) *Agent {
	t.Helper()
	var leader *Agent
	WaitFor(t, timeout, "one leader agreed on by every running server", func() (bool, string) {
		leader = nil
		seen := map[string]bool{}
		for _, a := range c.Running() {
			h, err := a.Health()
			if err != nil {
				return false, a.Name + ": " + err.Error()
			}
			seen[h.Leader] = true
			if h.Role == "leader" {
				if leader != nil {
					return false, "two servers report role leader"
				}
				leader = a
			}
		}
		if leader == nil || len(seen) != 1 || seen[""] {
			return false, fmt.Sprintf("leaders reported: %v", seen)
		}
		return true, ""
	})
	return leader
}

var (
	givenPortsMu sync.Mutex
	givenPorts   = map[int]bool{}
)

// FreePorts returns n distinct ports that are free on 127.0.0.1 for both
// TCP and UDP (gossip uses both) and were not handed out before in this
// test binary.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	givenPortsMu.Lock()
	defer givenPortsMu.Unlock()
	var ports []int
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 1000 {
			t.Fatalf("could not find %d free ports", n)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen for a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		udp, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		l.Close()
		if err != nil {
			continue
		}
		udp.Close()
		if givenPorts[port] {
			continue
		}
		givenPorts[port] = true
		ports = append(ports, port)
	}
	return ports
}

var (
	buildMu  sync.Mutex
	builds   = map[string]string{}
	buildDir string
)

// BuildBinary builds cmd/daguha once per test binary (or uses $DAGUHA_BIN)
// and returns its path; with DAGUHA_RACE_BINARY=1 the binary is built with
// the race detector, and a process that reports a race fails its test.
// TestMain should call CleanupBinary after m.Run.
func BuildBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("DAGUHA_BIN"); bin != "" {
		return bin
	}
	bin, err := BuildVariant("", os.Getenv("DAGUHA_RACE_BINARY") == "1")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// BuildVariant builds cmd/daguha with build tags (comma separated, "" for
// none) and optionally the race detector, once per test binary for each
// combination, and returns its path.
func BuildVariant(tags string, race bool) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	key := tags + "|" + strconv.FormatBool(race)
	if bin, ok := builds[key]; ok {
		return bin, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	if buildDir == "" {
		if buildDir, err = os.MkdirTemp("", "daguha-bin-"); err != nil {
			return "", err
		}
	}
	bin := filepath.Join(buildDir, fmt.Sprintf("daguha-%d", len(builds)))
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, "./cmd/daguha")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s ./cmd/daguha: %w\n%s", strings.Join(args, " "), err, out)
	}
	builds[key] = bin
	return bin, nil
}

// CleanupBinary removes the binaries BuildBinary and BuildVariant built.
func CleanupBinary() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
		buildDir, builds = "", map[string]string{}
	}
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// WaitFor polls cond every 50 ms until it holds, and fails the test with
// cond's last explanation when timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: last: %s", timeout, what, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Eventually polls cond every interval until it holds (true) or timeout
// passes (false).
func Eventually(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}
