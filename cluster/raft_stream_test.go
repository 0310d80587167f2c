package cluster

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/ops/tlsutil"
)

// logBuffer collects a stream's log for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func startStream(t *testing.T, tlsConfig *RaftTLS, tokens []string, timeout time.Duration) (*raftStream, *logBuffer) {
	t.Helper()
	log := &logBuffer{}
	s, err := newRaftStream("127.0.0.1:0", nil, tlsConfig, tokens, timeout, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, log
}

// accepted returns the next connection Raft would get from s, or nil
// when none comes within wait.
func accepted(s *raftStream, wait time.Duration) net.Conn {
	got := make(chan net.Conn, 1)
	go func() {
		conn, err := s.Accept()
		if err != nil {
			got <- nil
			return
		}
		got <- conn
	}()
	select {
	case conn := <-got:
		return conn
	case <-time.After(wait):
		return nil
	}
}

// exchange sends a request over a dialled connection and checks that the
// accepting side reads it whole, first byte included.
func exchange(t *testing.T, from net.Conn, to *raftStream) {
	t.Helper()
	if _, err := from.Write([]byte("raft request")); err != nil {
		t.Fatal(err)
	}
	conn := accepted(to, 5*time.Second)
	if conn == nil {
		t.Fatal("the listener never handed the connection to Raft")
	}
	defer conn.Close()
	got := make([]byte, len("raft request"))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "raft request" {
		t.Fatalf("Raft read %q, %v", got, err)
	}
}

// Servers that hold the cluster token (any of the listener's, for
// rotation) connect; one without it is refused at the handshake, and
// nothing it sends reaches Raft.
func TestRaftPortChallengesForTheClusterToken(t *testing.T) {
	if !identity.Enforced {
		t.Skip("the daguha_trust_off build leaves the Raft port open")
	}
	listener, log := startStream(t, nil, []string{"new-token", "old-token"}, 5*time.Second)
	for _, token := range []string{"new-token", "old-token"} {
		dialer, _ := startStream(t, nil, []string{token}, 5*time.Second)
		conn, err := dialer.Dial(raft.ServerAddress(listener.listener.Addr().String()), 5*time.Second)
		if err != nil {
			t.Fatalf("a server with %s was refused: %v", token, err)
		}
		exchange(t, conn, listener)
		conn.Close()
	}
	intruder, _ := startStream(t, nil, []string{"guessed-token"}, 5*time.Second)
	if conn, err := intruder.Dial(raft.ServerAddress(listener.listener.Addr().String()), 5*time.Second); err == nil {
		conn.Close()
		t.Fatal("a server with the wrong token connected")
	}
	if conn := accepted(listener, 500*time.Millisecond); conn != nil {
		t.Fatal("Raft got a connection that failed the challenge")
	}
	if !strings.Contains(log.String(), "answer to the cluster token challenge is wrong") {
		t.Fatalf("the refusal was not logged:\n%s", log)
	}
	for _, secret := range []string{"new-token", "old-token", "guessed-token"} {
		if strings.Contains(log.String(), secret) {
			t.Fatalf("the log shows a token:\n%s", log)
		}
	}
	// A plain Raft client (no token) speaking at once is refused too.
	raw, err := net.Dial("tcp", listener.listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_, _ = raw.Write(bytes.Repeat([]byte{3}, 200))
	if conn := accepted(listener, 500*time.Millisecond); conn != nil {
		t.Fatal("Raft got a connection without the challenge answered")
	}
}

// A connection that says nothing is closed at the deadline, whatever
// the port's mode: raw TCP cannot hold the Raft port's connections.
func TestRaftPortClosesSilentConnections(t *testing.T) {
	ca, server, _ := raftPKI(t)
	for name, s := range map[string]*raftStream{
		"open":  func() *raftStream { s, _ := startStream(t, nil, nil, 300*time.Millisecond); return s }(),
		"token": func() *raftStream { s, _ := startStream(t, nil, []string{"t"}, 300*time.Millisecond); return s }(),
		"TLS": func() *raftStream {
			s, _ := startStream(t, raftTLS(t, ca, server), nil, 300*time.Millisecond)
			return s
		}(),
	} {
		raw, err := net.Dial("tcp", s.listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
		began := time.Now()
		_, err = io.Copy(io.Discard, raw) // the challenge, if any, then EOF
		raw.Close()
		if err != nil || time.Since(began) > 3*time.Second {
			t.Errorf("%s: a silent connection was held %s (%v)", name, time.Since(began).Round(time.Millisecond), err)
		}
	}
	// An open port hands a connection that speaks at once to Raft whole.
	open, _ := startStream(t, nil, nil, time.Second)
	conn, err := open.Dial(raft.ServerAddress(open.listener.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exchange(t, conn, open)
}

// Under TLS only a certificate with a server identity reaches Raft, and
// a server dials only peers that prove one.
func TestRaftPortUnderTLSTakesServersOnly(t *testing.T) {
	if !identity.Enforced {
		t.Skip("the daguha_trust_off build lets any certificate the CA signed speak Raft")
	}
	ca, server, worker := raftPKI(t)
	roleless := ca.issue(t, "old", nil)
	listener, log := startStream(t, raftTLS(t, ca, server), nil, 5*time.Second)
	addr := raft.ServerAddress(listener.listener.Addr().String())

	peer, _ := startStream(t, raftTLS(t, ca, ca.issue(t, "server2", &identity.Identity{Role: identity.RoleServer, Name: "server2"})), nil, 5*time.Second)
	conn, err := peer.Dial(addr, 5*time.Second)
	if err != nil {
		t.Fatalf("a server was refused: %v", err)
	}
	exchange(t, conn, listener)
	conn.Close()

	for name, files := range map[string]tlsutil.Files{"a worker certificate": worker, "a certificate without a role": roleless} {
		config, err := tlsutil.ClientConfig(files)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", string(addr), config)
		if err == nil {
			_, _ = conn.Write([]byte{3}) // TimeoutNow's type byte
			conn.Close()
		}
		if got := accepted(listener, time.Second); got != nil {
			t.Fatalf("Raft got a connection from %s", name)
		}
	}
	for _, want := range []string{"not a server: only servers speak Raft", "carries no daguha role"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}

	// Dialling: a listener that presents a worker's certificate is not
	// spoken to.
	fake, _ := startStream(t, raftTLS(t, ca, worker), nil, 5*time.Second)
	if conn, err := peer.Dial(raft.ServerAddress(fake.listener.Addr().String()), 5*time.Second); err == nil {
		conn.Close()
		t.Fatal("a server dialled a Raft port that proved no server identity")
	} else if !strings.Contains(err.Error(), "not a server") {
		t.Fatalf("dialling a worker's port: %v", err)
	}
}

type raftCA struct {
	cert, key []byte
	file      string
	dir       string
}

// raftPKI makes a CA and a server and a worker certificate it signed.
func raftPKI(t *testing.T) (raftCA, tlsutil.Files, tlsutil.Files) {
	t.Helper()
	cert, key, err := tlsutil.CreateCA("raft test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca := raftCA{cert: cert, key: key, dir: t.TempDir()}
	ca.file = filepath.Join(ca.dir, "ca.pem")
	if err := os.WriteFile(ca.file, cert, 0o644); err != nil {
		t.Fatal(err)
	}
	server := ca.issue(t, "server1", &identity.Identity{Role: identity.RoleServer, Name: "server1"})
	worker := ca.issue(t, "worker1", &identity.Identity{Role: identity.RoleWorker, Name: "worker1"})
	return ca, server, worker
}

func (ca raftCA) issue(t *testing.T, name string, id *identity.Identity) tlsutil.Files {
	t.Helper()
	cert, key, err := tlsutil.CreateCert(ca.cert, ca.key, tlsutil.CertOptions{CommonName: name, Server: true, Client: true,
		IPs: []net.IP{net.ParseIP("127.0.0.1")}, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	f := tlsutil.Files{CertFile: filepath.Join(ca.dir, name+".pem"), KeyFile: filepath.Join(ca.dir, name+"-key.pem"), CAFile: ca.file}
	if err := os.WriteFile(f.CertFile, cert, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.KeyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func raftTLS(t *testing.T, _ raftCA, files tlsutil.Files) *RaftTLS {
	t.Helper()
	server, err := tlsutil.ServerConfig(files)
	if err != nil {
		t.Fatal(err)
	}
	client, err := tlsutil.ClientConfig(files)
	if err != nil {
		t.Fatal(err)
	}
	return &RaftTLS{Server: server, Client: client}
}
