package rpc

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/daguha/daguha/cluster"
)

// toStatus maps a cluster error to the gRPC status a peer receives.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var (
		retryable *cluster.RetryableError
		command   *cluster.CommandError
	)
	switch {
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
		return &cluster.CommandError{Err: errors.New(st.Message())}
	}
	return errors.New(st.Message())
}
