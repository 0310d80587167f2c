package rpc

import (
	"time"

	"google.golang.org/grpc"

	"github.com/daguha/daguha/dispatch/valid"
)

// The one limit on gRPC messages, valid.MaxMessageBytes, in both
// directions: a server takes no larger message from a worker or another
// server (a 20 MB label is refused before it is read into memory), and a
// client neither sends nor takes a larger one. What legitimately travels
// is kept under it: DAGs and batches by package valid, polls and reports
// by package dispatch.

// HandshakeTimeout bounds how long a new connection to a server's gRPC
// port may take to complete its TLS handshake and HTTP/2 preface (gRPC's
// default is two minutes of a socket held for nothing).
const HandshakeTimeout = 10 * time.Second

// ServerMessageLimits are the options of a server's gRPC listener: the
// message limit, and the handshake deadline.
func ServerMessageLimits() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(valid.MaxMessageBytes), grpc.MaxSendMsgSize(valid.MaxMessageBytes),
		grpc.ConnectionTimeout(HandshakeTimeout)}
}

// ClientMessageLimits is the option of a worker's or a server's client.
func ClientMessageLimits() grpc.DialOption {
	return grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(valid.MaxMessageBytes), grpc.MaxCallSendMsgSize(valid.MaxMessageBytes))
}
