package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/client"
)

// Timings the suite runs the cluster with: leases and worker health short
// enough that a partitioned or killed worker loses its runs within
// seconds, so reclaims and re-executions happen often.
var serverTimings = []string{
	"-lease-ttl=5s", "-health-warning=2s", "-health-unhealthy=4s", "-health-offline=6s",
	"-forward-hold=5s", "-dead-server-timeout=1h",
}

// workerMetricsPort is where workers serve /metrics, in their namespace.
const workerMetricsPort = 9100

// Options shape a harness.
type Options struct {
	Servers, Workers int
	// Bin is the daguha binary to run.
	Bin string
	// DiskServer, when >= 0, is the index of the server whose data
	// directory is a small tmpfs the nemesis can fill.
	DiskServer int
	// WorkerArgs are added to every worker's command line.
	WorkerArgs []string
	// RunRetention, when set, is the servers' -run-retention: they prune
	// ended runs older than it (use an Observer to see them first).
	RunRetention time.Duration
}

// Server is a daguha server in its namespace.
type Server struct {
	*clustertest.Agent
	Node *Node
	// diskMount is the tmpfs the data directory is on, or "".
	diskMount string
}

// Worker is a worker agent in its namespace.
type Worker struct {
	*clustertest.Process
	ID       string
	Node     *Node
	ExecFile string
}

// Harness is a cluster of servers and workers, each in its own network
// namespace, with its logs in one directory that outlives a failed test.
type Harness struct {
	t       testing.TB
	Net     *Network
	LogDir  string
	Servers []*Server
	Workers []*Worker
	bin     string
	// tmpfs mounts to remove at the end.
	mounts []string
}

// logDirs hands out the log directories; they are removed at the end of
// a passing test and kept (and named) when it fails.
func newLogDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "daguha-chaos-"+strings.ReplaceAll(t.Name(), "/", "-")+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chaos logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// NewHarness makes the network and prepares (does not start) every
// process. Cleanup kills the processes, then removes the network and
// the mounts.
func NewHarness(t testing.TB, opts Options) *Harness {
	t.Helper()
	if why := Usable(); why != "" {
		t.Skip(why)
	}
	if removed := SweepLeftovers(); len(removed) > 0 {
		t.Logf("removed leftovers of earlier runs: %s", strings.Join(removed, ", "))
	}
	network, err := NewNetwork()
	if err != nil {
		t.Fatalf("make the test network: %v", err)
	}
	h := &Harness{t: t, Net: network, LogDir: newLogDir(t), bin: opts.Bin}
	// Registered first, so it runs last: after every process is killed.
	t.Cleanup(func() {
		for _, dir := range h.mounts {
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		}
		if err := network.Close(); err != nil {
			t.Errorf("remove the test network: %v", err)
		}
	})
	var gossip []string
	for i := 0; i < opts.Servers; i++ {
		name := fmt.Sprintf("server%d", i+1)
		node, err := network.AddNode(name)
		if err != nil {
			t.Fatal(err)
		}
		agent := &clustertest.Agent{Name: name, Host: node.IP, HTTPPort: 8080, GRPCPort: 50055, RaftPort: 8300, GossipPort: 8301,
			DataDir: filepath.Join(h.LogDir, name+"-data")}
		s := &Server{Agent: agent, Node: node}
		if i == opts.DiskServer {
			s.diskMount = agent.DataDir
			if err := os.MkdirAll(agent.DataDir, 0o700); err != nil {
				t.Fatal(err)
			}
			// The mount's source names this run, so a later run can
			// find it if this one is killed before its cleanup.
			if err := run("mount", "-t", "tmpfs", "-o", "size=256m", network.Name+"-disk", agent.DataDir); err != nil {
				t.Fatalf("tmpfs for %s: %v", name, err)
			}
			h.mounts = append(h.mounts, agent.DataDir)
		}
		h.Servers = append(h.Servers, s)
		gossip = append(gossip, agent.GossipAddr())
	}
	for i, s := range h.Servers {
		var others []string
		for j, addr := range gossip {
			if j != i {
				others = append(others, addr)
			}
		}
		args := []string{"agent", "-server", "-bootstrap-expect=" + strconv.Itoa(opts.Servers), "-node=" + s.Name,
			"-data-dir=" + s.DataDir, "-bind=" + s.Node.IP, "-join=" + strings.Join(others, ","), "-log-format=json"}
		args = append(args, serverTimings...)
		if opts.RunRetention > 0 {
			args = append(args, "-run-retention="+opts.RunRetention.String())
		}
		s.Process = clustertest.NewProcess(t, s.Name, h.LogDir, h.bin, args...)
		s.Process.Wrap = s.Node.Wrap()
	}
	for i := 0; i < opts.Workers; i++ {
		id := fmt.Sprintf("worker%d", i+1)
		node, err := network.AddNode(id)
		if err != nil {
			t.Fatal(err)
		}
		w := &Worker{ID: id, Node: node, ExecFile: filepath.Join(h.LogDir, id+".exec")}
		args := []string{"agent", "-join=" + strings.Join(gossip, ","), "-bind=" + node.IP, "-worker-id=" + id,
			"-max-active-runs=4", "-heartbeat-interval=1s", "-log-format=json", "-step-log-port=-1",
			"-metrics-addr=" + net.JoinHostPort(node.IP, strconv.Itoa(workerMetricsPort))}
		args = append(args, opts.WorkerArgs...)
		w.Process = clustertest.NewProcess(t, id, h.LogDir, h.bin, args...)
		w.Process.Wrap = node.Wrap()
		w.Process.Env = []string{"CHAOS_EXEC_FILE=" + w.ExecFile, "CHAOS_WORKER=" + id}
		h.Workers = append(h.Workers, w)
	}
	return h
}

// Start starts every server, waits for a leader, then starts the workers.
func (h *Harness) Start() {
	h.t.Helper()
	for _, s := range h.Servers {
		if err := s.Start(); err != nil {
			h.t.Fatal(err)
		}
	}
	h.WaitLeader(90 * time.Second)
	for _, w := range h.Workers {
		if err := w.Start(); err != nil {
			h.t.Fatal(err)
		}
	}
	h.WaitWorkers(60 * time.Second)
}

// Leader returns the server that says it leads, with every running
// server agreeing, or nil.
func (h *Harness) Leader() (*Server, string) {
	var leader *Server
	seen := map[string]bool{}
	for _, s := range h.Servers {
		if !s.Running() {
			continue
		}
		health, err := s.Health()
		if err != nil {
			return nil, s.Name + ": " + err.Error()
		}
		seen[health.Leader] = true
		if health.Role == "leader" {
			if leader != nil {
				return nil, "two servers say they lead"
			}
			leader = s
		}
	}
	if leader == nil || len(seen) != 1 || seen[""] {
		return nil, fmt.Sprintf("leaders named: %v", seen)
	}
	return leader, ""
}

// WaitLeader waits for one leader agreed on by every running server.
func (h *Harness) WaitLeader(timeout time.Duration) *Server {
	h.t.Helper()
	var leader *Server
	clustertest.WaitFor(h.t, timeout, "one leader agreed on by every running server", func() (bool, string) {
		var why string
		leader, why = h.Leader()
		return leader != nil, why
	})
	return leader
}

// WaitWorkers waits until the leader lists every running worker HEALTHY.
func (h *Harness) WaitWorkers(timeout time.Duration) {
	h.t.Helper()
	clustertest.WaitFor(h.t, timeout, "every running worker HEALTHY on the leader", func() (bool, string) {
		leader, why := h.Leader()
		if leader == nil {
			return false, why
		}
		body, err := leader.API().Workers(context.Background(), false)
		if err != nil {
			return false, fmt.Sprintf("workers: %v", err)
		}
		healthy := map[string]bool{}
		for _, w := range body.Workers {
			healthy[w.ID] = w.HealthStatus == "HEALTHY"
		}
		for _, w := range h.Workers {
			if w.Running() && !healthy[w.ID] {
				return false, w.ID + " is not HEALTHY: " + fmt.Sprint(body.Workers)
			}
		}
		return true, ""
	})
}

// Server returns the server of a node name.
func (h *Harness) Server(name string) *Server {
	for _, s := range h.Servers {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// ServerNodes returns the nodes of every server but except.
func (h *Harness) ServerNodes(except *Server) []*Node {
	var nodes []*Node
	for _, s := range h.Servers {
		if s != except {
			nodes = append(nodes, s.Node)
		}
	}
	return nodes
}

// FillDisk fills the tmpfs of a server's data directory until it is full.
func (s *Server) FillDisk() error {
	if s.diskMount == "" {
		return errors.New(s.Name + " has no small disk")
	}
	f, err := os.Create(filepath.Join(s.diskMount, "chaos-filler"))
	if err != nil {
		return err
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte{0xda}, 1<<20)
	for range 1024 {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return err
		}
	}
	return errors.New("the disk did not fill up within 1 GiB")
}

// FreeDisk removes what FillDisk wrote.
func (s *Server) FreeDisk() error {
	err := os.Remove(filepath.Join(s.diskMount, "chaos-filler"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// HasDisk says whether the server's data is on a disk the nemesis fills.
func (s *Server) HasDisk() bool { return s.diskMount != "" }

// call sends one API request to a server from the host, within timeout,
// and decodes a JSON answer of status below 300 into out. An error answer
// is its status, not an error: err is a call that got no answer it could
// read. The agent's client keeps no connection alive, so a call never
// rides a connection a partition froze.
func call(s *Server, method, path string, body, out any, timeout time.Duration) (int, error) {
	code, err := s.API().WithTimeout(timeout).Do(context.Background(), method, path, body, out)
	if client.StatusCode(err) != 0 {
		return code, nil
	}
	return code, err
}
