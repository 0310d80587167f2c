package worker

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/daguha/daguha/dispatch/logticket"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// logChunkBytes is the size of one StepLog message.
const logChunkBytes = 32 << 10

// LogServer serves the step logs an Engine wrote under Dir, each only to
// a request carrying the log ticket of its attempt (see package logticket).
type LogServer struct {
	daguhav1.UnimplementedWorkerLogServiceServer
	dir    string
	engine *Engine
	// SkipTickets serves logs without asking for their ticket: set only in
	// the deliberately broken build of the security suite (where
	// identity.Enforced is false), to show the attack it stops succeed.
	SkipTickets bool
}

// NewLogServer serves the logs under dir (an Engine's LogDir).
func NewLogServer(dir string) *LogServer {
	return &LogServer{dir: dir, engine: &Engine{LogDir: dir}}
}

// maxLogRequestName bounds the run id and the step name of a request;
// longer ones name nothing a worker keeps.
const maxLogRequestName = 1024

// StepLog streams the full log of one step of a run, in chunks of 32 KiB,
// when the request carries the attempt's log ticket. Attempt 0 is the
// latest attempt of the run this worker holds logs of.
func (s *LogServer) StepLog(req *daguhav1.StepLogRequest, stream grpc.ServerStreamingServer[daguhav1.StepLogChunk]) error {
	runID, step := req.GetRunId(), req.GetStepName()
	if runID == "" || step == "" {
		return status.Error(codes.InvalidArgument, "a step log request needs a run id and a step name")
	}
	if len(runID) > maxLogRequestName || len(step) > maxLogRequestName {
		return status.Errorf(codes.InvalidArgument, "a step log request's run id (%d bytes) and step name (%d bytes) may have at most %d bytes each", len(runID), len(step), maxLogRequestName)
	}
	if n := len(req.GetLogTickets()); n > logticket.MaxPerRequest {
		return status.Errorf(codes.InvalidArgument, "a step log request carries %d log tickets; at most %d are taken", n, logticket.MaxPerRequest)
	}
	if s.dir == "" {
		return status.Error(codes.NotFound, "this worker keeps no step logs")
	}
	attempt := req.GetAttempt()
	if attempt == 0 {
		latest, err := s.latestAttempt(runID)
		if err != nil {
			return err
		}
		attempt = latest
	}
	if !s.SkipTickets {
		if err := s.checkTicket(runID, attempt, req.GetLogTickets()); err != nil {
			return err
		}
	}
	f, err := os.Open(s.engine.LogPath(runID, attempt, step))
	if errors.Is(err, fs.ErrNotExist) {
		return status.Errorf(codes.NotFound, "no log of step %q of run %s (attempt %d) on this worker", step, runID, attempt)
	}
	if err != nil {
		return status.Errorf(codes.Internal, "log of step %q of run %s: %v", step, runID, err)
	}
	defer f.Close()
	buf := make([]byte, logChunkBytes)
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			if err := stream.Send(&daguhav1.StepLogChunk{Data: buf[:n]}); err != nil {
				return err
			}
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return nil
		case err != nil:
			return status.Errorf(codes.Internal, "reading the log of step %q of run %s: %v", step, runID, err)
		}
	}
}

// latestAttempt is the highest attempt directory of a run.
func (s *LogServer) latestAttempt(runID string) (uint32, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, safeName(runID)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, status.Errorf(codes.Internal, "logs of run %s: %v", runID, err)
	}
	latest, found := uint32(0), false
	for _, e := range entries {
		if n, err := strconv.ParseUint(e.Name(), 10, 32); err == nil && e.IsDir() && (!found || uint32(n) > latest) {
			latest, found = uint32(n), true
		}
	}
	if !found {
		return 0, status.Errorf(codes.NotFound, "no logs of run %s on this worker", runID)
	}
	return latest, nil
}

// checkTicket refuses a request without the attempt's log ticket. The
// errors name the run and the attempt, never a ticket.
func (s *LogServer) checkTicket(runID string, attempt uint32, offered []string) error {
	match, err := s.engine.checkLogTicket(runID, attempt, offered)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return status.Errorf(codes.NotFound, "no logs of run %s (attempt %d) on this worker", runID, attempt)
	case errors.Is(err, errNoLogTicket):
		return status.Errorf(codes.PermissionDenied, "run %s (attempt %d) has no log ticket on this worker: it was granted by a server that gave none (before the upgrade that brought log tickets), or the worker could not keep it (its log says so), so its step logs are not served; the output tail in the run's steps is what the cluster keeps", runID, attempt)
	case err != nil:
		return status.Errorf(codes.Internal, "log ticket of run %s (attempt %d): %v", runID, attempt, err)
	case len(offered) == 0:
		return status.Errorf(codes.PermissionDenied, "a request for the logs of run %s (attempt %d) carries no log ticket: only a server of the cluster can read them", runID, attempt)
	case !match:
		return status.Errorf(codes.PermissionDenied, "the log tickets of the request do not match run %s (attempt %d): only a server of the cluster can read its logs", runID, attempt)
	}
	return nil
}
