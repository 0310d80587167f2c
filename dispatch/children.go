package dispatch

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// childNamespace makes child run ids: a child's id is a name-based UUID of
// its parent's id, the step and the retry, so a parent step that runs
// again (on another worker after a failover, say) asks for the same child
// and the cluster answers with the one that exists.
var childNamespace = uuid.MustParse("6f1c8a53-9b0e-4c55-a3a4-2d9e7b1c0d41")

// ChildRunID returns the id of the child run a run/call step starts.
func ChildRunID(parentID, step string, retry uint32) string {
	return uuid.NewSHA1(childNamespace, []byte(parentID+"\x00"+step+"\x00"+strconv.FormatUint(uint64(retry), 10))).String()
}

// childStepKey is what names a step's children in ChildRunID: the step,
// and after a run was queued again by its DAG's retry policy or by a
// retry (daguha retry), which retry of the run it is, so that the new
// attempt starts children of its own (a failover's new attempt asks for
// the same ones). A step name holds no control character, so the parts
// cannot be confused.
func childStepKey(parent *daguhav1.Run, stepName string) string {
	key := stepName
	if n := parent.GetRetriesRequested(); n > 0 {
		key += "\x00retry-" + strconv.FormatUint(uint64(n), 10)
	}
	if n := parent.GetDagRetries(); n > 0 {
		key += "\x00dag-retry-" + strconv.FormatUint(uint64(n), 10)
	}
	return key
}

// ResolveDag finds the DAG a run/call step names: first among the local
// DAGs the run carries (the other documents of its file), then among the
// stored DAGs. It returns the spec and the local DAGs the child inherits.
func ResolveDag(state *store.StateStore, locals []*daguhav1.DagSpec, name string) (*daguhav1.DagSpec, []*daguhav1.DagSpec, error) {
	for _, local := range locals {
		if local.GetName() == name {
			return local, locals, nil
		}
	}
	stored, err := state.Dag(name)
	if err != nil {
		return nil, nil, err
	}
	if stored == nil {
		return nil, nil, &InvalidRequestError{Reason: fmt.Sprintf("no DAG named %q: it is neither in the parent's file nor stored (daguha dag push)", name)}
	}
	return stored.GetSpec(), stored.GetLocalDags(), nil
}

// EnqueueChild enqueues the child run of a run/call step of the run the
// lease in token holds. Asking again for the same step and retry (and,
// for a parallel step, the same item's params) returns the same child.
func (d *Dispatcher) EnqueueChild(ctx context.Context, token, stepName string, retry uint32, params string) (string, bool, error) {
	if err := checkChildRequest(stepName, params); err != nil {
		return "", false, err
	}
	st, err := d.leader()
	if err != nil {
		return "", false, err
	}
	claims, err := st.verify(token)
	if err != nil {
		return "", false, err
	}
	if err := d.checkHolder(ctx, claims); err != nil {
		return "", false, err
	}
	state := d.backend.State()
	parent, err := state.Run(claims.RunID)
	if err != nil {
		return "", false, err
	}
	if parent == nil || parent.GetStatus() != daguhav1.RunStatus_RUN_STATUS_RUNNING || parent.GetFencingToken() != claims.FencingToken {
		return "", false, &StaleLeaseError{Reason: fmt.Sprintf("run %q is not held by this lease (attempt %d)", claims.RunID, claims.Attempt)}
	}
	// A handler may start a child run too.
	step := dagfile.FindStep(parent.GetDag(), stepName)
	if step == nil || step.GetChildDag() == "" {
		return "", false, &InvalidRequestError{Reason: fmt.Sprintf("DAG %q has no run/call step named %q", parent.GetDagName(), stepName)}
	}
	spec, locals, err := ResolveDag(state, parent.GetLocalDags(), step.GetChildDag())
	if err != nil {
		return "", false, err
	}
	spec = proto.Clone(spec).(*daguhav1.DagSpec)
	if len(step.GetWorkerSelector()) > 0 {
		spec.WorkerSelector = step.GetWorkerSelector()
	}
	rootName, rootID := RootOf(parent)
	child := &daguhav1.Run{
		Id:                 childRunIDOf(parent.GetId(), childStepKey(parent, stepName), step, retry, params),
		DagName:            spec.GetName(),
		Params:             params,
		EnqueuedAtUnixNano: d.config.Now().UnixNano(),
		RootDagRunName:     rootName,
		RootDagRunId:       rootID,
		ParentDagRunName:   parent.GetDagName(),
		ParentDagRunId:     parent.GetId(),
		ParentStepName:     stepName,
		Dag:                spec,
		LocalDags:          locals,
	}
	result, _, err := d.backend.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{child}})
	if err != nil {
		return "", false, err
	}
	outcomes := result.(*daguhav1.EnqueueRunsResult).GetOutcomes()
	if len(outcomes) != 1 {
		return "", false, fmt.Errorf("enqueue of child %q: %d outcomes", child.GetId(), len(outcomes))
	}
	if conflict := outcomes[0].GetConflict(); conflict != "" {
		return "", false, &StaleLeaseError{Reason: "child run refused: " + conflict}
	}
	if outcomes[0].GetCreated() {
		d.config.Metrics.RunEnqueued()
	}
	return child.GetId(), outcomes[0].GetCreated(), nil
}

// WatchRun is a blocking query on one run, answered from this server's
// state (leader or not): it returns when the run's modify index passes
// minIndex, or when wait ends, with the run as it then is.
func WatchRun(ctx context.Context, state func() *store.StateStore, runID string, minIndex uint64, wait time.Duration) (*daguhav1.Run, error) {
	return watchRun(ctx, state, runID, minIndex, wait, nil)
}

// maxRunDepth bounds the walk from a run up to its root.
const maxRunDepth = 1000

// WatchHeld is WatchRun for a worker: it may watch the run its lease
// token holds and that run's descendants (the child runs it started),
// nothing else. A call marked WithWorker must hold a lease granted to
// that worker; such a proven worker that sends no token (one from before
// tokens were sent) may watch what descends from a run it holds now. It
// is answered from this server's state, leader or not.
func (d *Dispatcher) WatchHeld(ctx context.Context, token, runID string, minIndex uint64, wait time.Duration) (*daguhav1.Run, error) {
	var held func(*daguhav1.Run) bool
	switch worker, proven := workerOf(ctx); {
	case token == "" && proven:
		held = func(run *daguhav1.Run) bool {
			return run.GetStatus() == daguhav1.RunStatus_RUN_STATUS_RUNNING && run.GetWorkerId() == worker
		}
	default:
		claims, err := d.VerifyLease(token)
		if err != nil {
			return nil, err
		}
		if err := d.checkHolder(ctx, claims); err != nil {
			return nil, err
		}
		held = func(run *daguhav1.Run) bool { return run.GetId() == claims.RunID }
	}
	check := func(state *store.StateStore, run *daguhav1.Run) error {
		for depth := 0; run != nil && depth < maxRunDepth; depth++ {
			if held(run) {
				return nil
			}
			parent := run.GetParentDagRunId()
			if parent == "" {
				break
			}
			var err error
			if run, err = state.Run(parent); err != nil {
				return err
			}
		}
		return &ForbiddenError{Reason: fmt.Sprintf("run %q is neither a run the worker holds nor one of its descendants", runID)}
	}
	return watchRun(ctx, d.backend.State, runID, minIndex, wait, check)
}

// watchRun is WatchRun with a check of the run, once it exists, before
// anything of it is returned.
func watchRun(ctx context.Context, state func() *store.StateStore, runID string, minIndex uint64, wait time.Duration, check func(*store.StateStore, *daguhav1.Run) error) (*daguhav1.Run, error) {
	checked := check == nil
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		current := state()
		run, watch, err := current.RunWatch(runID)
		if err != nil {
			return nil, err
		}
		if run != nil && !checked {
			// A run's place in its hierarchy never changes: once is enough.
			if err := check(current, run); err != nil {
				return nil, err
			}
			checked = true
		}
		// A run this server does not know yet may be on its way here (a
		// follower a little behind the leader): wait for it as for a change.
		if run != nil && run.GetModifyIndex() > minIndex {
			return run, nil
		}
		select {
		case <-watch:
		case <-timer.C:
			if run == nil {
				return nil, &NotFoundError{Reason: fmt.Sprintf("run %q does not exist", runID)}
			}
			return run, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// RootOf names the root of the hierarchy a child of parent joins: the
// parent's root, or the parent itself when it records none (a root run of
// an older server, which left its own root empty). Every path that makes
// a child (a worker's run step, the API's parent fields) asks this.
func RootOf(parent *daguhav1.Run) (name, id string) {
	if parent.GetRootDagRunId() == "" {
		return parent.GetDagName(), parent.GetId()
	}
	return parent.GetRootDagRunName(), parent.GetRootDagRunId()
}
