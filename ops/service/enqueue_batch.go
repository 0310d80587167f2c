package service

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/dispatch/valid"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Enqueues that arrive while earlier ones are on their way to the leader
// go together in one EnqueueRuns command: one forward, one Raft entry and
// one fsync for all of them. Under light load a batch is one run and adds
// no wait; under load batches grow, up to enqueueBatchMax runs. Two
// commands on their way at once, as the leader's batchers (dispatch's
// Config.InFlight): four made smaller commands for no gain.
const (
	enqueueBatchMax      = 64
	enqueueBatchInFlight = 2
)

// enqueueResult is what became of one run of a batch: its outcome, or the
// error that concerns it alone.
type enqueueResult struct {
	outcome *daguhav1.EnqueueOutcome
	err     error
}

func (s *Service) startEnqueueBatcher() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopBatcher = cancel
	s.batcherDone = make(chan struct{})
	s.enqueues = dispatch.NewBatcher(enqueueBatchMax, enqueueBatchInFlight, s.applyEnqueues)
	go func() {
		defer close(s.batcherDone)
		s.enqueues.Run(ctx)
	}()
}

// Close stops the enqueue batcher; requests still waiting fail. The
// service must not be called after it.
func (s *Service) Close() {
	s.stopGlance()
	s.stopBatcher()
	<-s.batcherDone
}

// enqueue writes one run through the batcher and returns its outcome.
func (s *Service) enqueue(ctx context.Context, run *daguhav1.Run) (*daguhav1.EnqueueOutcome, error) {
	result, err := s.enqueues.Submit(ctx, nil, run)
	if errors.Is(err, dispatch.ErrBatcherStopped) {
		return nil, fmt.Errorf("%w: the server is shutting down", cluster.ErrNotLeader)
	}
	if err != nil {
		return nil, err
	}
	return result.outcome, result.err
}

// applyEnqueues writes a batch of runs as one command. A command the
// state machine refuses as a whole is written again run by run, so one
// bad run fails alone and its error names it.
func (s *Service) applyEnqueues(ctx context.Context, runs []*daguhav1.Run) ([]enqueueResult, error) {
	// A batch of large runs goes in several commands, each of at most
	// valid.MaxBatchBytes, so that one forwarded to the leader fits in a
	// message (a run's DAG is at most valid.MaxDagBytes).
	var results []enqueueResult
	for len(runs) > 0 {
		n, size := 1, proto.Size(runs[0])
		for n < len(runs) && size+proto.Size(runs[n]) <= valid.MaxBatchBytes {
			size += proto.Size(runs[n])
			n++
		}
		part, err := s.applyEnqueueBatch(ctx, runs[:n])
		if err != nil {
			// This command's runs fail; those of the others keep their
			// own outcomes.
			part = make([]enqueueResult, n)
			for i := range part {
				part[i].err = err
			}
		}
		results = append(results, part...)
		runs = runs[n:]
	}
	return results, nil
}

func (s *Service) applyEnqueueBatch(ctx context.Context, runs []*daguhav1.Run) ([]enqueueResult, error) {
	results, err := s.applyEnqueueCommand(ctx, runs)
	var refused *cluster.CommandError
	if err == nil || len(runs) == 1 || !errors.As(err, &refused) {
		return results, err
	}
	results = make([]enqueueResult, len(runs))
	for i, run := range runs {
		one, err := s.applyEnqueueCommand(ctx, []*daguhav1.Run{run})
		if err != nil {
			results[i] = enqueueResult{err: err}
			continue
		}
		results[i] = one[0]
	}
	return results, nil
}

func (s *Service) applyEnqueueCommand(ctx context.Context, runs []*daguhav1.Run) ([]enqueueResult, error) {
	result, _, err := s.cluster.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: runs})
	if err != nil {
		return nil, err
	}
	outcomes := result.(*daguhav1.EnqueueRunsResult).GetOutcomes()
	if len(outcomes) != len(runs) {
		return nil, fmt.Errorf("enqueue of %d runs returned %d outcomes", len(runs), len(outcomes))
	}
	results := make([]enqueueResult, len(runs))
	for i, outcome := range outcomes {
		if outcome.GetRunId() != "" && outcome.GetRunId() != runs[i].GetId() {
			return nil, fmt.Errorf("enqueue outcome %d is for run %q, not %q", i, outcome.GetRunId(), runs[i].GetId())
		}
		results[i] = enqueueResult{outcome: outcome}
	}
	return results, nil
}
