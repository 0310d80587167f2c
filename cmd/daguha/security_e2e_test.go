package main

// Process-level tests of TLS and gossip encryption, with certificates made
// in the test.

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/tlsutil"
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

func (p *pki) serverCert(name string) (string, string) {
	return p.issue(name, tlsutil.CertOptions{Server: true, Client: true, IPs: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}})
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
	serverCert, serverKey := good.serverCert("server")
	intruderCert, intruderKey := other.serverCert("intruder")
	c := clustertest.NewCluster(t, clustertest.ClusterOptions{
		Servers: 4, BootstrapExpect: 3,
		ArgsFor: func(i int) []string {
			cert, key := serverCert, serverKey
			if i == 3 {
				cert, key = intruderCert, intruderKey
			}
			return []string{"--coordinator.tls-cert=" + cert, "--coordinator.tls-key=" + key, "--coordinator.tls-ca=" + good.caFile}
		},
	})
	for _, a := range c.Agents[:3] {
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(c.Agents[:3]))

	workerCert, workerKey := good.issue("worker", tlsutil.CertOptions{Client: true})
	startProcess(t, c.NewDaguWorker("tls-worker", followerOf(c, leader),
		"--worker.insecure=false", "--worker.tls-cert="+workerCert, "--worker.tls-key="+workerKey, "--worker.tls-ca="+good.caFile))
	mustEnqueue(t, leader, "over-tls", nil, "echo secure")
	runs := waitFinished(t, c, []string{"over-tls"}, "succeeded", 60*time.Second)
	if runs["over-tls"].WorkerID != "tls-worker" {
		t.Fatalf("run over TLS: %+v", runs["over-tls"])
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
	foreignCert, foreignKey := other.issue("foreign-worker", tlsutil.CertOptions{Client: true})
	expiredCert, expiredKey := good.issue("expired-worker", tlsutil.CertOptions{Client: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
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
		var self selfBody
		if _, err := intruder.GetJSON("/api/v2/agent/self", &self); err == nil && (self.Raft.FSMIndex > 0 || self.Leader != "") {
			t.Fatalf("the intruder got Raft data or a leader: %+v", self)
		}
		time.Sleep(200 * time.Millisecond) // sampling interval of the observation
	}
	if !strings.Contains(leader.Tail(400), "not adding a server this leader cannot reach") {
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
		var body struct {
			Members []struct {
				Name   string `json:"name"`
				Status string `json:"status"`
			} `json:"members"`
		}
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
