package main

// Process-level tests of TLS and gossip encryption, with certificates made
// in the test.

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
	"github.com/daguha/daguha/ops/client"
	"github.com/daguha/daguha/ops/tlsutil"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// pki is a CA and the files of certificates it signed, in a test's dir.
type pki struct {
	t             *testing.T
	dir           string
	caCert, caKey []byte
	caFile        string
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	dir := t.TempDir()
	cert, key, err := tlsutil.CreateCA(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{t: t, dir: dir, caCert: cert, caKey: key, caFile: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(p.caFile, cert, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// issue writes a certificate and returns its cert and key file paths.
func (p *pki) issue(name string, options tlsutil.CertOptions) (string, string) {
	p.t.Helper()
	options.CommonName = name
	cert, key, err := tlsutil.CreateCert(p.caCert, p.caKey, options)
	if err != nil {
		p.t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	if err := os.WriteFile(certFile, cert, 0o644); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		p.t.Fatal(err)
	}
	return certFile, keyFile
}

// serverCert issues a server certificate for the node name, as `daguha
// tls cert create -server -node NAME` does.
func (p *pki) serverCert(node string) (string, string) {
	return p.issue(node, tlsutil.CertOptions{Server: true, Client: true, IPs: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		Identity: &identity.Identity{Role: identity.RoleServer, Name: node}})
}

// workerCert issues a worker certificate for the worker id, as `daguha
// tls cert create -client -worker-id ID` does; labels are the ones it
// vouches for (k, v, k, v...).
func (p *pki) workerCert(id string, labels ...string) (string, string) {
	worker := &identity.Identity{Role: identity.RoleWorker, Name: id}
	for i := 0; i+1 < len(labels); i += 2 {
		if worker.Labels == nil {
			worker.Labels = map[string]string{}
		}
		worker.Labels[labels[i]] = labels[i+1]
	}
	return p.issue(id, tlsutil.CertOptions{Client: true, Identity: worker})
}

// serverTLSArgs are the flags of server i of a cluster under mutual TLS,
// with its own certificate.
func (p *pki) serverTLSArgs(i int) []string {
	cert, key := p.serverCert(fmt.Sprintf("server%d", i+1))
	return []string{"--coordinator.tls-cert=" + cert, "--coordinator.tls-key=" + key, "--coordinator.tls-ca=" + p.caFile}
}

// tryCoordinator makes one call to a server's CoordinatorService with the
// given transport credentials and returns its error.
func tryCoordinator(addr string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = daguhav1.NewCoordinatorServiceClient(conn).Discover(ctx, &daguhav1.DiscoverRequest{})
	return err
}

// Acceptance 1 and 2: servers with mutual TLS form a cluster; a worker
// with a certificate from the cluster's CA connects and runs work; other
// CAs, expired certificates, no certificate and plaintext are refused; a
// server whose certificate another CA signed is never added to Raft.
func TestMutualTLS(t *testing.T) {
	good := newPKI(t, "cluster CA")
	other := newPKI(t, "another CA")
	intruderCert, intruderKey := other.serverCert("server4")
	c := clustertest.NewCluster(t, clustertest.ClusterOptions{
		Servers: 4, BootstrapExpect: 3,
		ArgsFor: func(i int) []string {
			if i == 3 {
				return []string{"--coordinator.tls-cert=" + intruderCert, "--coordinator.tls-key=" + intruderKey, "--coordinator.tls-ca=" + good.caFile}
			}
			return good.serverTLSArgs(i)
		},
	})
	for _, a := range c.Agents[:3] {
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents[:3]))

	workerCert, workerKey := good.workerCert("tls-worker")
	startProcess(t, c.NewDaguWorker("tls-worker", followerOf(c, leader),
		"--worker.insecure=false", "--worker.tls-cert="+workerCert, "--worker.tls-key="+workerKey, "--worker.tls-ca="+good.caFile))
	mustEnqueue(t, leader, "over-tls", nil, "echo secure")
	// A parent and its child: the worker starts the child (EnqueueChild)
	// and watches it (WatchRun) with its lease, through the follower.
	if code, err := leader.PostJSONTimeout("/api/v2/dag-runs", wire.EnqueueRequest{DagRunID: "parent-over-tls",
		Yaml: "name: parent\nsteps:\n  - name: child\n    run: child\n---\nname: child\nsteps:\n  - name: s\n    command: echo child\n"},
		&wire.Enqueued{}, 30*time.Second); err != nil || code != 201 {
		t.Fatalf("enqueue the parent: HTTP %d %v", code, err)
	}
	runs := waitFinished(t, c, []string{"over-tls", "parent-over-tls"}, "succeeded", 60*time.Second)
	if runs["over-tls"].WorkerID != "tls-worker" || runs["parent-over-tls"].WorkerID != "tls-worker" {
		t.Fatalf("runs over TLS: %+v", runs)
	}
	// The full step log comes from the worker's log service, which speaks
	// TLS too: through the leader and through a follower, with the
	// worker's certificate made for a client only (as the docs show).
	for _, a := range []*clustertest.Agent{leader, followerOf(c, leader)} {
		code, body, err := stepLogText(a, "over-tls", "step")
		if err != nil || code != http.StatusOK || !strings.Contains(body, "secure") {
			t.Fatalf("step log over TLS through %s: HTTP %d, %v, %q", a.Name, code, err, body)
		}
	}

	addr := fmt.Sprintf("127.0.0.1:%d", leader.GRPCPort)
	load := func(f tlsutil.Files) *tls.Config {
		config, err := tlsutil.ClientConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		return config
	}
	if err := tryCoordinator(addr, credentials.NewTLS(load(tlsutil.Files{CertFile: workerCert, KeyFile: workerKey, CAFile: good.caFile}))); err != nil {
		t.Fatalf("a client with the cluster CA's certificate was refused: %v", err)
	}
	foreignCert, foreignKey := other.workerCert("foreign-worker")
	expiredCert, expiredKey := good.issue("expired-worker", tlsutil.CertOptions{Client: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		Identity: &identity.Identity{Role: identity.RoleWorker, Name: "expired-worker"}})
	for name, creds := range map[string]credentials.TransportCredentials{
		"certificate from another CA": credentials.NewTLS(load(tlsutil.Files{CertFile: foreignCert, KeyFile: foreignKey, CAFile: good.caFile})),
		"expired certificate":         credentials.NewTLS(load(tlsutil.Files{CertFile: expiredCert, KeyFile: expiredKey, CAFile: good.caFile})),
		"no certificate":              credentials.NewTLS(load(tlsutil.Files{CAFile: good.caFile})),
		"plaintext":                   insecure.NewCredentials(),
	} {
		if err := tryCoordinator(addr, creds); err == nil {
			t.Errorf("a client with %s was let in", name)
		}
	}

	// The intruder joins gossip (no key here) but the leader cannot speak
	// to it over TLS, so it never becomes a voter nor gets any data.
	intruder := c.Agents[3]
	if err := intruder.Start(); err != nil {
		t.Fatal(err)
	}
	observeUntil := time.Now().Add(5 * time.Second)
	for time.Now().Before(observeUntil) {
		voters, err := votersOf(leader)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.Join(voters, ","), intruder.Name) {
			t.Fatalf("a server with another CA's certificate became a voter: %v", voters)
		}
		var self wire.Self
		if _, err := intruder.GetJSON("/api/v2/agent/self", &self); err == nil && (self.Raft.FSMIndex > 0 || self.Leader != "") {
			t.Fatalf("the intruder got Raft data or a leader: %+v", self)
		}
		time.Sleep(200 * time.Millisecond) // sampling interval of the observation
	}
	if !strings.Contains(leader.Tail(400), "cannot reach a gossip member to check that it is a server") {
		t.Fatalf("the leader did not say why it kept the intruder out")
	}
}

// Acceptance 3 (first half): a worker with another gossip key cannot join
// the pool; one with the cluster's key can.
func TestGossipEncryption(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	wrong := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ExtraArgs: []string{"-encrypt=" + key}})
	leader := c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents))
	startProcess(t, c.NewWorker("keyed", "-encrypt="+key))
	startProcess(t, c.NewWorker("stranger", "-encrypt="+wrong))
	memberNames := func() []string {
		var body wire.Members
		if _, err := leader.GetJSON("/api/v2/cluster/members", &body); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range body.Members {
			if m.Status == "alive" {
				out = append(out, m.Name)
			}
		}
		return out
	}
	clustertest.WaitFor(t, 30*time.Second, "the worker with the cluster's key to join", func() (bool, string) {
		return strings.Contains(strings.Join(memberNames(), ","), "keyed"), strings.Join(memberNames(), ",")
	})
	observeUntil := time.Now().Add(3 * time.Second)
	for time.Now().Before(observeUntil) {
		if list := memberNames(); strings.Contains(strings.Join(list, ","), "stranger") {
			t.Fatalf("a worker with another gossip key joined: %v", list)
		}
		time.Sleep(200 * time.Millisecond) // sampling interval of the observation
	}
}

// withArg returns args with every flag named name replaced by name=value.
func withArg(args []string, name, value string) []string {
	var out []string
	for _, a := range args {
		if !strings.HasPrefix(a, name+"=") {
			out = append(out, a)
		}
	}
	return append(out, name+"="+value)
}

// Acceptance 4: a token signed with the previous key is accepted while a
// rotation is under way (new key signs, old key verifies) and refused once
// the old key is retired.
func TestSigningKeyRotation(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 1, ExtraArgs: []string{"-lease-ttl=120s", "--coordinator.signing-key=alpha-signing-key-0001"}})
	server := c.WaitLeader(t, 30*time.Second)
	mustEnqueue(t, server, "rotating", map[string]string{"only": "test"}, "true")
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", server.GRPCPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := daguhav1.NewCoordinatorServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := client.Poll(ctx, &daguhav1.PollRequest{Worker: &daguhav1.WorkerInfo{Id: "test-worker", Labels: map[string]string{"only": "test"}, MaxActiveRuns: 1}, WaitMillis: 10000})
	if err != nil || resp.GetTask() == nil {
		t.Fatalf("poll: %v %v", resp, err)
	}
	oldToken := resp.GetTask().GetLeaseToken()
	// Reports name the run's one step ("step"): the cluster takes reports
	// of a run's own steps only. Which report was taken shows in the state
	// it recorded.
	report := func(state daguhav1.StepStatus) error {
		clustertest.WaitFor(t, 30*time.Second, "the restarted server to lead", func() (bool, string) {
			h, err := server.Health()
			return err == nil && h.Role == "leader", fmt.Sprintf("%+v %v", h, err)
		})
		var err error
		for attempt := 0; attempt < 50; attempt++ {
			_, err = client.ReportStep(ctx, &daguhav1.ReportStepRequest{LeaseToken: oldToken, Step: &daguhav1.StepState{Name: "step", Status: state}})
			if status.Code(err) != codes.Unavailable {
				return err
			}
			time.Sleep(100 * time.Millisecond) // the dispatcher starts just after leadership
		}
		return err
	}
	restartWith := func(keys string) {
		server.Stop()
		server.SetArgs(withArg(server.Args(), "--coordinator.signing-key", keys))
		if err := server.Start(); err != nil {
			t.Fatal(err)
		}
	}
	restartWith("beta-signing-key-0002,alpha-signing-key-0001")
	if err := report(daguhav1.StepStatus_STEP_STATUS_RUNNING); err != nil {
		t.Fatalf("a token signed with the previous key was refused during the rotation: %v", err)
	}
	restartWith("beta-signing-key-0002")
	if err := report(daguhav1.StepStatus_STEP_STATUS_SUCCEEDED); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a token signed with the retired key after the rotation: %v, want PermissionDenied", err)
	}
	run, err := getRun(server, "rotating")
	if err != nil || len(run.Steps) != 1 || run.Steps[0].Name != "step" || run.Steps[0].Status != "running" {
		t.Fatalf("the run's steps after the rotation: %+v %v", run, err)
	}
}

// Servers started with signing keys that cannot verify each other's
// tokens refuse to start, saying so, instead of forming a cluster whose
// every failover would refuse every worker.
func TestMismatchedSigningKeysRefuseToStart(t *testing.T) {
	c := clustertest.NewCluster(t, clustertest.ClusterOptions{Servers: 3, ArgsFor: func(i int) []string {
		if i == 2 {
			return []string{"--coordinator.signing-key=other-signing-key-0003"}
		}
		return []string{"--coordinator.signing-key=cluster-signing-key-0004"}
	}})
	for _, a := range c.Agents {
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
	}
	// The server with the odd key must refuse. The others refuse too when
	// they meet it, or, if it was gone before they met it, go on waiting:
	// either way no cluster forms.
	odd := c.Agents[2]
	select {
	case <-odd.Exited():
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not refuse to start; log:\n%s", odd.Name, odd.Tail(20))
	}
	if odd.ExitCode() == 0 || !strings.Contains(odd.Tail(50), "signing key mismatch with server") {
		t.Fatalf("%s exited %d without naming the mismatch; log:\n%s", odd.Name, odd.ExitCode(), odd.Tail(20))
	}
	refused := 1
	for _, a := range c.Agents[:2] {
		if !a.Running() {
			if a.ExitCode() == 0 || !strings.Contains(a.Tail(50), "signing key mismatch with server") {
				t.Fatalf("%s exited %d without naming the mismatch; log:\n%s", a.Name, a.ExitCode(), a.Tail(20))
			}
			refused++
			continue
		}
		if h, err := a.Health(); err == nil && h.Leader != "" {
			t.Fatalf("%s is in a cluster with a leader despite the mismatch: %+v", a.Name, h)
		}
	}
	for _, a := range c.Agents {
		if strings.Contains(a.Tail(500), "bootstrapped a cluster") {
			t.Fatalf("%s bootstrapped a cluster despite the mismatch", a.Name)
		}
	}
	t.Logf("%d of 3 servers refused to start; the rest are still waiting, leaderless", refused)
}

// Acceptance 3 (second half): the gossip key goes from A to B by three
// rolling restarts (A,B then B,A then B) while a client keeps writing;
// no write fails, and at the end a node with only A cannot join.
func TestGossipKeyRotationWithoutDowntime(t *testing.T) {
	keyA := base64.StdEncoding.EncodeToString([]byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
	keyB := base64.StdEncoding.EncodeToString([]byte("BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"))
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, ExtraArgs: []string{"-encrypt=" + keyA, "-forward-hold=15s"}})
	c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents))

	stop := make(chan struct{})
	failures := make(chan string, 1000)
	writes := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// As a client with the list of servers would, move to the next
			// server when one does not answer (it is being restarted);
			// downtime is when none takes the write.
			var lastErr string
			ok := false
			for attempt := 0; attempt < 3 && !ok; attempt++ {
				target := c.Agents[(i+attempt)%len(c.Agents)]
				var resp struct{}
				code, err := target.PostJSONTimeout("/api/v2/dag-runs", inlineRun(fmt.Sprintf("rotation-%d", i), nil, "true"), &resp, 30*time.Second)
				switch {
				case err == nil && (code == 201 || code == 200):
					ok = true
				case err == nil:
					lastErr = fmt.Sprintf("%s answered HTTP %d", target.Name, code)
					attempt = 3 // a server that answers with an error is downtime
				default:
					lastErr = fmt.Sprintf("%s: %v", target.Name, err)
				}
			}
			if !ok {
				failures <- fmt.Sprintf("write %d: %s", i, lastErr)
			}
			writes++
			time.Sleep(20 * time.Millisecond) // pace of the client
		}
	}()
	for _, keys := range []string{keyA + "," + keyB, keyB + "," + keyA, keyB} {
		for _, a := range c.Agents {
			a.Stop()
			a.SetArgs(withArg(a.Args(), "-encrypt", keys))
			if err := a.Start(); err != nil {
				t.Fatal(err)
			}
			c.WaitLeader(t, 30*time.Second)
			waitVoters(t, c, names(c.Agents))
		}
	}
	close(stop)
	<-done
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	t.Logf("%d writes during three rolling restarts", writes)

	startProcess(t, c.NewWorker("old-key", "-encrypt="+keyA))
	startProcess(t, c.NewWorker("new-key", "-encrypt="+keyB))
	clustertest.WaitFor(t, 30*time.Second, "the worker with key B to be healthy", func() (bool, string) {
		workers, err := workersOf(c.Agents[0], true)
		return err == nil && workers["new-key"].HealthStatus == "HEALTHY", fmt.Sprintf("%+v %v", workers, err)
	})
	var body wire.Members
	if _, err := c.Agents[0].GetJSON("/api/v2/cluster/members", &body); err != nil {
		t.Fatal(err)
	}
	for _, m := range body.Members {
		if m.Name == "old-key" {
			t.Fatal("a node with only the retired key joined the pool")
		}
	}
}

// Acceptance 6: a whole cluster with every secret configured (mutual TLS
// on gRPC and Raft, HTTPS, a gossip key, a signing key, API tokens) runs a
// DAG through a worker, answers the API, meets a bad token and bad input;
// then every log line and every API answer is searched for the key, the
// tokens and the private key bytes, and none is found.
func TestFullTLSClusterLeaksNoSecrets(t *testing.T) {
	p := newPKI(t, "cluster CA")
	workerCert, workerKey := p.workerCert("secure-worker")
	clusterToken := fmt.Sprintf("cluster-token-%d", time.Now().UnixNano())
	var serverKeys []string
	signingKey := fmt.Sprintf("signing-%d", time.Now().UnixNano())
	gossipKey := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%032d", time.Now().UnixNano())))
	token, readToken := fmt.Sprintf("token-%d", time.Now().UnixNano()), fmt.Sprintf("reader-%d", time.Now().UnixNano())
	https, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: p.caFile})
	if err != nil {
		t.Fatal(err)
	}
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{
		Servers: 3, HTTPS: https, Token: token,
		ExtraArgs: []string{
			"-encrypt=" + gossipKey, "--coordinator.signing-key=" + signingKey,
			"-api-token=" + token, "-api-read-token=" + readToken, "-cluster-token=" + clusterToken,
		},
		ArgsFor: func(i int) []string {
			node := fmt.Sprintf("server%d", i+1)
			cert, key := p.serverCert(node)
			serverKeys = append(serverKeys, key)
			return []string{"--coordinator.tls-cert=" + cert, "--coordinator.tls-key=" + key, "--coordinator.tls-ca=" + p.caFile,
				"-http-tls-cert=" + cert, "-http-tls-key=" + key, "-http-tls-ca=" + p.caFile}
		},
	})
	leader := c.WaitLeader(t, 30*time.Second)
	worker := startProcess(t, c.NewWorker("secure-worker", "-encrypt="+gossipKey, "--worker.insecure=false",
		"--worker.tls-cert="+workerCert, "--worker.tls-key="+workerKey, "--worker.tls-ca="+p.caFile))
	follower := followerOf(c, leader)
	mustEnqueue(t, follower, "secret-run", nil, "echo ran")
	waitFinished(t, c, []string{"secret-run"}, "succeeded", 60*time.Second)

	var answers []string
	record := func(a *clustertest.Agent, method, path, body string, token string, wantCode int) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := client.New(a.HTTPAddr(), client.Options{Token: token, TLS: https}).Send(ctx, method, path, strings.NewReader(body))
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantCode {
			t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, resp.StatusCode, wantCode, data)
		}
		answers = append(answers, string(data))
	}
	for _, a := range c.Agents {
		for _, path := range []string{"/api/v2/workers", "/api/v2/workers?stale=true", "/api/v2/agent/self", "/api/v2/cluster/members",
			"/api/v2/cluster/peers", "/api/v2/cluster/leader", "/api/v2/dag-runs", "/api/v2/dag-runs/secret-run",
			"/api/v2/dag-runs/secret-run/steps/step/log"} {
			record(a, "GET", path, "", token, 200)
		}
		record(a, "GET", "/api/v2/health", "", "", 200)
		record(a, "GET", "/api/v2/workers", "", "wrong-token", 401)
		record(a, "POST", "/api/v2/dag-runs", `{"dag": {"name": "x", "steps": []}}`, token, 400)
		record(a, "POST", "/api/v2/dag-runs", `{"dag": {"name": "x", "steps": [{"name": "a", "command": "true"}]}}`, readToken, 403)
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get(strings.Replace(leader.HTTPAddr(), "https://", "http://", 1) + "/api/v2/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("the HTTPS port answered plain HTTP")
		}
	}

	worker.Stop()
	for _, a := range c.Agents {
		a.Stop()
	}
	secrets := map[string]string{"signing key": signingKey, "gossip key": gossipKey, "API token": token, "read-only token": readToken, "cluster token": clusterToken,
		// Fetching the step log above sent it to the worker.
		"log ticket": logticket.Sign([]byte(signingKey), "secret-run", 1, "secure-worker")}
	for _, keyFile := range append(serverKeys, workerKey) {
		data, err := os.ReadFile(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			if len(line) > 20 && !strings.HasPrefix(line, "-----") {
				secrets[fmt.Sprintf("line %d of %s", i+1, filepath.Base(keyFile))] = line
			}
		}
	}
	// The logs are searched without their "=== start" lines: those are the
	// harness's own record of the command line it ran, not the server's.
	texts := map[string]string{}
	for i, answer := range answers {
		texts[fmt.Sprintf("API answer %d", i)] = answer
	}
	for _, proc := range append([]*clustertest.Process{worker}, processes(c)...) {
		data, err := os.ReadFile(proc.LogPath())
		if err != nil {
			t.Fatal(err)
		}
		var kept []string
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(line, "=== start") {
				kept = append(kept, line)
			}
		}
		texts[proc.Name+" log"] = strings.Join(kept, "\n")
	}
	lines := 0
	for where, text := range texts {
		lines += strings.Count(text, "\n") + 1
		for what, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("the %s appears in the %s", what, where)
			}
		}
	}
	t.Logf("searched %d API answers and %d log lines for %d secrets", len(answers), lines, len(secrets))
}

func processes(c *clustertest.Cluster) []*clustertest.Process {
	var out []*clustertest.Process
	for _, a := range c.Agents {
		out = append(out, a.Process)
	}
	return out
}

// stepLogText reads the full log of a run's step through a server, and
// returns the status and the log, or the error answer's body.
func stepLogText(a *clustertest.Agent, runID, step string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log, err := a.API().StepLog(ctx, runID, step, 0)
	var refused *client.Error
	if errors.As(err, &refused) {
		return refused.Status, string(refused.Body), nil
	}
	if err != nil {
		return 0, "", err
	}
	defer log.Close()
	data, err := io.ReadAll(log)
	return http.StatusOK, string(data), err
}
