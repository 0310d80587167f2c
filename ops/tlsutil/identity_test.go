package tlsutil

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/identity"
)

// A certificate made with an identity carries it, and a peer that
// presents it over mutual TLS is known by it; one made without is
// refused with the way to reissue it.
func TestCertificatesCarryTheirIdentity(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	worker := identity.Identity{Cluster: "prod", Role: identity.RoleWorker, Name: "gpu-1", Labels: map[string]string{"tier": "secure"}}
	withRole := ca.files(t, CertOptions{CommonName: "w", Client: true, Identity: &worker}, ca.file)
	got, err := Identity(withRole.CertFile)
	if err != nil || got.String() != worker.String() {
		t.Fatalf("Identity = %v, %v; want %s", got, err, worker)
	}
	roleless := ca.files(t, CertOptions{CommonName: "old", Client: true}, ca.file)
	if _, err := Identity(roleless.CertFile); !errors.Is(err, identity.ErrNoRole) {
		t.Fatalf("a certificate without a role: %v, want ErrNoRole", err)
	}

	server := identity.Identity{Role: identity.RoleServer, Name: "server1"}
	serverFiles := ca.files(t, CertOptions{CommonName: "s", Server: true, Client: true, IPs: []net.IP{net.ParseIP("127.0.0.1")}, Identity: &server}, ca.file)
	for name, c := range map[string]struct {
		client Files
		want   string
	}{
		"a worker": {withRole, worker.String()},
		"a server": {serverFiles, server.String()},
	} {
		serverTLS, err := ServerConfig(serverFiles)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS)
		if err != nil {
			t.Fatal(err)
		}
		seen := make(chan string, 1)
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				seen <- err.Error()
				return
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			tlsConn := conn.(*tls.Conn)
			if err := tlsConn.Handshake(); err != nil {
				seen <- err.Error()
				return
			}
			id, err := PeerIdentity(tlsConn.ConnectionState())
			if err != nil {
				seen <- err.Error()
				return
			}
			seen <- id.String()
		}()
		clientTLS, err := ClientConfig(c.client)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), clientTLS)
		if err != nil {
			t.Fatal(err)
		}
		if got := <-seen; got != c.want {
			t.Errorf("%s was seen as %q, want %q", name, got, c.want)
		}
		conn.Close()
		ln.Close()
	}
}
