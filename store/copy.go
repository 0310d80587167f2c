package store

import (
	"slices"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// copyRun is the copy a transition changes instead of the stored record:
// its own fields and its own Steps and Attempts slices, sharing the
// messages they point to (the DAG, each step state, each attempt, the
// outputs map) with the record it copies. Stored records are never
// changed in place, and transitions replace those messages rather than
// change them (endAttempt clones the attempt it ends), so sharing them is
// safe; proto.Clone copied the whole DAG on every step report. KeptSteps
// is shared too: only a retry sets it, to a slice of its own. A new field
// of Run must be added here (TestCopyRunCopiesEveryField fails until it is).
func copyRun(run *daguhav1.Run) *daguhav1.Run {
	return &daguhav1.Run{
		Id:                 run.Id,
		DagName:            run.DagName,
		Params:             run.Params,
		Status:             run.Status,
		EnqueuedAtUnixNano: run.EnqueuedAtUnixNano,
		CreateIndex:        run.CreateIndex,
		ModifyIndex:        run.ModifyIndex,
		RootDagRunName:     run.RootDagRunName,
		RootDagRunId:       run.RootDagRunId,
		ParentDagRunName:   run.ParentDagRunName,
		ParentDagRunId:     run.ParentDagRunId,
		Dag:                run.Dag,
		SelectorKey:        run.SelectorKey,
		Attempt:            run.Attempt,
		WorkerId:           run.WorkerId,
		FencingToken:       run.FencingToken,
		StartedAtUnixNano:  run.StartedAtUnixNano,
		FinishedAtUnixNano: run.FinishedAtUnixNano,
		Error:              run.Error,
		Steps:              slices.Clone(run.Steps),
		Attempts:           slices.Clone(run.Attempts),
		CancelRequested:    run.CancelRequested,
		LocalDags:          run.LocalDags,
		ScheduleSlotUnix:   run.ScheduleSlotUnix,
		Outputs:            run.Outputs,
		ParentStepName:     run.ParentStepName,
		DagRetries:         run.DagRetries,
		RetryAfterUnixNano: run.RetryAfterUnixNano,
		KeptSteps:          run.KeptSteps,
		RetriesRequested:   run.RetriesRequested,
	}
}
