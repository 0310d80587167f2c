package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Calls on several runs at once, for Dagu's API: the newest run of each
// DAG, stopping every running run of a DAG, and waiting for a run to end.

// checkSingleton refuses an enqueue while another run of its DAG is
// active, as req.Singleton asks. A run with the request's own id is the
// same run asked for again, not another one.
func (s *Service) checkSingleton(ctx context.Context, req EnqueueRequest) error {
	if req.Singleton == NotSingleton {
		return nil
	}
	if err := s.cluster.ConsistentRead(ctx); err != nil {
		return err
	}
	var active *daguhav1.Run
	_ = s.cluster.FSM().State().EachRun(func(run *daguhav1.Run) bool {
		if run.GetDagName() != req.DagName || run.GetId() == req.DagRunID {
			return true
		}
		switch run.GetStatus() {
		case daguhav1.RunStatus_RUN_STATUS_RUNNING:
			active = run
		case daguhav1.RunStatus_RUN_STATUS_QUEUED:
			if req.Singleton == SingletonActive {
				active = run
			}
		}
		return active == nil
	})
	if active != nil {
		return errorf(Conflict, "singleton: run %q of DAG %q is %s", active.GetId(), req.DagName, RunStatusName(active.GetStatus()))
	}
	return nil
}

// NewestRuns returns the newest run of each DAG that has one, by DAG
// name, in one pass over the runs.
func (s *Service) NewestRuns(ctx context.Context, stale bool) (map[string]*daguhav1.Run, error) {
	if err := s.consistent(ctx, stale); err != nil {
		return nil, err
	}
	newest := map[string]*daguhav1.Run{}
	_ = s.cluster.FSM().State().EachRun(func(run *daguhav1.Run) bool {
		if seen, ok := newest[run.GetDagName()]; !ok || listedBefore(run, seen) {
			newest[run.GetDagName()] = run
		}
		return true
	})
	return newest, nil
}

// maxStopAll bounds the runs one stop-all cancels: a DAG with more
// running runs is stopped by calling again.
const maxStopAll = 10000

// StopAll asks every running run of a stored DAG to stop, in one
// command, and returns why each it could not stop was refused.
func (s *Service) StopAll(ctx context.Context, dagName string) ([]string, error) {
	if _, err := s.GetDag(ctx, dagName, false); err != nil {
		return nil, err
	}
	page, err := s.ListRuns(ctx, RunFilter{DagName: dagName, Status: "running", Limit: maxStopAll, Stale: true})
	if err != nil {
		return nil, err
	}
	problems := []string{}
	if len(page.Runs) == 0 {
		return problems, nil
	}
	cmd := &daguhav1.CancelRunsCommand{NowUnixNano: s.now().UnixNano()}
	for _, run := range page.Runs {
		cmd.RunIds = append(cmd.RunIds, run.GetId())
	}
	result, _, err := s.cluster.Apply(ctx, fsm.CancelRunsType, cmd)
	if err != nil {
		return nil, err
	}
	for _, outcome := range result.(*daguhav1.CancelRunsResult).GetOutcomes() {
		s.metrics.RunsCancelledAtOnce(outcome.GetEndedCancelled())
		if !outcome.GetApplied() {
			problems = append(problems, fmt.Sprintf("run %q: %s", outcome.GetRunId(), outcome.GetRefused()))
		}
	}
	if page.Truncated {
		problems = append(problems, fmt.Sprintf("more than %d runs are running: stop all again for the rest", maxStopAll))
	}
	return problems, nil
}

// Ended says whether a run has ended (succeeded, failed or cancelled).
func Ended(run *daguhav1.Run) bool {
	switch run.GetStatus() {
	case daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, daguhav1.RunStatus_RUN_STATUS_FAILED, daguhav1.RunStatus_RUN_STATUS_CANCELLED:
		return true
	}
	return false
}

// AwaitRun waits up to timeout for a run to end and returns it as it
// then is: a Timeout error (with the run) when it has not ended.
func (s *Service) AwaitRun(ctx context.Context, id string, timeout time.Duration) (*daguhav1.Run, error) {
	if err := s.cluster.ConsistentRead(ctx); err != nil {
		return nil, err
	}
	state := s.cluster.FSM().State
	run, err := state().Run(id)
	if err != nil {
		return nil, errorOf(Internal, err)
	}
	if run == nil {
		return nil, errorf(NotFound, "no DAG run with id %q", id)
	}
	deadline := time.Now().Add(timeout)
	for !Ended(run) {
		left := time.Until(deadline)
		if left <= 0 {
			return run, errorf(Timeout, "run %q of DAG %q has not ended after %s: it goes on", id, run.GetDagName(), timeout)
		}
		// One watch waits a minute at most; the loop ends at the deadline.
		next, err := dispatch.WatchRun(ctx, state, id, run.GetModifyIndex(), min(left, time.Minute))
		if err != nil {
			return nil, errorOf(Interrupted, err)
		}
		if next == nil {
			return nil, errorOf(NotFound, errors.New("the run was pruned while waiting for it"))
		}
		run = next
	}
	return run, nil
}
