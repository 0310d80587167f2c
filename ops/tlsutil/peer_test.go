package tlsutil

import (
	"crypto/tls"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/identity"
)

type testCA struct {
	cert, key []byte
	file      string
}

func newTestCA(t *testing.T, name string) testCA {
	t.Helper()
	cert, key, err := CreateCA(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, cert, 0o644); err != nil {
		t.Fatal(err)
	}
	return testCA{cert, key, file}
}

// files writes a certificate the CA signs and returns its Files with the
// given CA file.
func (ca testCA) files(t *testing.T, options CertOptions, caFile string) Files {
	t.Helper()
	cert, key, err := CreateCert(ca.cert, ca.key, options)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := Files{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), CAFile: caFile}
	if err := os.WriteFile(f.CertFile, cert, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.KeyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// handshake serves one TLS connection on loopback with the worker's
// side and dials it with the server's side; it returns the dialling
// side's handshake error.
func handshake(t *testing.T, worker Files, server *tls.Config) error {
	t.Helper()
	workerTLS, err := ServerConfig(worker)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", workerTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		_ = conn.(*tls.Conn).Handshake()
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), server)
	if err != nil {
		return err
	}
	defer conn.Close()
	// TLS 1.3: the worker's verdict on this side's certificate comes
	// with the first read.
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	if err != nil && strings.Contains(err.Error(), "EOF") {
		return nil
	}
	return err
}

// A server reaches a worker's log service that serves with a certificate
// made for a client only, naming no address, as long as the cluster's CA
// signed it and it is valid; one from another CA, an expired one, or a
// server without a certificate of its own is refused.
func TestPeerCAConfigChecksTheChainNotTheName(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	other := newTestCA(t, "another CA")
	server, err := PeerCAConfig(ca.files(t, CertOptions{CommonName: "server1", Server: true, Client: true}, ca.file))
	if err != nil {
		t.Fatal(err)
	}
	worker := ca.files(t, CertOptions{CommonName: "worker1", Client: true}, ca.file)
	if err := handshake(t, worker, server); err != nil {
		t.Fatalf("a worker with a client certificate of the cluster's CA was refused: %v", err)
	}
	// The standard client configuration refuses the same worker: what
	// PeerCAConfig is for.
	standard, err := ClientConfig(ca.files(t, CertOptions{CommonName: "server1", Server: true, Client: true}, ca.file))
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, worker, standard); err == nil {
		t.Fatal("the standard client configuration took a client-only certificate without an address")
	}

	refused := map[string]struct {
		worker Files
		server Files
		want   string
	}{
		"a worker certificate from another CA": {
			other.files(t, CertOptions{CommonName: "intruder", Client: true}, ca.file),
			ca.files(t, CertOptions{CommonName: "server1", Client: true}, ca.file), `"intruder": x509: certificate signed by unknown authority`},
		"an expired worker certificate": {
			ca.files(t, CertOptions{CommonName: "old-worker", Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}, ca.file),
			ca.files(t, CertOptions{CommonName: "server1", Client: true}, ca.file), `"old-worker": x509: certificate has expired`},
		"a server without a certificate": {
			worker, Files{CAFile: ca.file}, "certificate required"},
		"a server certificate from another CA": {
			// (Go's client sends no certificate the worker's CA did not sign.)
			worker, other.files(t, CertOptions{CommonName: "server9", Client: true}, ca.file), "certificate required"},
	}
	for name, c := range refused {
		config, err := PeerCAConfig(c.server)
		if err != nil {
			t.Fatal(err)
		}
		err = handshake(t, c.worker, config)
		t.Logf("%s: %v", name, err)
		if err == nil {
			t.Errorf("%s: let through", name)
		} else if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not say %q", name, err, c.want)
		}
	}
}

// For one dial, a server expects the worker whose logs it wants: a
// certificate of the same CA naming another worker, a server, or no role
// at all is refused, and so is the right name from another CA; the
// worker itself, or a peer presenting this server's own certificate (a
// worker in the server's process), is taken.
func TestExpectPeerChecksTheWorkerIdentity(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	other := newTestCA(t, "another CA")
	worker := func(ca testCA, id string) Files {
		return ca.files(t, CertOptions{CommonName: id, Client: true, URIs: []*url.URL{identity.Identity{Role: identity.RoleWorker, Name: id}.URI()}}, ca.file)
	}
	serverFiles := ca.files(t, CertOptions{CommonName: "server1", Server: true, Client: true, URIs: []*url.URL{identity.Identity{Role: identity.RoleServer, Name: "server1"}.URI()}}, ca.file)
	base, err := PeerCAConfig(serverFiles)
	if err != nil {
		t.Fatal(err)
	}
	expectW1 := ExpectPeer(base, ExpectIdentity(identity.RoleWorker, "w1", base.Certificates))
	if err := handshake(t, worker(ca, "w1"), expectW1); err != nil {
		t.Fatalf("worker w1 was refused by a dial for w1: %v", err)
	}
	if err := handshake(t, serverFiles, expectW1); err != nil {
		t.Fatalf("a peer with this server's own certificate was refused: %v", err)
	}
	// The base configuration is left as it was: any worker of the CA.
	if err := handshake(t, worker(ca, "w2"), base); err != nil {
		t.Fatalf("PeerCAConfig itself changed: %v", err)
	}

	for name, c := range map[string]struct {
		peer Files
		want string
	}{
		"another worker of the CA": {worker(ca, "w2"), `"w2" is worker/w2, not the worker/w1 this connection is for`},
		"a server of the CA": {ca.files(t, CertOptions{CommonName: "server2", Server: true, Client: true,
			URIs: []*url.URL{identity.Identity{Role: identity.RoleServer, Name: "server2"}.URI()}}, ca.file), "is server/server2, not the worker/w1"},
		"a certificate without a role": {ca.files(t, CertOptions{CommonName: "w1", Client: true}, ca.file), "daguha tls cert create"},
		"w1 from another CA":           {worker(other, "w1"), "certificate signed by unknown authority"},
	} {
		err := handshake(t, c.peer, expectW1)
		t.Logf("%s: %v", name, err)
		if !identity.Enforced {
			continue
		}
		if err == nil {
			t.Errorf("%s: let through", name)
		} else if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not say %q", name, err, c.want)
		}
	}
}
