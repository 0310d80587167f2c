package service

import (
	"context"
	"errors"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/daguha/daguha/dispatch/valid"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// What Dagu's command line does to runs beyond enqueue and cancel: retry
// a finished run, restart one, dequeue a queued one, stop all the running
// runs of a DAG.

// refusal is the error of a command's outcome the state machine refused,
// of the kind the state machine said: NotFound for a run that does not
// exist, Invalid for a step its DAG does not have, else Conflict (the
// run's state does not allow it).
func refusal(outcome *daguhav1.RunOutcome) error {
	kind := Conflict
	switch outcome.GetRefusalKind() {
	case daguhav1.RefusalKind_REFUSAL_KIND_NOT_FOUND:
		kind = NotFound
	case daguhav1.RefusalKind_REFUSAL_KIND_INVALID:
		kind = Invalid
	}
	return errorOf(kind, errors.New(outcome.GetRefused()))
}

// checkRunArg says what is wrong with a run id that names an existing
// run, if anything: no command can carry an id that is not UTF-8.
func checkRunArg(id string) error {
	if !utf8.ValidString(id) || id == "" {
		return errorf(NotFound, "no DAG run with id %q", strings.ToValidUTF8(id, "\uFFFD"))
	}
	return nil
}

// Retry queues a finished root run again, under its id, for a new attempt
// (Dagu's retry). Without step, the steps that did not succeed run again
// with every step after them; with step, that step and every step after
// it; the other steps keep what they recorded (store.RetryRuns). A run
// that is queued or running is a Conflict naming its status.
func (s *Service) Retry(ctx context.Context, id, step string) error {
	if err := checkRunArg(id); err != nil {
		return err
	}
	if step != "" {
		if err := valid.StepName(step); err != nil {
			return errorf(Invalid, "step: %w", err)
		}
	}
	result, _, err := s.cluster.Apply(ctx, fsm.RetryRunsType, &daguhav1.RetryRunsCommand{Retries: []*daguhav1.RetryRun{
		{RunId: id, Step: step, NowUnixNano: s.now().UnixNano()},
	}})
	if err != nil {
		return err
	}
	if outcome := result.(*daguhav1.RetryRunsResult).GetOutcomes()[0]; !outcome.GetApplied() {
		return refusal(outcome)
	}
	return nil
}

// Dequeue ends a queued run cancelled, as Dagu's dequeue does; a run that
// is not queued is a Conflict naming its status, and is left as it is.
func (s *Service) Dequeue(ctx context.Context, id string) error {
	if err := checkRunArg(id); err != nil {
		return err
	}
	result, _, err := s.cluster.Apply(ctx, fsm.DequeueRunsType, &daguhav1.DequeueRunsCommand{RunIds: []string{id}, NowUnixNano: s.now().UnixNano()})
	if err != nil {
		return err
	}
	outcome := result.(*daguhav1.DequeueRunsResult).GetOutcomes()[0]
	if !outcome.GetApplied() {
		return refusal(outcome)
	}
	s.metrics.RunsCancelledAtOnce(outcome.GetEndedCancelled())
	return nil
}

// RestartRequest asks for a new run like an ended one.
type RestartRequest struct {
	// ID is the ended run's.
	ID string
	// NewID is the new run's (default: the server makes one up); the same
	// restart sent again with it is the same run.
	NewID string
}

// Restart enqueues a new root run with the DAG and params of an ended root
// run (as that run had them, whatever the stored DAG is now): Dagu's
// restart, once the run it restarts has stopped. A run that has not ended
// is a Conflict naming its status.
func (s *Service) Restart(ctx context.Context, req RestartRequest) (Enqueued, error) {
	if err := checkRunArg(req.ID); err != nil {
		return Enqueued{}, err
	}
	if err := checkRunID(req.NewID); err != nil {
		return Enqueued{}, errorOf(Invalid, err)
	}
	if err := s.cluster.ConsistentRead(ctx); err != nil {
		return Enqueued{}, err
	}
	old, err := s.cluster.FSM().State().Run(req.ID)
	if err != nil {
		return Enqueued{}, errorOf(Internal, err)
	}
	switch {
	case old == nil:
		return Enqueued{}, errorf(NotFound, "no DAG run with id %q", req.ID)
	case old.GetParentDagRunId() != "":
		return Enqueued{}, errorf(Conflict, "run %q is a child of run %q: restart its root run %q", req.ID, old.GetParentDagRunId(), old.GetRootDagRunId())
	case old.GetStatus() == daguhav1.RunStatus_RUN_STATUS_QUEUED || old.GetStatus() == daguhav1.RunStatus_RUN_STATUS_RUNNING:
		return Enqueued{}, errorf(Conflict, "run %q is %s: it must end before it is restarted (cancel it first)", req.ID, RunStatusName(old.GetStatus()))
	}
	if req.NewID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return Enqueued{}, errorf(Internal, "make a run id: %w", err)
		}
		req.NewID = id.String()
	}
	run := &daguhav1.Run{
		Id:                 req.NewID,
		DagName:            old.GetDagName(),
		Params:             old.GetParams(),
		EnqueuedAtUnixNano: s.now().UnixNano(),
		Dag:                old.GetDag(),
		LocalDags:          old.GetLocalDags(),
		RootDagRunName:     old.GetDagName(),
		RootDagRunId:       req.NewID,
	}
	return s.enqueueRun(ctx, run)
}

// cancelChunk bounds the run ids of one cancel command.
const cancelChunk = 1000

// CancelRunning asks every running run of a DAG (root or child) to stop,
// as Dagu's stop without a run id does; queued runs are left queued. It
// returns the ids of the runs asked, in id order: none when none runs.
func (s *Service) CancelRunning(ctx context.Context, dagName string) ([]string, error) {
	if err := valid.DagName(dagName); err != nil {
		return nil, errorf(Invalid, "dag name: %w", err)
	}
	if err := s.cluster.ConsistentRead(ctx); err != nil {
		return nil, err
	}
	var ids []string
	err := s.cluster.FSM().State().EachRunning("", func(run *daguhav1.Run) bool {
		if run.GetDagName() == dagName {
			ids = append(ids, run.GetId())
		}
		return true
	})
	if err != nil {
		return nil, errorOf(Internal, err)
	}
	slices.Sort(ids)
	var asked []string
	for chunk := range slices.Chunk(ids, cancelChunk) {
		result, _, err := s.cluster.Apply(ctx, fsm.CancelRunsType, &daguhav1.CancelRunsCommand{RunIds: chunk, NowUnixNano: s.now().UnixNano()})
		if err != nil {
			return asked, err
		}
		for _, outcome := range result.(*daguhav1.CancelRunsResult).GetOutcomes() {
			// A run that ended meanwhile is refused: it needs no stop.
			if outcome.GetApplied() {
				asked = append(asked, outcome.GetRunId())
				s.metrics.RunsCancelledAtOnce(outcome.GetEndedCancelled())
			}
		}
	}
	return asked, nil
}

// RunQueue is the queue a run waits and runs in (Dagu's queue), as the
// API shows it.
func RunQueue(run *daguhav1.Run) string { return store.QueueOf(run) }
