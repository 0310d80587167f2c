package cluster

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/daguha/daguha/cluster/identity"
)

// RaftTLS is the TLS configuration of the Raft link between servers:
// Server for the listener (with a CA it requires the peer's certificate),
// Client for the connections this server opens.
type RaftTLS struct {
	Server *tls.Config
	Client *tls.Config
}

// RaftHandshakeTimeout bounds how long an accepted Raft connection may
// take to prove itself (a TLS handshake, or the cluster token's
// challenge) and send its first bytes: raw TCP cannot hold the port's
// connections open.
const RaftHandshakeTimeout = 10 * time.Second

// maxPendingRaftConns bounds the accepted connections still proving
// themselves; past it new ones are closed at once.
const maxPendingRaftConns = 256

// raftStream is the Raft port's stream layer. Every accepted connection
// is vetted in a goroutine of its own, under a deadline, before Raft sees
// it:
//   - under TLS, the peer must present a certificate the CA signed that
//     carries a server identity, and this server dials only peers whose
//     certificate carries one;
//   - without TLS but with cluster tokens, both ends prove they hold a
//     token by a challenge and response (an HMAC over nonces of both: no
//     token crosses the wire);
//   - without either, the port is open, but a connection must still send
//     its first bytes in time.
type raftStream struct {
	listener  net.Listener
	advertise net.Addr
	tls       *RaftTLS
	tokens    [][]byte
	timeout   time.Duration
	logger    *slog.Logger

	accepted chan net.Conn
	pending  chan struct{}
	closed   chan struct{}
	once     sync.Once
}

func newRaftStream(bind string, advertise net.Addr, tlsConfig *RaftTLS, tokens []string, timeout time.Duration, logger *slog.Logger) (*raftStream, error) {
	listener, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	s := &raftStream{
		listener: listener, advertise: advertise, tls: tlsConfig, timeout: timeout,
		logger:   logger.With("component", "raft-port"),
		accepted: make(chan net.Conn), pending: make(chan struct{}, maxPendingRaftConns), closed: make(chan struct{}),
	}
	for _, t := range tokens {
		// The deliberately broken build leaves the port open, to show
		// what the challenge stops.
		if t != "" && identity.Enforced {
			s.tokens = append(s.tokens, []byte(t))
		}
	}
	go s.acceptLoop()
	return s, nil
}

func (s *raftStream) acceptLoop() {
	for {
		conn, err := s.listener.Accept()
		if err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, say: wait a little and go on.
			s.logger.Error("accept on the Raft port", "error", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		select {
		case s.pending <- struct{}{}:
		default:
			s.logger.Warn("Raft connection refused", "peer", conn.RemoteAddr().String(), "reason", "too many connections still proving themselves")
			conn.Close()
			continue
		}
		go func() {
			defer func() { <-s.pending }()
			vetted, err := s.vet(conn)
			if err != nil {
				s.logger.Warn("Raft connection refused", "peer", conn.RemoteAddr().String(), "reason", err.Error())
				conn.Close()
				return
			}
			select {
			case s.accepted <- vetted:
			case <-s.closed:
				vetted.Close()
			}
		}()
	}
}

// vet proves an accepted connection under the deadline and returns what
// Raft reads from.
func (s *raftStream) vet(conn net.Conn) (net.Conn, error) {
	if err := conn.SetDeadline(time.Now().Add(s.timeout)); err != nil {
		return nil, err
	}
	var out net.Conn = conn
	switch {
	case s.tls != nil:
		tlsConn := tls.Server(conn, s.tls.Server)
		if err := tlsConn.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		if err := requireServer(tlsConn.ConnectionState(), "peer"); err != nil {
			return nil, err
		}
		out = tlsConn
	case len(s.tokens) > 0:
		if err := s.challenge(conn); err != nil {
			return nil, err
		}
		// The peer proved the token: what follows is Raft's.
		return conn, conn.SetDeadline(time.Time{})
	}
	// The first bytes must come in time too: Raft's dialler sends its
	// first request as soon as it connects.
	first := make([]byte, 1)
	if _, err := io.ReadFull(out, first); err != nil {
		return nil, fmt.Errorf("no request within %s: %w", s.timeout, err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return &prefixedConn{Conn: out, prefix: first}, nil
}

// requireServer checks that a TLS peer's verified certificate carries a
// server identity.
func requireServer(state tls.ConnectionState, who string) error {
	if !identity.Enforced {
		return nil
	}
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return fmt.Errorf("the %s presented no certificate the CA signed", who)
	}
	id, err := identity.FromCertificate(state.VerifiedChains[0][0])
	if err != nil {
		return fmt.Errorf("the %s's certificate: %w", who, err)
	}
	if id.Role != identity.RoleServer {
		return fmt.Errorf("the %s is %s, not a server: only servers speak Raft", who, id)
	}
	return nil
}

// The cluster token's challenge on the Raft port, listener first:
//
//	listener -> dialer: magic, listener nonce
//	dialer -> listener: dialer nonce, HMAC(token, "dialer" | both nonces)
//	listener -> dialer: HMAC(token, "listener" | both nonces)
//
// The listener accepts any of its tokens and answers with the one that
// matched, so tokens rotate as the gRPC port's do.
var raftMagic = []byte("DGHRAFT1")

const nonceSize = 32

func handshakeMAC(token []byte, side string, listenerNonce, dialerNonce []byte) []byte {
	h := hmac.New(sha256.New, token)
	h.Write([]byte("daguha raft " + side))
	h.Write(listenerNonce)
	h.Write(dialerNonce)
	return h.Sum(nil)
}

func (s *raftStream) challenge(conn net.Conn) error {
	listenerNonce := make([]byte, nonceSize)
	if _, err := rand.Read(listenerNonce); err != nil {
		return err
	}
	if _, err := conn.Write(append(append([]byte(nil), raftMagic...), listenerNonce...)); err != nil {
		return fmt.Errorf("send the challenge: %w", err)
	}
	answer := make([]byte, nonceSize+sha256.Size)
	if _, err := io.ReadFull(conn, answer); err != nil {
		return fmt.Errorf("the peer did not answer the cluster token challenge (deadline %s): %w", s.timeout, err)
	}
	dialerNonce, mac := answer[:nonceSize], answer[nonceSize:]
	for _, token := range s.tokens {
		if hmac.Equal(mac, handshakeMAC(token, "dialer", listenerNonce, dialerNonce)) {
			if _, err := conn.Write(handshakeMAC(token, "listener", listenerNonce, dialerNonce)); err != nil {
				return fmt.Errorf("send the proof: %w", err)
			}
			return nil
		}
	}
	return errors.New("the peer's answer to the cluster token challenge is wrong: it holds none of this server's cluster tokens")
}

// answerChallenge is the dialer's side of the challenge.
func answerChallenge(conn net.Conn, token []byte) error {
	greeting := make([]byte, len(raftMagic)+nonceSize)
	if _, err := io.ReadFull(conn, greeting); err != nil {
		return fmt.Errorf("no cluster token challenge from the server: %w (does it run with the cluster token?)", err)
	}
	if !bytes.Equal(greeting[:len(raftMagic)], raftMagic) {
		return errors.New("the server's greeting is not daguha's Raft challenge")
	}
	listenerNonce := greeting[len(raftMagic):]
	dialerNonce := make([]byte, nonceSize)
	if _, err := rand.Read(dialerNonce); err != nil {
		return err
	}
	if _, err := conn.Write(append(dialerNonce, handshakeMAC(token, "dialer", listenerNonce, dialerNonce)...)); err != nil {
		return err
	}
	proof := make([]byte, sha256.Size)
	if _, err := io.ReadFull(conn, proof); err != nil {
		return fmt.Errorf("the server refused this server's cluster token: %w", err)
	}
	if !hmac.Equal(proof, handshakeMAC(token, "listener", listenerNonce, dialerNonce)) {
		return errors.New("the server did not prove the cluster token")
	}
	return nil
}

// prefixedConn gives back the bytes vetting read before the rest.
type prefixedConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixedConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (s *raftStream) Accept() (net.Conn, error) {
	select {
	case conn := <-s.accepted:
		return conn, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

func (s *raftStream) Close() error {
	err := net.ErrClosed
	s.once.Do(func() {
		close(s.closed)
		err = s.listener.Close()
	})
	return err
}

func (s *raftStream) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.listener.Addr()
}

// Dial opens a connection to another server's Raft port and proves this
// server to it (and it to this server) as the listener expects.
func (s *raftStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: timeout}
	if s.tls != nil {
		config := s.tls.Client.Clone()
		if host, _, err := net.SplitHostPort(string(address)); err == nil && config.ServerName == "" {
			config.ServerName = host
		}
		conn, err := tls.DialWithDialer(dialer, "tcp", string(address), config)
		if err != nil {
			return nil, err
		}
		if err := requireServer(conn.ConnectionState(), "server at "+string(address)); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	}
	conn, err := dialer.Dial("tcp", string(address))
	if err != nil || len(s.tokens) == 0 {
		return conn, err
	}
	if timeout <= 0 {
		timeout = s.timeout
	}
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		conn.Close()
		return nil, err
	}
	if err := answerChallenge(conn, s.tokens[0]); err != nil {
		conn.Close()
		return nil, fmt.Errorf("Raft connection to %s: %w", address, err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}
