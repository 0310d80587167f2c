package rpc

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/daguha/daguha/cluster/identity"
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
// message limit, and the handshake deadline. gRPC refuses a message over
// the limit before any handler or interceptor sees it; the refusal is
// logged here (refusalLog), with the method and the caller's address.
func ServerMessageLimits(logger *slog.Logger) []grpc.ServerOption {
	limit := valid.MaxMessageBytes
	if !identity.Enforced {
		// The security suite's deliberately broken build takes what every
		// RPC took before the limit, to show the 20 MB label's cost.
		limit = 257 << 20
	}
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(limit), grpc.MaxSendMsgSize(limit),
		grpc.ConnectionTimeout(HandshakeTimeout), grpc.StatsHandler(refusalLog{logger})}
}

// refusalLog logs the calls gRPC itself refused for their size
// (ResourceExhausted): those never reach daguha's handlers.
type refusalLog struct{ logger *slog.Logger }

type methodKey struct{}

func (l refusalLog) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, methodKey{}, info.FullMethodName)
}

func (l refusalLog) HandleRPC(ctx context.Context, s stats.RPCStats) {
	end, ok := s.(*stats.End)
	if !ok || end.IsClient() || status.Code(end.Error) != codes.ResourceExhausted || l.logger == nil {
		return
	}
	method, _ := ctx.Value(methodKey{}).(string)
	l.logger.Warn("gRPC message refused", "method", method, "peer", peerAddr(ctx), "reason", status.Convert(end.Error).Message())
}

func (refusalLog) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (refusalLog) HandleConn(context.Context, stats.ConnStats)                       {}

// ClientMessageLimits is the option of a worker's or a server's client.
func ClientMessageLimits() grpc.DialOption {
	return grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(valid.MaxMessageBytes), grpc.MaxCallSendMsgSize(valid.MaxMessageBytes))
}
