package store

import (
	"fmt"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// RetryRuns queues finished root runs again under their own ids, each for
// a new attempt (`daguha retry`, Dagu's retry). Which of the last
// attempt's step states the new attempt keeps is decided here, from the
// run's record, so every replica keeps the same ones:
//
//   - without a step: every step that did not succeed runs again, and so
//     does every step after one that runs again (its input may change);
//     the others keep their results, as in Dagu. When that leaves nothing
//     to run (a run that succeeded), every step runs again.
//   - with a step: that step runs again, and every step after it; all
//     other steps keep what they recorded. (Dagu reruns the named step
//     alone; a step after it that never ran because it failed would then
//     never run.)
//
// A step with no recorded end runs again. Handlers always run again. A
// run that is queued or running, or a child run, is refused and left as
// it is; so is a step name the run's DAG does not have.
func (s *StateStore) RetryRuns(index uint64, retries []*daguhav1.RetryRun) ([]*daguhav1.RunOutcome, error) {
	txn := s.db.Txn(true)
	defer txn.Abort()
	outcomes := make([]*daguhav1.RunOutcome, 0, len(retries))
	for _, retry := range retries {
		id := retry.GetRunId()
		refuse := func(kind daguhav1.RefusalKind, format string, args ...any) {
			outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: id, Refused: fmt.Sprintf(format, args...), RefusalKind: kind})
		}
		run, err := getRun(txn, id)
		if err != nil {
			return nil, err
		}
		switch {
		case run == nil:
			refuse(daguhav1.RefusalKind_REFUSAL_KIND_NOT_FOUND, "run %q does not exist", id)
			continue
		case run.GetStatus() != statusSucceeded && run.GetStatus() != statusFailed && run.GetStatus() != statusCancelled:
			refuse(daguhav1.RefusalKind_REFUSAL_KIND_CONFLICT, "run %q is %s, not finished: only a finished run can be retried", id, run.GetStatus().Word())
			continue
		case run.GetParentDagRunId() != "":
			refuse(daguhav1.RefusalKind_REFUSAL_KIND_CONFLICT, "run %q is a child of run %q: retry its root run %q", id, run.GetParentDagRunId(), run.GetRootDagRunId())
			continue
		}
		kept, ok := keptSteps(run, retry.GetStep())
		if !ok {
			refuse(daguhav1.RefusalKind_REFUSAL_KIND_INVALID, "run %q: DAG %q has no step named %q", id, run.GetDagName(), retry.GetStep())
			continue
		}
		updated := copyRun(run)
		updated.Status = statusQueued
		updated.WorkerId = ""
		updated.CancelRequested = false
		updated.StartedAtUnixNano, updated.FinishedAtUnixNano, updated.RetryAfterUnixNano = 0, 0, 0
		updated.Error = ""
		updated.Steps = kept
		updated.KeptSteps = kept
		updated.Outputs = keptOutputs(run, kept)
		updated.RetriesRequested++
		updated.ModifyIndex = index
		if err := txn.Insert(tableRuns, updated); err != nil {
			return nil, fmt.Errorf("retry %q: %w", id, err)
		}
		if err := adjustPending(txn, run.GetSelectorKey(), run.GetDag().GetWorkerSelector(), 1); err != nil {
			return nil, err
		}
		outcomes = append(outcomes, &daguhav1.RunOutcome{RunId: id, Applied: true})
	}
	if err := commitWithIndex(txn, index, tableRuns, tableSelectors); err != nil {
		return nil, err
	}
	return outcomes, nil
}

// keptSteps are the step states a retry of run keeps, in the DAG's order
// (see RetryRuns); ok is false when step is set and the DAG has no such
// step.
func keptSteps(run *daguhav1.Run, step string) (kept []*daguhav1.StepState, ok bool) {
	steps := run.GetDag().GetSteps()
	byName := make(map[string]int, len(steps))
	for i, s := range steps {
		byName[s.GetName()] = i
	}
	if _, found := byName[step]; step != "" && !found {
		return nil, false
	}
	recorded := map[string]*daguhav1.StepState{}
	for _, st := range run.GetSteps() {
		if st.GetHandler() == "" {
			recorded[st.GetName()] = st
		}
	}
	// rerun is worked out depth first over the dependencies; a cycle (the
	// parser refuses them) counts as running again.
	const unknown, visiting, yes, no = 0, 1, 2, 3
	mark := make([]int, len(steps))
	var rerun func(i int) bool
	rerun = func(i int) bool {
		switch mark[i] {
		case visiting, yes:
			return true
		case no:
			return false
		}
		mark[i] = visiting
		st := recorded[steps[i].GetName()]
		again := !stepEnded(st)
		if step == "" {
			again = again || st.GetStatus() != daguhav1.StepStatus_STEP_STATUS_SUCCEEDED
		} else {
			again = again || steps[i].GetName() == step
		}
		for _, dep := range steps[i].GetDepends() {
			if j, found := byName[dep]; found && rerun(j) {
				again = true
			}
		}
		mark[i] = no
		if again {
			mark[i] = yes
		}
		return again
	}
	for i, s := range steps {
		if !rerun(i) {
			kept = append(kept, recorded[s.GetName()])
		}
	}
	if step == "" && len(kept) == len(steps) {
		// Nothing failed: a retry that ran nothing would be no retry.
		return nil, true
	}
	return kept, true
}

// stepEnded tells whether a recorded step state is an end: a state
// caught running when the run ended is not kept.
func stepEnded(st *daguhav1.StepState) bool {
	switch st.GetStatus() {
	case daguhav1.StepStatus_STEP_STATUS_SUCCEEDED, daguhav1.StepStatus_STEP_STATUS_FAILED,
		daguhav1.StepStatus_STEP_STATUS_SKIPPED, daguhav1.StepStatus_STEP_STATUS_CANCELLED:
		return true
	}
	return false
}

// keptOutputs are the values of the output variables of the kept steps,
// as the run recorded them: the new attempt starts from them.
func keptOutputs(run *daguhav1.Run, kept []*daguhav1.StepState) map[string]string {
	if len(kept) == 0 || len(run.GetOutputs()) == 0 {
		return nil
	}
	names := map[string]bool{}
	for _, st := range kept {
		names[st.GetName()] = true
	}
	var outputs map[string]string
	for _, s := range run.GetDag().GetSteps() {
		if !names[s.GetName()] || s.GetOutput() == "" {
			continue
		}
		if value, ok := run.GetOutputs()[s.GetOutput()]; ok {
			if outputs == nil {
				outputs = map[string]string{}
			}
			outputs[s.GetOutput()] = value
		}
	}
	return outputs
}
