package cluster

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// RaftTLS is the TLS configuration of the Raft link between servers:
// Server for the listener (with a CA it requires the peer's certificate),
// Client for the connections this server opens.
type RaftTLS struct {
	Server *tls.Config
	Client *tls.Config
}

// tlsStreamLayer is a raft.StreamLayer over TLS.
type tlsStreamLayer struct {
	listener  net.Listener
	advertise net.Addr
	client    *tls.Config
}

func newTLSStreamLayer(bind string, advertise net.Addr, config RaftTLS) (*tlsStreamLayer, error) {
	listener, err := tls.Listen("tcp", bind, config.Server)
	if err != nil {
		return nil, err
	}
	return &tlsStreamLayer{listener: listener, advertise: advertise, client: config.Client}, nil
}

func (t *tlsStreamLayer) Accept() (net.Conn, error) { return t.listener.Accept() }
func (t *tlsStreamLayer) Close() error              { return t.listener.Close() }
func (t *tlsStreamLayer) Addr() net.Addr {
	if t.advertise != nil {
		return t.advertise
	}
	return t.listener.Addr()
}

// Dial opens a TLS connection to another server's Raft port, verifying
// its certificate against the CA for the host it is dialled at.
func (t *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	config := t.client.Clone()
	if host, _, err := net.SplitHostPort(string(address)); err == nil && config.ServerName == "" {
		config.ServerName = host
	}
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(address), config)
}
