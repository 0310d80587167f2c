package main

// Process-level tests of who may read a worker's step logs (#20): only a
// server, proven by its certificate under TLS and by the attempt's log
// ticket always; and a server trusts a log only from the worker that ran
// the run. Built with -tags daguha_trust_off (the security suite's
// deliberately broken build, used for both this test binary and the
// daguha it starts), the same tests assert that each attack succeeds.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/dispatch/logticket"
	"github.com/daguha/daguha/ops/tlsutil"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// useTrustBuild makes the processes of the test the build this test
// binary is: the broken one (tag daguha_trust_off) when its checks are
// off, so the attacks below are tried against a daguha without them.
func useTrustBuild(t *testing.T) {
	t.Helper()
	if identity.Enforced || os.Getenv("DAGUHA_BIN") != "" {
		return
	}
	bin, err := clustertest.BuildVariant("daguha_trust_off", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DAGUHA_BIN", bin)
}

var (
	stepLogLine   = regexp.MustCompile(`msg="serving step logs".* addr=(\S+) listen=(\S+)`)
	workerURIHost = regexp.MustCompile(`^127\.0\.0\.1:\d+$`)
)

// workerLogAddr is where a worker process serves its step logs: the
// address it tells the cluster and the one it listens on.
func workerLogAddr(t *testing.T, worker *clustertest.Process) (advertised, listening string) {
	t.Helper()
	clustertest.WaitFor(t, 30*time.Second, worker.Name+" to serve its step logs", func() (bool, string) {
		m := stepLogLine.FindStringSubmatch(worker.Tail(200))
		if m == nil {
			return false, worker.Tail(5)
		}
		advertised, listening = m[1], m[2]
		return true, ""
	})
	return advertised, listening
}

// readStepLog calls a worker's log service directly, as an attacker on
// the network would, and returns the log or the refusal.
func readStepLog(addr string, creds credentials.TransportCredentials, req *daguhav1.StepLogRequest) (string, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := daguhav1.NewWorkerLogServiceClient(conn).StepLog(ctx, req)
	if err != nil {
		return "", err
	}
	var data []byte
	for {
		chunk, err := stream.Recv()
		if err == io.EOF {
			return string(data), nil
		}
		if err != nil {
			return "", err
		}
		data = append(data, chunk.GetData()...)
	}
}

// expectRefused checks a direct read: refused with the reason, or, in the
// broken build, served.
func expectRefused(t *testing.T, what string, log string, err error, code codes.Code, reason, served string) {
	t.Helper()
	t.Logf("%s: %q, %v", what, log, err)
	if !identity.Enforced {
		if err != nil || !strings.Contains(log, served) {
			t.Errorf("%s: without the checks the attack should succeed; got %q, %v", what, log, err)
		}
		return
	}
	if status.Code(err) != code || !strings.Contains(err.Error(), reason) {
		t.Errorf("%s: got %q, %v; want %s saying %q", what, log, err, code, reason)
	}
	if strings.Contains(log, served) {
		t.Errorf("%s: the log was served", what)
	}
}

// fakeLogService is an attacker's step log service: it answers every
// request with a made-up log and records what it was sent.
type fakeLogService struct {
	daguhav1.UnimplementedWorkerLogServiceServer
	mu       sync.Mutex
	requests []*daguhav1.StepLogRequest
}

func (f *fakeLogService) StepLog(req *daguhav1.StepLogRequest, stream grpc.ServerStreamingServer[daguhav1.StepLogChunk]) error {
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	return stream.Send(&daguhav1.StepLogChunk{Data: []byte("FAKE LOG from an impostor\n")})
}

func (f *fakeLogService) received() []*daguhav1.StepLogRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*daguhav1.StepLogRequest(nil), f.requests...)
}

// Under mutual TLS: the step log comes through the leader and a follower
// (API and `daguha logs`); the worker's log service, listening at the
// address it reaches the servers from, refuses another worker's
// certificate even with the right ticket, and a server's without the
// ticket; a server does not take a log from a service that holds a
// certificate of the CA naming another worker, and sends it nothing.
func TestStepLogsUnderMutualTLSTrustOnlyServersAndTheRunsWorker(t *testing.T) {
	useTrustBuild(t)
	p := newPKI(t, "cluster CA")
	signingKey := "step-log-test-signing-key-0123456789"
	serverFiles := map[int]tlsutil.Files{}
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ArgsFor: func(i int) []string {
		cert, key := p.serverCert(fmt.Sprintf("server%d", i+1))
		serverFiles[i] = tlsutil.Files{CertFile: cert, KeyFile: key, CAFile: p.caFile}
		return []string{"--coordinator.tls-cert=" + cert, "--coordinator.tls-key=" + key, "--coordinator.tls-ca=" + p.caFile,
			"--coordinator.signing-key=" + signingKey}
	}})
	leader := c.WaitLeader(t, 30*time.Second)
	follower := followerOf(c, leader)
	workerCert, workerKey := p.workerCert("log-worker")
	worker := startProcess(t, c.NewDaguWorker("log-worker", follower,
		"--worker.insecure=false", "--worker.tls-cert="+workerCert, "--worker.tls-key="+workerKey, "--worker.tls-ca="+p.caFile))
	mustEnqueue(t, leader, "tls-log-run", nil, "echo the real log of tls-log-run")
	if run := waitFinished(t, c, []string{"tls-log-run"}, "succeeded", 60*time.Second)["tls-log-run"]; run.WorkerID != "log-worker" {
		t.Fatalf("the run: %+v", run)
	}
	const real = "the real log of tls-log-run"
	for _, a := range []*clustertest.Agent{leader, follower} {
		code, body, err := stepLogText(a, "tls-log-run", "step")
		if err != nil || code != http.StatusOK || !strings.Contains(body, real) {
			t.Fatalf("step log through %s: HTTP %d, %v, %q", a.Name, code, err, body)
		}
	}
	if log := fetchLog(t, follower, "tls-log-run", "step"); !strings.Contains(log, real) {
		t.Fatalf("daguha logs through a follower: %q", log)
	}

	addr, listening := workerLogAddr(t, worker)
	if !workerURIHost.MatchString(listening) || listening != addr {
		t.Errorf("the worker, not told where, listens for log requests at %s (advertising %s); want the loopback address it reaches the servers from", listening, addr)
	}
	ticket := logticket.Sign([]byte(signingKey), "tls-log-run", 1, "log-worker")
	creds := func(f tlsutil.Files) credentials.TransportCredentials {
		// An attacker does not care who the worker is: only the chain.
		config, err := tlsutil.PeerCAConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		return credentials.NewTLS(config)
	}
	intruderCert, intruderKey := p.workerCert("intruder")
	intruder := tlsutil.Files{CertFile: intruderCert, KeyFile: intruderKey, CAFile: p.caFile}
	withTicket := &daguhav1.StepLogRequest{RunId: "tls-log-run", StepName: "step", Attempt: 1, LogTickets: []string{ticket}}
	log, err := readStepLog(addr, creds(intruder), withTicket)
	expectRefused(t, "another worker's certificate, with the ticket", log, err, codes.PermissionDenied, "served to the cluster's servers only", real)
	log, err = readStepLog(addr, creds(serverFiles[0]), &daguhav1.StepLogRequest{RunId: "tls-log-run", StepName: "step", Attempt: 1})
	expectRefused(t, "a server's certificate without the ticket", log, err, codes.PermissionDenied, "carries no log ticket", real)
	// Both together are what a server brings: served.
	if log, err := readStepLog(addr, creds(serverFiles[0]), withTicket); err != nil || !strings.Contains(log, real) {
		t.Fatalf("a server's certificate with the ticket: %q, %v", log, err)
	}
	if identity.Enforced {
		if tail := worker.Tail(100); !strings.Contains(tail, "the caller is not a server") || !strings.Contains(tail, `is worker/intruder, not a server`) {
			t.Errorf("the worker did not log the refusal of the intruder:\n%s", tail)
		}
	}
	if strings.Contains(worker.Tail(1000), ticket) {
		t.Error("the worker's log shows the ticket")
	}

	// The worker dies; an impostor with a certificate of the CA naming
	// another worker takes its address.
	worker.Kill()
	intruderPair, err := tls.LoadX509KeyPair(intruderCert, intruderKey)
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeLogService{}
	fakeServer := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{intruderPair}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12})))
	daguhav1.RegisterWorkerLogServiceServer(fakeServer, fake)
	var ln net.Listener
	clustertest.WaitFor(t, 10*time.Second, "the impostor to take the worker's address", func() (bool, string) {
		ln, err = net.Listen("tcp", addr)
		return err == nil, fmt.Sprint(err)
	})
	go func() { _ = fakeServer.Serve(ln) }()
	defer fakeServer.Stop()
	for _, a := range []*clustertest.Agent{leader, follower} {
		code, body, err := stepLogText(a, "tls-log-run", "step")
		t.Logf("through %s, with an impostor at the worker's address: HTTP %d, %v, %q", a.Name, code, err, body)
		if err != nil {
			t.Fatal(err)
		}
		if !identity.Enforced {
			if code != http.StatusOK || !strings.Contains(body, "FAKE LOG") {
				t.Errorf("without the checks the server should take the impostor's log; got HTTP %d %q", code, body)
			}
			continue
		}
		if code == http.StatusOK || strings.Contains(body, "FAKE LOG") || !strings.Contains(body, "not the worker/log-worker this connection is for") {
			t.Errorf("through %s: HTTP %d %q; want an error saying the certificate is not worker/log-worker", a.Name, code, body)
		}
		if !strings.Contains(a.Tail(200), "step log not fetched from the run's worker") {
			t.Errorf("%s did not log why it refused the impostor", a.Name)
		}
	}
	if identity.Enforced && len(fake.received()) > 0 {
		t.Errorf("the impostor was sent %d requests (with their tickets)", len(fake.received()))
	}
}

// Without TLS, the log ticket is what guards a worker's logs: a direct
// request without it, with a made-up one or with the ticket of another
// worker's attempt is refused, and the worker says so; the ticket a
// server computes is served, and `daguha logs` works through the leader
// and a follower.
func TestStepLogTicketsWithoutTLS(t *testing.T) {
	useTrustBuild(t)
	signingKey := "step-log-plain-signing-key-0123456789"
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ExtraArgs: []string{"--coordinator.signing-key=" + signingKey}})
	leader := c.WaitLeader(t, 30*time.Second)
	follower := followerOf(c, leader)
	worker := startProcess(t, c.NewDaguWorker("plain-log-worker", follower))
	mustEnqueue(t, leader, "plain-log-run", nil, "echo the real log of plain-log-run")
	waitFinished(t, c, []string{"plain-log-run"}, "succeeded", 60*time.Second)
	const real = "the real log of plain-log-run"
	for _, a := range []*clustertest.Agent{leader, follower} {
		if log := fetchLog(t, a, "plain-log-run", "step"); !strings.Contains(log, real) {
			t.Fatalf("daguha logs through %s: %q", a.Name, log)
		}
	}

	addr, listening := workerLogAddr(t, worker)
	if !workerURIHost.MatchString(listening) {
		t.Errorf("the worker, not told where, listens for log requests at %s; want the loopback address it reaches the servers from", listening)
	}
	plain := insecure.NewCredentials()
	request := func(tickets ...string) *daguhav1.StepLogRequest {
		return &daguhav1.StepLogRequest{RunId: "plain-log-run", StepName: "step", Attempt: 1, LogTickets: tickets}
	}
	log, err := readStepLog(addr, plain, request())
	expectRefused(t, "no ticket", log, err, codes.PermissionDenied, "carries no log ticket", real)
	log, err = readStepLog(addr, plain, request(logticket.Sign([]byte("a guessed signing key"), "plain-log-run", 1, "plain-log-worker")))
	expectRefused(t, "a ticket under a guessed key", log, err, codes.PermissionDenied, "do not match run plain-log-run (attempt 1)", real)
	log, err = readStepLog(addr, plain, request(logticket.Sign([]byte(signingKey), "plain-log-run", 1, "another-worker")))
	expectRefused(t, "the ticket of another worker's attempt", log, err, codes.PermissionDenied, "do not match", real)
	// Latest attempt, asked without naming it: the same check.
	log, err = readStepLog(addr, plain, &daguhav1.StepLogRequest{RunId: "plain-log-run", StepName: "step"})
	expectRefused(t, "no ticket, latest attempt", log, err, codes.PermissionDenied, "carries no log ticket", real)
	if log, err := readStepLog(addr, plain, request(logticket.Sign([]byte(signingKey), "plain-log-run", 1, "plain-log-worker"))); err != nil || !strings.Contains(log, real) {
		t.Fatalf("the ticket a server computes: %q, %v", log, err)
	}
	if identity.Enforced && !strings.Contains(worker.Tail(100), "step log request refused") {
		t.Errorf("the worker did not log the refusals:\n%s", worker.Tail(20))
	}
}
