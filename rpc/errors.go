package rpc

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/daguha/daguha/cluster"
)

// upgradeReason marks, in a FailedPrecondition's details, a command the
// leader refused by its version check (cluster.UpgradeError), so that it
// reaches the follower that forwarded it as that, not as any refusal.
const upgradeReason = "SERVERS_NOT_UPGRADED"

// toStatus maps a cluster error to the gRPC status a peer receives.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var (
		retryable *cluster.RetryableError
		command   *cluster.CommandError
		upgrade   *cluster.UpgradeError
	)
	switch {
	case errors.As(err, &upgrade):
		st := status.New(codes.FailedPrecondition, upgrade.Error())
		if detailed, detailErr := st.WithDetails(&errdetails.ErrorInfo{Reason: upgradeReason, Domain: "daguha"}); detailErr == nil {
			st = detailed
		}
		return st.Err()
	case errors.As(err, &retryable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.As(err, &command):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// fromStatus maps a peer's gRPC error back to a cluster error: anything
// that says the peer could not take the request (it is down, or no longer
// the leader, or did not answer in time) is retryable.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return &cluster.RetryableError{Err: errors.New(st.Message())}
	case codes.FailedPrecondition:
		for _, detail := range st.Details() {
			if info, ok := detail.(*errdetails.ErrorInfo); ok && info.GetReason() == upgradeReason && info.GetDomain() == "daguha" {
				return &cluster.UpgradeError{Msg: st.Message()}
			}
		}
		return &cluster.CommandError{Err: errors.New(st.Message())}
	}
	return errors.New(st.Message())
}
