package main

// Process-level tests of the bounds on what comes in from outside (#20):
// message sizes on the worker protocol, the rules of package valid on
// every path, and the HTTP API's timeouts.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/agent"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/rpc"
)

// residentBytes is a process's resident memory, from /proc/PID/status.
func residentBytes(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("read the status of process %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS of process %d: %q", pid, line)
			}
			return kb << 10
		}
	}
	t.Fatalf("process %d has no VmRSS line", pid)
	return 0
}

// closedBy reads conn until the server closes it and sends the time it
// did (or the time the read failed otherwise).
func closedBy(conn net.Conn) <-chan time.Time {
	closed := make(chan time.Time, 1)
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		closed <- time.Now()
	}()
	return closed
}

// waitClosed waits for a connection the server must close by deadline.
func waitClosed(t *testing.T, what string, closed <-chan time.Time, began time.Time, limit time.Duration) {
	t.Helper()
	var at time.Time
	select {
	case at = <-closed:
	case <-time.After(time.Until(began.Add(limit))):
		select {
		case at = <-closed: // closed as the wait ended
		default:
			t.Fatalf("%s: still open %s after it began", what, limit)
		}
	}
	if took := at.Sub(began); took > limit {
		t.Fatalf("%s: closed by the server only after %s, limit %s", what, took, limit)
	}
	t.Logf("%s: closed by the server after %s (limit %s)", what, at.Sub(began).Round(100*time.Millisecond), limit)
}

// A worker certificate (or, without TLS, network access) was enough to
// send a 20 MB label in a heartbeat, which every server took and
// replicated (issue #20: their memory grew by 300 MB each). Now every
// server's gRPC listener refuses messages over 4 MiB before reading them,
// a label under that size is refused by the label rules, and the servers'
// resident memory grows by less than 64 MiB under the attack. The same
// cluster shows the other bounds: pushed DAGs of 100,000 steps, 900 KB
// selector values, slow bodies, idle connections and silent ones.
func TestBoundsOnWhatComesIn(t *testing.T) {
	t.Parallel() // waits more than it computes: see TestMain
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3})
	leader := c.WaitLeader(t, 30*time.Second)
	follower := followerOf(c, leader)
	httpHost := strings.TrimPrefix(follower.HTTPAddr(), "http://")

	// A body sent a byte a second, and a kept-alive connection left idle:
	// both started now, checked at the end, while the rest runs.
	slowBegan := time.Now()
	slow, err := net.Dial("tcp", httpHost)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /api/v2/dag-runs HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", httpHost)
	slowClosed := closedBy(slow)
	stopTrickle := make(chan struct{})
	defer close(stopTrickle)
	go func() {
		ticker := time.NewTicker(time.Second)
		defer ticker.Stop()
		for {
			select {
			case <-stopTrickle:
				return
			case <-ticker.C:
				if _, err := slow.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	idle, err := net.Dial("tcp", httpHost)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprintf(idle, "GET /api/v2/health HTTP/1.1\r\nHost: %s\r\n\r\n", httpHost)
	idleReader := bufio.NewReader(idle)
	resp, err := http.ReadResponse(idleReader, nil)
	if err != nil {
		t.Fatalf("the idle connection's one request: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		t.Fatal("the server did not keep the idle connection alive after its request")
	}
	idleBegan := time.Now()
	idleClosed := make(chan time.Time, 1)
	go func() {
		_, _ = io.Copy(io.Discard, idleReader)
		idleClosed <- time.Now()
	}()

	// A connection to the gRPC port that never says a word.
	silentBegan := time.Now()
	silent, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(follower.GRPCPort))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silentClosed := closedBy(silent)

	// The 20 MB label, five times to each server, over the plaintext
	// worker protocol; then a 3 MB one, which fits in a message.
	before := map[string]int64{}
	for _, a := range c.Agents {
		before[a.Name] = residentBytes(t, a.Pid())
	}
	big := strings.Repeat("x", 20<<20)
	underLimit := strings.Repeat("x", 3<<20)
	for _, a := range c.Agents {
		conn, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(a.GRPCPort), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
		if err != nil {
			t.Fatal(err)
		}
		client := daguhav1.NewCoordinatorServiceClient(conn)
		heartbeat := func(value string) error {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := client.Heartbeat(ctx, &daguhav1.HeartbeatRequest{Worker: &daguhav1.WorkerInfo{
				Id: "attacker", MaxActiveRuns: 1, Labels: map[string]string{"big": value}}})
			return err
		}
		for range 5 {
			if err := heartbeat(big); status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("%s: a heartbeat with a 20 MB label: %v, want it refused as too large", a.Name, err)
			}
		}
		err = heartbeat(underLimit)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `(3145728 bytes) of "big": must be at most 63 bytes`) {
			t.Fatalf("%s: a heartbeat with a 3 MB label: %v, want it refused by the label rules", a.Name, err)
		}
		if len(err.Error()) > 1000 {
			t.Fatalf("%s: the refusal of a 3 MB label is %d bytes long", a.Name, len(err.Error()))
		}
		conn.Close()
	}
	for _, a := range c.Agents {
		after := residentBytes(t, a.Pid())
		t.Logf("%s: resident memory %d MiB before the attack, %d MiB after", a.Name, before[a.Name]>>20, after>>20)
		if grown := after - before[a.Name]; grown >= 64<<20 {
			t.Errorf("%s: resident memory grew by %d MiB under the attack, want less than 64", a.Name, grown>>20)
		}
	}
	var workers wire.Workers
	if code, err := leader.GetJSON("/api/v2/workers", &workers); err != nil || code != http.StatusOK {
		t.Fatalf("workers: HTTP %d %v", code, err)
	}
	for _, w := range workers.Workers {
		if w.ID == "attacker" {
			t.Fatal("the attacker's worker was registered")
		}
	}

	// A pushed DAG has the step limit of inline ones, and a DAG file is at
	// most 2 MiB; a 900 KB selector value is refused inline and in a file.
	push := func(a *clustertest.Agent, files ...wire.DagSource) (int, string) {
		t.Helper()
		var body wire.Error
		code, err := a.PostJSONTimeout("/api/v2/dags", wire.DagPush{Files: files}, &body, 60*time.Second)
		if err != nil {
			t.Fatalf("push: %v", err)
		}
		return code, body.Error
	}
	refused := func(what string, code int, msg, want string) {
		t.Helper()
		if code != http.StatusBadRequest || !strings.Contains(msg, want) {
			t.Errorf("%s: HTTP %d %q, want 400 naming %q", what, code, msg, want)
		} else {
			t.Logf("%s: refused: %.200s", what, msg)
		}
	}
	aliased := "steps:\n  - &s {name: a, command: \"true\"}\n" + strings.Repeat("  - *s\n", 99_999)
	code, msg := push(follower, wire.DagSource{Name: "wide.yaml", Content: aliased})
	refused("a pushed DAG of 100,000 steps", code, msg, "100000 steps, more than the limit of 1000 per DAG")
	var plain strings.Builder
	plain.WriteString("steps:\n")
	for i := range 100_000 {
		fmt.Fprintf(&plain, "  - {name: s%d, command: x}\n", i)
	}
	code, msg = push(follower, wire.DagSource{Name: "wide.yaml", Content: plain.String()})
	refused("a pushed DAG file of 100,000 steps written out", code, msg, "more than the limit of 2097152")
	zone := strings.Repeat("z", 900_000)
	code, msg = push(follower, wire.DagSource{Name: "zone.yaml", Content: "workerSelector:\n  zone: " + zone + "\nsteps:\n  - name: a\n    command: x\n"})
	refused("a pushed DAG with a 900 KB selector value", code, msg, `(900000 bytes) of "zone": must be at most 63 bytes`)
	var enqueued wire.Error
	code, err = follower.PostJSONTimeout("/api/v2/dag-runs", inlineRun("zone", map[string]string{"zone": zone}, "true"), &enqueued, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	refused("an inline DAG with a 900 KB selector value", code, enqueued.Error, `(900000 bytes) of "zone": must be at most 63 bytes`)

	// What legitimately travels still does: DAGs of more than a message
	// together, pushed through a follower, go in several commands; a DAG
	// of 1.3 MiB reaches a worker and runs; a step's long output is cut
	// to its tail.
	script := "# " + strings.Repeat("x", 60<<10) + "\ntrue\n"
	var files []wire.DagSource
	for i := range 4 {
		var dag strings.Builder
		fmt.Fprintf(&dag, "name: big%d\ntype: graph\nsteps:\n", i)
		for s := range 11 {
			fmt.Fprintf(&dag, "  - name: s%d\n    script: %q\n", s, script)
		}
		files = append(files, wire.DagSource{Name: fmt.Sprintf("big%d.yaml", i), Content: dag.String()})
	}
	if code, msg := push(follower, files...); code != http.StatusOK {
		t.Fatalf("a push of 4 DAGs of 1.3 MiB each through a follower: HTTP %d %s", code, msg)
	}
	startProcess(t, c.NewWorker("w1"))
	code, err = follower.PostJSONTimeout("/api/v2/dag-runs", wire.EnqueueRequest{DagName: "big0", DagRunID: "big-run"}, nil, 30*time.Second)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("enqueue the stored DAG big0: HTTP %d %v", code, err)
	}
	mustEnqueue(t, follower, "long-output", nil, "head -c 300000 /dev/zero | tr '\\0' x; echo END")
	runs := waitFinished(t, c, []string{"big-run", "long-output"}, "succeeded", 90*time.Second)
	tail := runs["long-output"].Steps[0].OutputTail
	if len(tail) != 64<<10 || !strings.HasSuffix(tail, "xEND\n") {
		t.Errorf("the output tail of 300 KB of output is %d bytes ending %q, want the last 64 KiB", len(tail), tail[max(0, len(tail)-10):])
	}

	waitClosed(t, "a silent connection to the gRPC port", silentClosed, silentBegan, rpc.HandshakeTimeout+10*time.Second)
	waitClosed(t, "a request whose body comes a byte a second", slowClosed, slowBegan, agent.HTTPReadTimeout+15*time.Second)
	waitClosed(t, "an idle kept-alive connection", idleClosed, idleBegan, agent.HTTPIdleTimeout+15*time.Second)
}
