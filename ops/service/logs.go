package service

import (
	"context"
	"errors"
	"io"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// StepLogQuery asks for the full log of a step. Attempt (a number from
// 1, as text) picks an attempt of the run; "" is its latest.
type StepLogQuery struct {
	RunID   string
	Step    string
	Attempt string
	Stale   bool
	// Offset and Limit (numbers, as text; "" for none) cut the log to at
	// most Limit bytes from byte Offset: a page that follows a running
	// step asks only for what it has not shown yet.
	Offset string
	Limit  string
}

// MaxStepLogLimit is the most bytes one limited read of a log may ask for.
const MaxStepLogLimit = 16 << 20

// StepLog is a step's log as the worker that ran it streams it. Read it
// with Next; Close it.
type StepLog struct {
	// WorkerID is the worker the log comes from.
	WorkerID string
	conn     *grpc.ClientConn
	cancel   context.CancelFunc
	stream   grpc.ServerStreamingClient[daguhav1.StepLogChunk]
	first    *daguhav1.StepLogChunk
	ended    bool
	// skip is the bytes still to drop before the first returned, left
	// the bytes still to return (-1: no limit).
	skip int64
	left int64
}

// Next returns the next part of the log; an error (io.EOF at the end)
// ends it.
func (l *StepLog) Next() ([]byte, error) {
	for {
		if l.left == 0 {
			return nil, io.EOF
		}
		data, err := l.next()
		if err != nil {
			return nil, err
		}
		if l.skip >= int64(len(data)) {
			l.skip -= int64(len(data))
			continue
		}
		data, l.skip = data[l.skip:], 0
		if l.left > 0 && int64(len(data)) > l.left {
			data = data[:l.left]
		}
		if l.left > 0 {
			l.left -= int64(len(data))
		}
		return data, nil
	}
}

func (l *StepLog) next() ([]byte, error) {
	if l.first != nil {
		data := l.first.GetData()
		l.first = nil
		return data, nil
	}
	if l.ended {
		return nil, io.EOF
	}
	chunk, err := l.stream.Recv()
	if err != nil {
		l.ended = true
		return nil, err
	}
	return chunk.GetData(), nil
}

// Close ends the stream and the connection to the worker.
func (l *StepLog) Close() {
	l.cancel()
	l.conn.Close()
}

// StepLog opens the full log of a step on the worker that ran it. The
// cluster keeps only the tail of each step's output; the whole log stays
// on the worker and is there to fetch while the worker lives. The request
// to the worker carries the attempt's log tickets, which only a server
// can compute (see logticket.Sign); they go nowhere else.
func (s *Service) StepLog(ctx context.Context, query StepLogQuery) (*StepLog, error) {
	id, step := query.RunID, query.Step
	skip, left := int64(0), int64(-1)
	if query.Offset != "" {
		n, err := strconv.ParseInt(query.Offset, 10, 64)
		if err != nil || n < 0 {
			return nil, errorf(Invalid, "offset %q: want a number of bytes from 0", query.Offset)
		}
		skip = n
	}
	if query.Limit != "" {
		n, err := strconv.ParseInt(query.Limit, 10, 64)
		if err != nil || n < 1 || n > MaxStepLogLimit {
			return nil, errorf(Invalid, "limit %q: want a number of bytes from 1 to %d", query.Limit, MaxStepLogLimit)
		}
		left = n
	}
	if s.dialWorker == nil {
		return nil, errorOf(NotImplemented, errors.New("this server cannot reach workers for logs"))
	}
	if err := s.consistent(ctx, query.Stale); err != nil {
		return nil, err
	}
	state := s.cluster.FSM().State()
	run, err := state.Run(id)
	if err != nil {
		return nil, errorOf(Internal, err)
	}
	if run == nil {
		return nil, errorf(NotFound, "no DAG run with id %q", id)
	}
	attempt, workerID := run.GetAttempt(), run.GetWorkerId()
	if query.Attempt != "" {
		n, err := strconv.ParseUint(query.Attempt, 10, 32)
		if err != nil || n == 0 {
			return nil, errorf(Invalid, "attempt %q: want a number from 1", query.Attempt)
		}
		attempt, workerID = uint32(n), ""
		for _, a := range run.GetAttempts() {
			if a.GetAttempt() == attempt {
				workerID = a.GetWorkerId()
			}
		}
	}
	if workerID == "" {
		return nil, errorf(NotFound, "run %q has no attempt %d on any worker", id, attempt)
	}
	worker, err := state.Worker(workerID)
	if err != nil {
		return nil, errorOf(Internal, err)
	}
	if worker == nil || worker.GetLogAddr() == "" {
		return nil, errorf(NotFound, "worker %q of run %q is gone or serves no logs: only the output tail in the run's steps is kept", workerID, id)
	}
	conn, err := s.dialWorker(worker.GetLogAddr(), workerID)
	if err != nil {
		return nil, errorf(Upstream, "worker %q at %s: %w", workerID, worker.GetLogAddr(), err)
	}
	var tickets []string
	if s.logTickets != nil {
		tickets = s.logTickets(id, attempt, workerID)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	log := &StepLog{WorkerID: workerID, conn: conn, cancel: cancel, skip: skip, left: left}
	log.stream, err = daguhav1.NewWorkerLogServiceClient(conn).StepLog(ctx, &daguhav1.StepLogRequest{RunId: id, StepName: step, Attempt: attempt, LogTickets: tickets})
	if err == nil {
		log.first, err = log.stream.Recv()
	}
	if errors.Is(err, io.EOF) {
		log.ended = true
		return log, nil
	}
	if err != nil {
		log.Close()
		kind := Upstream
		if status.Code(err) == codes.NotFound {
			kind = NotFound
		} else {
			// A worker that is not who it must be (under TLS), or one that
			// refuses this server, is worth an operator's look.
			s.logger.Warn("step log not fetched from the run's worker", "run", id, "attempt", attempt, "step", step,
				"worker", workerID, "addr", worker.GetLogAddr(), "error", status.Convert(err).Message())
		}
		return nil, errorf(kind, "worker %q: %s", workerID, status.Convert(err).Message())
	}
	return log, nil
}
