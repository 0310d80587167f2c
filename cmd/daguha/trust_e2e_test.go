package main

// Process-level tests of the trust boundaries between roles (issue #20):
// a worker's certificate, or plaintext without the cluster token, never
// reaches what only servers may do; a worker acts as itself only, on the
// runs it holds.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/fsm"
	"github.com/daguha/daguha/ops/tlsutil"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// dialGRPC connects to a server's gRPC port as the holder of files (a
// certificate, its key and the CA), or in plaintext when files is nil.
func dialGRPC(t *testing.T, a *clustertest.Agent, files *tlsutil.Files) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if files != nil {
		config, err := tlsutil.ClientConfig(*files)
		if err != nil {
			t.Fatal(err)
		}
		creds = credentials.NewTLS(config)
	}
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", a.GRPCPort), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// injectedRun is the Raft command an attacker would write: a run of `id`
// on any worker.
func injectedRun(t *testing.T, id string) []byte {
	t.Helper()
	command, err := fsm.Encode(fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{{
		Id: id, DagName: "injected", EnqueuedAtUnixNano: time.Now().UnixNano(),
		Dag: &daguhav1.DagSpec{Name: "injected", Steps: []*daguhav1.StepSpec{{Name: "step", Command: "id"}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return command
}

// serverOnlyCalls are the ClusterService calls an attacker tried with a
// worker's certificate, by full method name (invoked by name, so a
// method that becomes a stream is still tried).
func serverOnlyCalls(t *testing.T, victim string) map[string]struct{ req, resp any } {
	return map[string]struct{ req, resp any }{
		"/daguha.v1.ClusterService/Apply":              {&daguhav1.ApplyRequest{Command: injectedRun(t, "injected-run")}, &daguhav1.ApplyResponse{}},
		"/daguha.v1.ClusterService/TransferLeadership": {&daguhav1.TransferLeadershipRequest{Id: victim}, &daguhav1.TransferLeadershipResponse{}},
		"/daguha.v1.ClusterService/RemovePeer":         {&daguhav1.RemovePeerRequest{Id: victim}, &daguhav1.RemovePeerResponse{}},
		"/daguha.v1.ClusterService/RestoreSnapshot":    {&daguhav1.RestoreSnapshotChunk{Data: []byte("an archive")}, &daguhav1.RestoreSnapshotResponse{}},
		"/daguha.v1.ClusterService/WorkerHeartbeats":   {&daguhav1.WorkerHeartbeatsRequest{}, &daguhav1.WorkerHeartbeatsResponse{}},
	}
}

func invoke(conn *grpc.ClientConn, ctx context.Context, method string, req, resp any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return conn.Invoke(ctx, method, req, resp)
}

// raftDialer is the dialling half of a raft.StreamLayer, for sending one
// Raft RPC the way an attacker with a connection would.
type raftDialer struct {
	dial   func(addr string, timeout time.Duration) (net.Conn, error)
	closed chan struct{}
}

func (d *raftDialer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return d.dial(string(addr), timeout)
}
func (d *raftDialer) Accept() (net.Conn, error) { <-d.closed; return nil, net.ErrClosed }
func (d *raftDialer) Close() error              { close(d.closed); return nil }
func (d *raftDialer) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// sendTimeoutNow sends Raft's TimeoutNow (start an election at once) to a
// server's Raft port over connections dial makes.
func sendTimeoutNow(a *clustertest.Agent, dial func(addr string, timeout time.Duration) (net.Conn, error)) error {
	trans := raft.NewNetworkTransport(&raftDialer{dial: dial, closed: make(chan struct{})}, 1, 5*time.Second, io.Discard)
	defer trans.Close()
	var resp raft.TimeoutNowResponse
	return trans.TimeoutNow(raft.ServerID(a.Name), raft.ServerAddress(fmt.Sprintf("127.0.0.1:%d", a.RaftPort)),
		&raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("attacker"), Addr: []byte("127.0.0.1:1")}}, &resp)
}

func tlsDialer(t *testing.T, files tlsutil.Files) func(string, time.Duration) (net.Conn, error) {
	config, err := tlsutil.ClientConfig(files)
	if err != nil {
		t.Fatal(err)
	}
	return func(addr string, timeout time.Duration) (net.Conn, error) {
		c := config.Clone()
		c.ServerName = "127.0.0.1"
		return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", addr, c)
	}
}

func plainDialer(addr string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, timeout)
}

// leaderStays watches for d that every running server keeps naming
// leader; it returns what it saw otherwise.
func leaderStays(c *clustertest.Cluster, leader string, d time.Duration) (bool, string) {
	until := time.Now().Add(d)
	for time.Now().Before(until) {
		for _, a := range c.Running() {
			if h, err := a.Health(); err == nil && h.Leader != "" && h.Leader != leader {
				return false, fmt.Sprintf("%s names leader %s", a.Name, h.Leader)
			}
		}
		time.Sleep(100 * time.Millisecond) // sampling interval of the observation
	}
	return true, ""
}

// silentConnectionHeld opens a raw TCP connection to a server's Raft port
// that sends nothing, and returns how long the server held it.
func silentConnectionHeld(t *testing.T, a *clustertest.Agent) time.Duration {
	t.Helper()
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", a.RaftPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	began := time.Now()
	_ = conn.SetReadDeadline(began.Add(60 * time.Second))
	_, _ = io.Copy(io.Discard, conn) // a greeting, if any, then the close
	return time.Since(began)
}

func logSays(a *clustertest.Agent, texts ...string) bool {
	tail := a.Tail(2000)
	for _, text := range texts {
		if !strings.Contains(tail, text) {
			return false
		}
	}
	return true
}

// Under mutual TLS a worker's certificate, which every worker host holds,
// reaches none of what only servers may do: no Raft command, no
// leadership transfer, no peer removal, no snapshot restore, and no Raft
// connection (a TimeoutNow from it changes no leader). A server's
// certificate making the same calls shows they are real attacks.
func TestWorkerCertificateCannotActAsAServer(t *testing.T) {
	p := newPKI(t, "cluster CA")
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ArgsFor: p.serverTLSArgs})
	leader := c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents))
	follower := followerOf(c, leader)
	workerCert, workerKey := p.workerCert("attacker-worker")
	worker := tlsutil.Files{CertFile: workerCert, KeyFile: workerKey, CAFile: p.caFile}

	for _, target := range []*clustertest.Agent{leader, follower} {
		conn := dialGRPC(t, target, &worker)
		for method, call := range serverOnlyCalls(t, follower.Name) {
			err := invoke(conn, context.Background(), method, call.req, call.resp)
			if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "servers only") {
				t.Errorf("%s with a worker certificate on %s: %v, want PermissionDenied", method, target.Name, err)
			}
		}
		clustertest.WaitFor(t, 10*time.Second, target.Name+" to log the refusals", func() (bool, string) {
			return logSays(target, "gRPC call refused", "/daguha.v1.ClusterService/Apply", "daguha://daguha/worker/attacker-worker", "servers only"), target.Tail(5)
		})
	}
	if _, err := getRun(leader, "injected-run"); err == nil {
		t.Fatal("the run a worker's certificate wrote exists")
	}
	waitVoters(t, c, names(c.Agents))

	// The Raft port: the worker's certificate completes no connection, so
	// its TimeoutNow starts no election.
	if err := sendTimeoutNow(follower, tlsDialer(t, worker)); err == nil {
		t.Fatal("the Raft port answered a TimeoutNow from a worker's certificate")
	}
	if stays, seen := leaderStays(c, leader.Name, 5*time.Second); !stays {
		t.Fatalf("a worker's TimeoutNow changed the leader: %s", seen)
	}
	clustertest.WaitFor(t, 10*time.Second, follower.Name+" to log the refused Raft connection", func() (bool, string) {
		return logSays(follower, "Raft connection refused", "not a server: only servers speak Raft"), follower.Tail(5)
	})
	// A raw connection that says nothing is closed at the handshake
	// deadline.
	if held := silentConnectionHeld(t, follower); held > clusterHandshakeTimeout+5*time.Second {
		t.Errorf("a silent connection to the Raft port was held %s", held)
	}

	// The same calls with a server's certificate do what the attacker
	// wanted: the tests above would fail without the checks.
	serverCert, serverKey := p.serverCert("server9")
	server := tlsutil.Files{CertFile: serverCert, KeyFile: serverKey, CAFile: p.caFile}
	call := serverOnlyCalls(t, follower.Name)["/daguha.v1.ClusterService/Apply"]
	if err := invoke(dialGRPC(t, leader, &server), context.Background(), "/daguha.v1.ClusterService/Apply", call.req, call.resp); err != nil {
		t.Fatalf("Apply with a server certificate: %v", err)
	}
	if _, err := getRun(leader, "injected-run"); err != nil {
		t.Fatalf("the run a server's certificate wrote: %v", err)
	}
	moved := false
	for attempt := 0; attempt < 5 && !moved; attempt++ {
		if err := sendTimeoutNow(follower, tlsDialer(t, server)); err != nil {
			t.Logf("TimeoutNow with a server certificate: %v", err)
		}
		moved = clustertest.Eventually(5*time.Second, 100*time.Millisecond, func() bool {
			h, err := follower.Health()
			return err == nil && h.Leader != "" && h.Leader != leader.Name
		})
	}
	if !moved {
		t.Fatal("a TimeoutNow with a server certificate moved no leadership: the refusal above proves nothing")
	}
}

// clusterHandshakeTimeout is the Raft port's deadline (cluster.RaftHandshakeTimeout).
const clusterHandshakeTimeout = 10 * time.Second

// Certificates made before roles existed are refused, with the way to
// reissue them: a server will not start with one (nor with another
// node's), a worker will not start with one, and a call made with one is
// refused.
func TestRolelessCertificatesAreRefusedWithTheReissueCommand(t *testing.T) {
	p := newPKI(t, "cluster CA")
	oldCert, oldKey := p.issue("old-server", tlsutil.CertOptions{Server: true, Client: true, IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	otherNodeCert, otherNodeKey := p.serverCert("server7")
	c := clustertest.NewCluster(t, clustertest.ClusterOptions{Servers: 3, ArgsFor: func(i int) []string {
		switch i {
		case 1:
			return []string{"--coordinator.tls-cert=" + oldCert, "--coordinator.tls-key=" + oldKey, "--coordinator.tls-ca=" + p.caFile}
		case 2:
			return []string{"--coordinator.tls-cert=" + otherNodeCert, "--coordinator.tls-key=" + otherNodeKey, "--coordinator.tls-ca=" + p.caFile}
		}
		return p.serverTLSArgs(i)
	}})
	for i, want := range map[int]string{
		1: "carries no daguha role; reissue it with `daguha tls cert create -server -node NAME`",
		2: "is for daguha://daguha/server/server7, not for server \"server3\" (its -node); reissue it with `daguha tls cert create -server -node server3`",
	} {
		a := c.Agents[i]
		startProcess(t, a.Process)
		select {
		case <-a.Exited():
		case <-time.After(30 * time.Second):
			t.Fatalf("%s started with a certificate that is not its own server identity", a.Name)
		}
		if a.ExitCode() == 0 || !strings.Contains(a.Tail(20), want) {
			t.Errorf("%s exited %d without saying %q:\n%s", a.Name, a.ExitCode(), want, a.Tail(20))
		}
	}

	// A one-server cluster to call with the old worker certificate.
	good := c.Agents[0]
	good.SetArgs(withArg(good.Args(), "-bootstrap-expect", "1"))
	startProcess(t, good.Process)
	c.WaitLeader(t, 30*time.Second)
	oldWorkerCert, oldWorkerKey := p.issue("old-worker", tlsutil.CertOptions{Client: true})
	conn := dialGRPC(t, good, &tlsutil.Files{CertFile: oldWorkerCert, KeyFile: oldWorkerKey, CAFile: p.caFile})
	_, err := daguhav1.NewCoordinatorServiceClient(conn).Poll(context.Background(), &daguhav1.PollRequest{Worker: &daguhav1.WorkerInfo{Id: "old-worker", MaxActiveRuns: 1}})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "daguha tls cert create -server -node NAME` (servers) or `daguha tls cert create -client -worker-id ID` (workers)") {
		t.Fatalf("a poll with a role-less worker certificate: %v", err)
	}
	call := serverOnlyCalls(t, "server2")["/daguha.v1.ClusterService/Apply"]
	if err := invoke(conn, context.Background(), "/daguha.v1.ClusterService/Apply", call.req, call.resp); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "daguha tls cert create") {
		t.Fatalf("Apply with a role-less certificate: %v", err)
	}
	worker := startProcess(t, c.NewDaguWorker("old-worker", good, "--worker.insecure=false",
		"--worker.tls-cert="+oldWorkerCert, "--worker.tls-key="+oldWorkerKey, "--worker.tls-ca="+p.caFile))
	select {
	case <-worker.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("a worker started with a role-less certificate")
	}
	if !strings.Contains(worker.Tail(10), "carries no daguha role; reissue it with") {
		t.Fatalf("the worker did not say how to reissue its certificate:\n%s", worker.Tail(10))
	}
}

// workerSession is a test's own worker: a gRPC client with a worker's
// certificate, speaking the worker protocol by hand.
type workerSession struct {
	t      *testing.T
	id     string
	client daguhav1.CoordinatorServiceClient
	// logAddr is the step log address it registers.
	logAddr string
}

func newWorkerSession(t *testing.T, p *pki, a *clustertest.Agent, id string, labels ...string) *workerSession {
	cert, key := p.workerCert(id, labels...)
	conn := dialGRPC(t, a, &tlsutil.Files{CertFile: cert, KeyFile: key, CAFile: p.caFile})
	return &workerSession{t: t, id: id, client: daguhav1.NewCoordinatorServiceClient(conn)}
}

func (w *workerSession) info(id string, labels map[string]string) *daguhav1.WorkerInfo {
	return &daguhav1.WorkerInfo{Id: id, Labels: labels, MaxActiveRuns: 4, LogAddr: w.logAddr}
}

// take polls (as the given id and labels) until it is granted a run.
func (w *workerSession) take(id string, labels map[string]string) *daguhav1.Task {
	w.t.Helper()
	var task *daguhav1.Task
	clustertest.WaitFor(w.t, 30*time.Second, id+" to be granted a run", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := w.client.Poll(ctx, &daguhav1.PollRequest{Worker: w.info(id, labels), WaitMillis: 2000})
		if err != nil {
			return false, err.Error()
		}
		task = resp.GetTask()
		return task != nil, "no task"
	})
	return task
}

func refusedWith(err error, code codes.Code, text string) bool {
	return status.Code(err) == code && strings.Contains(err.Error(), text)
}

// A worker's certificate binds it: it cannot poll or heartbeat as another
// worker, claim a certified label its certificate does not vouch for, or
// report on, finish, watch or start children of a run it does not hold,
// directly or through a follower that forwards its calls. The worker
// that holds the run does all of it.
func TestWorkerCertificateBindsTheWorker(t *testing.T) {
	p := newPKI(t, "cluster CA")
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ArgsFor: func(i int) []string {
		return append(p.serverTLSArgs(i), "-certified-labels=tier", "-lease-ttl=120s")
	}})
	leader := c.WaitLeader(t, 30*time.Second)
	follower := followerOf(c, leader)
	ctx := context.Background()

	// The victim's run, with a child step, meant for tier=secure.
	var resp wire.Enqueued
	if code, err := leader.PostJSONTimeout("/api/v2/dag-runs", wire.EnqueueRequest{DagRunID: "secure-run",
		Yaml: "name: parent\nworkerSelector:\n  tier: secure\nsteps:\n  - name: child\n    run: child\n---\nname: child\nworkerSelector:\n  only: nobody\nsteps:\n  - name: s\n    command: \"true\"\n"},
		&resp, 30*time.Second); err != nil || code != 201 {
		t.Fatalf("enqueue: HTTP %d %v", code, err)
	}
	mustEnqueue(t, leader, "other-run", map[string]string{"team": "b"}, "true")

	attacker := newWorkerSession(t, p, follower, "attacker")
	// Polling as another worker, or claiming the certified label.
	_, err := attacker.client.Poll(ctx, &daguhav1.PollRequest{Worker: attacker.info("victim", map[string]string{"team": "b"})})
	if !refusedWith(err, codes.PermissionDenied, `worker id "victim" is not the id the caller's certificate proves ("attacker")`) {
		t.Errorf("poll as another worker: %v", err)
	}
	_, err = attacker.client.Heartbeat(ctx, &daguhav1.HeartbeatRequest{Worker: attacker.info("victim", nil)})
	if !refusedWith(err, codes.PermissionDenied, "is not the id the caller's certificate proves") {
		t.Errorf("heartbeat as another worker: %v", err)
	}
	_, err = attacker.client.Poll(ctx, &daguhav1.PollRequest{Worker: attacker.info("attacker", map[string]string{"tier": "secure"}), WaitMillis: 1000})
	if !refusedWith(err, codes.PermissionDenied, `certified label tier="secure"`) {
		t.Errorf("poll claiming the certified label: %v", err)
	}

	// The victim's certificate vouches for tier=secure: it gets the run
	// without claiming the label.
	victim := newWorkerSession(t, p, leader, "victim", "tier", "secure")
	held := victim.take("victim", nil)
	if held.GetRun().GetId() != "secure-run" {
		t.Fatalf("the victim was granted %s", held.GetRun().GetId())
	}
	token := held.GetLeaseToken()
	// The attacker holds a run of its own, whose token proves nothing of
	// the victim's. It registers a step log address on another host (a
	// fake log service there), which a server would dial when a reader
	// asks for the run's logs: the servers dial the host the worker
	// called from instead.
	fake, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	attacker.logAddr = fake.Addr().String()
	own := attacker.take("attacker", map[string]string{"team": "b"})
	code, body, err := stepLogText(follower, "other-run", "step")
	if err != nil || code == 200 {
		t.Errorf("the log of the attacker's run: HTTP %d %v %q", code, err, body)
	}
	t.Logf("the log of the attacker's run: HTTP %d %s", code, strings.TrimSpace(body))
	_ = fake.(*net.TCPListener).SetDeadline(time.Now().Add(time.Second))
	if conn, err := fake.Accept(); err == nil {
		conn.Close()
		t.Errorf("a server dialled the log address the worker chose (%s); it answered HTTP %d %q", attacker.logAddr, code, body)
	}

	step := &daguhav1.StepState{Name: "child", Status: daguhav1.StepStatus_STEP_STATUS_RUNNING}
	for _, target := range []*clustertest.Agent{follower, leader} {
		a := newWorkerSession(t, p, target, "attacker")
		if _, err := a.client.ReportStep(ctx, &daguhav1.ReportStepRequest{LeaseToken: token, Step: step}); !refusedWith(err, codes.PermissionDenied, `granted to worker "victim", not to the calling worker "attacker"`) {
			t.Errorf("ReportStep on the victim's run via %s: %v", target.Name, err)
		}
		report, err := a.client.Report(ctx, &daguhav1.ReportRequest{Items: []*daguhav1.ReportItem{{LeaseToken: token, Steps: []*daguhav1.StepState{step}}}})
		if err != nil || len(report.GetOutcomes()) != 1 || codes.Code(report.GetOutcomes()[0].GetCode()) != codes.PermissionDenied {
			t.Errorf("Report on the victim's run via %s: %v %v", target.Name, report, err)
		}
		if _, err := a.client.FinishRun(ctx, &daguhav1.FinishRunRequest{LeaseToken: token, Status: daguhav1.RunStatus_RUN_STATUS_FAILED}); !refusedWith(err, codes.PermissionDenied, "not to the calling worker") {
			t.Errorf("FinishRun of the victim's run via %s: %v", target.Name, err)
		}
		if _, err := a.client.EnqueueChild(ctx, &daguhav1.EnqueueChildRequest{LeaseToken: token, StepName: "child"}); !refusedWith(err, codes.PermissionDenied, "not to the calling worker") {
			t.Errorf("EnqueueChild under the victim's run via %s: %v", target.Name, err)
		}
		for name, req := range map[string]*daguhav1.WatchRunRequest{
			"with the victim's token": {RunId: "secure-run", LeaseToken: token},
			"with its own token":      {RunId: "secure-run", LeaseToken: own.GetLeaseToken()},
			"with no token":           {RunId: "secure-run"},
		} {
			if _, err := a.client.WatchRun(ctx, req); status.Code(err) != codes.PermissionDenied {
				t.Errorf("WatchRun of the victim's run %s via %s: %v", name, target.Name, err)
			}
		}
		// A heartbeat naming the victim's lease renews nothing.
		hb, err := a.client.Heartbeat(ctx, &daguhav1.HeartbeatRequest{Worker: a.info("attacker", map[string]string{"team": "b"}),
			Leases: []*daguhav1.HeldLease{{RunId: "secure-run", LeaseToken: token}}})
		if err != nil || len(hb.GetLostRunIds()) != 1 || hb.GetLostRunIds()[0] != "secure-run" {
			t.Errorf("heartbeat with the victim's lease via %s: %v %v", target.Name, hb, err)
		}
	}
	clustertest.WaitFor(t, 10*time.Second, "the leader to log the refusals", func() (bool, string) {
		return logSays(leader, "a worker used another worker's lease; refused", "worker call refused"), leader.Tail(5)
	})

	// The victim, through a follower, does all of it on its own run.
	victim = newWorkerSession(t, p, follower, "victim", "tier", "secure")
	if _, err := victim.client.ReportStep(ctx, &daguhav1.ReportStepRequest{LeaseToken: token, Step: step}); err != nil {
		t.Fatalf("the holder's ReportStep: %v", err)
	}
	child, err := victim.client.EnqueueChild(ctx, &daguhav1.EnqueueChildRequest{LeaseToken: token, StepName: "child"})
	if err != nil || child.GetChildRunId() == "" {
		t.Fatalf("the holder's EnqueueChild: %v %v", child, err)
	}
	clustertest.WaitFor(t, 30*time.Second, "the holder to watch its child", func() (bool, string) {
		watched, err := victim.client.WatchRun(ctx, &daguhav1.WatchRunRequest{RunId: child.GetChildRunId(), LeaseToken: token, WaitMillis: 1000})
		return err == nil && watched.GetRun().GetParentDagRunId() == "secure-run", fmt.Sprintf("%v %v", watched, err)
	})
	// A worker from before leases went with WatchRun sends none: its
	// certificate proves it holds the parent.
	if watched, err := victim.client.WatchRun(ctx, &daguhav1.WatchRunRequest{RunId: child.GetChildRunId(), WaitMillis: 100}); err != nil || watched.GetRun() == nil {
		t.Errorf("the holder's WatchRun without a lease token: %v %v", watched, err)
	}
	if _, err := attacker.client.WatchRun(ctx, &daguhav1.WatchRunRequest{RunId: child.GetChildRunId()}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("the attacker watched the victim's child without a token: %v", err)
	}
	if _, err := attacker.client.WatchRun(ctx, &daguhav1.WatchRunRequest{RunId: child.GetChildRunId(), LeaseToken: own.GetLeaseToken()}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("the attacker watched the victim's child: %v", err)
	}
	if _, err := victim.client.FinishRun(ctx, &daguhav1.FinishRunRequest{LeaseToken: token, Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED}); err != nil {
		t.Fatalf("the holder's FinishRun: %v", err)
	}
	run := waitFinished(t, c, []string{"secure-run"}, "succeeded", 30*time.Second)["secure-run"]
	if run.WorkerID != "victim" {
		t.Fatalf("the run: %+v", run)
	}
}

// Without TLS, a cluster with a cluster token refuses server-to-server
// calls from anyone without it (a plaintext Apply), and its Raft port
// refuses connections that do not answer the token's challenge; servers
// and plaintext workers work as before, and the token appears in no log.
func TestClusterTokenGuardsThePlaintextCluster(t *testing.T) {
	token := fmt.Sprintf("cluster-token-%d", time.Now().UnixNano())
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, Token: "api-token",
		ExtraArgs: []string{"-cluster-token=" + token, "-api-token=api-token"}})
	leader := c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents))
	follower := followerOf(c, leader)

	plain := dialGRPC(t, leader, nil)
	call := serverOnlyCalls(t, follower.Name)["/daguha.v1.ClusterService/Apply"]
	for name, ctx := range map[string]context.Context{
		"without the token":   context.Background(),
		"with a wrong token":  metadata.AppendToOutgoingContext(context.Background(), "x-daguha-cluster-token", "guessed"),
		"with the API token":  metadata.AppendToOutgoingContext(context.Background(), "x-daguha-cluster-token", "api-token"),
		"as a forwarded call": metadata.AppendToOutgoingContext(context.Background(), "x-daguha-forwarded", "1"),
	} {
		if err := invoke(plain, ctx, "/daguha.v1.ClusterService/Apply", call.req, call.resp); !refusedWith(err, codes.Unauthenticated, "cluster token") {
			t.Errorf("a plaintext Apply %s: %v", name, err)
		}
	}
	if _, err := getRun(leader, "injected-run"); err == nil {
		t.Fatal("the run a plaintext Apply wrote exists")
	}
	clustertest.WaitFor(t, 10*time.Second, "the leader to log the refusal", func() (bool, string) {
		return logSays(leader, "gRPC call refused", "the call did not carry"), leader.Tail(5)
	})

	// The Raft port: a TimeoutNow without the challenge answered.
	if err := sendTimeoutNow(follower, plainDialer); err == nil {
		t.Fatal("the Raft port answered a TimeoutNow without the cluster token")
	}
	if stays, seen := leaderStays(c, leader.Name, 5*time.Second); !stays {
		t.Fatalf("a TimeoutNow without the token changed the leader: %s", seen)
	}
	clustertest.WaitFor(t, 10*time.Second, follower.Name+" to log the refused Raft connection", func() (bool, string) {
		return logSays(follower, "Raft connection refused", "cluster token challenge"), follower.Tail(5)
	})
	if held := silentConnectionHeld(t, follower); held > clusterHandshakeTimeout+5*time.Second {
		t.Errorf("a silent connection to the Raft port was held %s", held)
	}

	// With the token the same Apply is taken: the refusals above are of
	// a real attack.
	if err := invoke(plain, metadata.AppendToOutgoingContext(context.Background(), "x-daguha-cluster-token", token),
		"/daguha.v1.ClusterService/Apply", call.req, call.resp); err != nil {
		t.Fatalf("Apply with the cluster token: %v", err)
	}

	// Plaintext workers, which hold no token, run parents and children
	// (polls, reports, EnqueueChild, WatchRun) through a follower.
	startProcess(t, c.NewDaguWorker("plain-worker", follower, "--worker.labels=team=a"))
	if code, err := follower.PostJSONTimeout("/api/v2/dag-runs", wire.EnqueueRequest{DagRunID: "parent-run",
		Yaml: "name: parent\nworkerSelector:\n  team: a\nsteps:\n  - name: child\n    run: child\n---\nname: child\nworkerSelector:\n  team: a\nsteps:\n  - name: s\n    command: echo child ran\n"},
		&wire.Enqueued{}, 30*time.Second); err != nil || code != 201 {
		t.Fatalf("enqueue: HTTP %d %v", code, err)
	}
	waitFinished(t, c, []string{"parent-run"}, "succeeded", 60*time.Second)

	for _, proc := range processes(c) {
		for _, line := range strings.Split(proc.Tail(100000), "\n") {
			if strings.Contains(line, token) && !strings.HasPrefix(line, "=== start") {
				t.Errorf("%s logged the cluster token: %s", proc.Name, line)
			}
		}
	}
}

// A server refuses to start with API tokens but neither TLS nor a cluster
// token: its tokens would guard the HTTP API while anyone could write
// through the gRPC and Raft ports.
func TestAPITokensWithoutTLSOrClusterTokenRefuseToStart(t *testing.T) {
	c := clustertest.NewCluster(t, clustertest.ClusterOptions{Servers: 1, ExtraArgs: []string{"-api-token=only-the-api"}})
	a := c.Agents[0]
	startProcess(t, a.Process)
	select {
	case <-a.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("the server started with API tokens and open gRPC and Raft ports")
	}
	if a.ExitCode() == 0 || !strings.Contains(a.Tail(10), "API tokens are set, but without TLS and without a cluster token") ||
		!strings.Contains(a.Tail(10), "-cluster-token") {
		t.Fatalf("exit %d:\n%s", a.ExitCode(), a.Tail(10))
	}
	// Dev mode stays without set-up.
	dev := clustertest.NewProcess(t, "dev", t.TempDir(), clustertest.BuildBinary(t), "agent", "-dev", "-api-token=dev-token",
		"-http-port=0", "-grpc-port=0", "-raft-port=0", "-gossip-port=0")
	startProcess(t, dev)
	clustertest.WaitFor(t, 30*time.Second, "dev mode to start", func() (bool, string) {
		return strings.Contains(dev.Tail(50), "agent started"), dev.Tail(5)
	})
}

// Dev mode under TLS runs its worker with a worker certificate of its
// own, and refuses to start without one (a server's certificate may not
// act as a worker).
func TestDevModeUnderTLSNeedsAWorkerCertificate(t *testing.T) {
	p := newPKI(t, "dev CA")
	serverCert, serverKey := p.serverCert("dev1")
	workerCert, workerKey := p.workerCert("dev-worker")
	ports := clustertest.FreePorts(t, 4)
	args := []string{"agent", "-dev", "-node=dev1", "-http-port=" + strconv.Itoa(ports[0]), "-grpc-port=" + strconv.Itoa(ports[1]),
		"-raft-port=" + strconv.Itoa(ports[2]), "-gossip-port=" + strconv.Itoa(ports[3]),
		"--coordinator.tls-cert=" + serverCert, "--coordinator.tls-key=" + serverKey, "--coordinator.tls-ca=" + p.caFile}
	bin := clustertest.BuildBinary(t)
	refused := startProcess(t, clustertest.NewProcess(t, "dev-without", t.TempDir(), bin, args...))
	select {
	case <-refused.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("dev mode under TLS started without a worker certificate")
	}
	if !strings.Contains(refused.Tail(5), "dev mode with TLS: its worker needs a worker certificate") {
		t.Fatalf("dev mode did not say what it needs:\n%s", refused.Tail(5))
	}
	startProcess(t, clustertest.NewProcess(t, "dev-with", t.TempDir(), bin, append(args, "--worker.tls-cert="+workerCert, "--worker.tls-key="+workerKey)...))
	dev := &clustertest.Agent{Name: "dev1", HTTPPort: ports[0]}
	clustertest.WaitFor(t, 30*time.Second, "dev mode to lead", func() (bool, string) {
		h, err := dev.Health()
		return err == nil && h.Role == "leader", fmt.Sprintf("%+v %v", h, err)
	})
	mustEnqueue(t, dev, "dev-run", nil, "echo dev")
	clustertest.WaitFor(t, 30*time.Second, "the dev worker to run it", func() (bool, string) {
		run, err := getRun(dev, "dev-run")
		return err == nil && run.Status == "succeeded" && run.WorkerID == "dev-worker", fmt.Sprintf("%+v %v", run, err)
	})
}
