package attack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/client"
)

// The rows of a full token and of plain network access that are bounds,
// not trust: what an operator's mistake (or a stolen full token) or a
// stranger on the network can make a server hold. Bounds stay in the
// broken build (only trust checks step aside there), so these run on the
// real build alone; each is refused with its reason in the answer, and
// the 100 MB restore's cost is measured.
func TestBoundsOnWhatAFullTokenAndTheNetworkCanSend(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, Token: fullToken,
		ExtraArgs: []string{"-api-token=" + fullToken, "-cluster-token=" + clusterToken}})
	leader := c.WaitLeader(t, 30*time.Second)
	var follower *clustertest.Agent
	for _, a := range c.Agents {
		if a != leader {
			follower = a
			break
		}
	}
	var (
		mu      sync.Mutex
		results []string
	)
	record := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, fmt.Sprintf(format, args...))
	}

	// Connections that send nothing, or too slowly, are closed by the
	// server; they are watched side by side while the rest goes on.
	var wg sync.WaitGroup
	watchClosed := func(what, addr string, within time.Duration, start func(net.Conn) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Errorf("%s: dial %s: %v", what, addr, err)
				return
			}
			defer conn.Close()
			began := time.Now()
			if err := start(conn); err != nil {
				t.Errorf("%s: %v", what, err)
				return
			}
			// Read until the server closes; the deadline is the bound
			// plus a margin for a loaded machine.
			_ = conn.SetReadDeadline(time.Now().Add(within + 20*time.Second))
			_, err = io.Copy(io.Discard, conn)
			took := time.Since(began).Round(time.Second)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("%s: the server held the connection for %s (bound %s)", what, took, within)
				return
			}
			record("refused: %s: the server closed the connection after %s (bound %s)", what, took, within)
		}()
	}
	httpHost := "127.0.0.1:" + strconv.Itoa(follower.HTTPPort)
	watchClosed("a raw TCP connection to the Raft port that sends nothing", raftAddr(follower), 10*time.Second, func(net.Conn) error { return nil })
	watchClosed("a connection to the gRPC port that sends nothing", grpcAddr(follower), 10*time.Second, func(net.Conn) error { return nil })
	watchClosed("an HTTP request whose body never ends", httpHost, 30*time.Second, func(conn net.Conn) error {
		_, err := fmt.Fprintf(conn, "POST /api/v2/dag-runs HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", httpHost, fullToken)
		return err
	})
	watchClosed("a kept-alive HTTP connection left idle", httpHost, 60*time.Second, func(conn net.Conn) error {
		if _, err := fmt.Fprintf(conn, "GET /api/v2/health HTTP/1.1\r\nHost: %s\r\n\r\n", httpHost); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err
	})

	// A DAG of 100,000 steps, pushed, and a selector value of 900 KB.
	var steps strings.Builder
	steps.WriteString("name: enormous\nsteps:\n")
	for i := range 100000 {
		fmt.Fprintf(&steps, "  - name: s%d\n    command: \"true\"\n", i)
	}
	code, body, err := request(follower, fullToken, http.MethodPost, "/api/v2/dags", fmt.Sprintf(`{"files": [{"name": "enormous.yaml", "content": %q}]}`, steps.String()))
	if err != nil || code < 400 || code >= 500 || !strings.Contains(body, "limit") {
		t.Errorf("a pushed DAG of 100,000 steps (%d bytes): HTTP %d %v %.300s", steps.Len(), code, err, body)
	} else {
		record("refused: a pushed DAG of 100,000 steps: HTTP %d %s", code, strings.TrimSpace(body))
	}
	code, body, err = request(follower, fullToken, http.MethodPost, "/api/v2/dag-runs",
		fmt.Sprintf(`{"dag": {"name": "wide", "workerSelector": {"tier": %q}, "steps": [{"name": "s", "command": "true"}]}}`, strings.Repeat("v", 900<<10)))
	if err != nil || code != http.StatusBadRequest || !strings.Contains(body, "63 bytes") {
		t.Errorf("a selector value of 900 KB: HTTP %d %v %.300s", code, err, body)
	} else {
		record("refused: a selector value of 900 KB: HTTP %d %.200s", code, strings.TrimSpace(body))
	}

	// A restore of 100 MB, to a follower, which forwards what it checked
	// to the leader: neither holds it in memory.
	before := map[string]int64{}
	for _, a := range c.Agents {
		before[a.Name] = rss(t, a.Pid())
	}
	garbage := make([]byte, 100<<20)
	if _, err := rand.Read(garbage); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	resp, err := client.New(follower.HTTPAddr(), client.Options{Token: fullToken}).Send(ctx, http.MethodPost, "/api/v2/operator/snapshot", bytes.NewReader(garbage))
	if err != nil {
		t.Fatalf("restore of 100 MB: %v", err)
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	var growth []string
	for _, a := range c.Agents {
		grew := rss(t, a.Pid()) - before[a.Name]
		growth = append(growth, fmt.Sprintf("%s %+d MiB", a.Name, grew>>20))
		if grew >= 64<<20 {
			t.Errorf("a restore of 100 MB grew %s by %d MiB; the bound is 64 MiB", a.Name, grew>>20)
		}
	}
	if resp.StatusCode < 400 {
		t.Errorf("a restore of 100 MB of garbage: HTTP %d %s", resp.StatusCode, answer)
	}
	record("refused: a restore of 100 MB of garbage: HTTP %d %s; resident memory %s", resp.StatusCode, strings.TrimSpace(string(answer)), strings.Join(growth, ", "))

	wg.Wait()
	for _, line := range results {
		t.Log(line)
	}
}
