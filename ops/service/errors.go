package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/daguha/daguha/cluster"
)

// Kind is what kind of failure an error of the service is. Callers act on
// the kind, never on the message: the HTTP API picks its status code from
// it, and the DAG directory sync whether to wait for a file to change or
// to try again.
type Kind int

const (
	// Internal is a failure of this server, not of the caller's input nor
	// of the cluster's availability.
	Internal Kind = iota
	// Invalid is input the caller must correct: pushing it again as it
	// is cannot succeed.
	Invalid
	// Forbidden is a call the caller may not make.
	Forbidden
	// NotFound names something that does not exist.
	NotFound
	// Conflict is a call the state refuses as it stands: a run id taken
	// by another run, a command every replica refused, a second restore.
	Conflict
	// TooLarge is input over a size limit.
	TooLarge
	// Unavailable means the cluster cannot take the call now (no leader
	// yet, a leader change, a server shutting down): the same call may
	// succeed soon.
	Unavailable
	// Interrupted is a call given up before it ended: the caller went
	// away, or a wait could not go on.
	Interrupted
	// Timeout is a call that ran out of time.
	Timeout
	// NotImplemented is a call this server is not set up to serve.
	NotImplemented
	// Upstream is a failure of another party the call needed (a worker).
	Upstream
	// NotUpgraded is a change the leader refused to write because a
	// server of the cluster does not run a release that can apply it
	// (cluster.UpgradeError): it succeeds once the servers are upgraded.
	NotUpgraded
)

// Error is an error of a known Kind. Its message is Err's.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// errorOf marks err as of the given kind.
func errorOf(kind Kind, err error) error { return &Error{Kind: kind, Err: err} }

// errorf is fmt.Errorf for an error of the given kind.
func errorf(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Err: fmt.Errorf(format, args...)}
}

// KindOf says what kind of failure err is: an *Error's own kind; for the
// errors the cluster returns, Unavailable when no leader could take the
// call (a leader may exist soon), NotUpgraded for a command the leader's
// version check refused, Conflict for a command the state machine refused, Timeout and Interrupted for a deadline or cancellation;
// Internal for anything else.
func KindOf(err error) Kind {
	var typed *Error
	var command *cluster.CommandError
	switch {
	case errors.As(err, &typed):
		return typed.Kind
	case errors.As(err, new(*cluster.UpgradeError)):
		return NotUpgraded
	case errors.Is(err, cluster.ErrNoLeader), errors.As(err, new(*cluster.RetryableError)):
		return Unavailable
	case errors.As(err, &command):
		return Conflict
	case errors.Is(err, context.DeadlineExceeded):
		return Timeout
	case errors.Is(err, context.Canceled):
		return Interrupted
	}
	return Internal
}
