package rpc

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/daguha/daguha/cluster"
)

// The leader's version refusal crosses the forwarding hop as gRPC's
// FailedPrecondition and arrives as a cluster.UpgradeError with its
// message whole; any other FailedPrecondition stays a CommandError.
func TestUpgradeErrorSurvivesForwarding(t *testing.T) {
	msg := "retry needs every server at state schema 1 or later (daguha 0.1.0); server2 runs daguha before 0.1.0 (state schema 0): finish upgrading the servers first"
	sent := toStatus(fmt.Errorf("apply: %w", &cluster.UpgradeError{Msg: msg}))
	if status.Code(sent) != codes.FailedPrecondition {
		t.Fatalf("sent as %v, want FailedPrecondition", status.Code(sent))
	}
	var upgrade *cluster.UpgradeError
	if got := fromStatus(sent); !errors.As(got, &upgrade) || upgrade.Msg != msg {
		t.Fatalf("received %T %v, want an UpgradeError %q", got, got, msg)
	}
	plain := fromStatus(toStatus(&cluster.CommandError{Err: errors.New("refused")}))
	var command *cluster.CommandError
	if !errors.As(plain, &command) || errors.As(plain, &upgrade) {
		t.Fatalf("a command error arrived as %T %v", plain, plain)
	}
	// A peer's bare FailedPrecondition (an older leader's) is a CommandError.
	if got := fromStatus(status.Error(codes.FailedPrecondition, msg)); errors.As(got, &upgrade) {
		t.Fatalf("a FailedPrecondition without the mark became %T", got)
	}
}
