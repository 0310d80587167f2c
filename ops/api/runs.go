package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/daguha/daguha/ops/service"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

type stepRequest = wire.InlineStep

// dagRequest is a DAG sent inline with an enqueue. Both Dagu spellings of
// the selector key are accepted.
type dagRequest = wire.InlineDag

type enqueueRequest wire.EnqueueRequest

type enqueueResponse = wire.Enqueued

// enqueueRun records a new run: see service.Enqueue. The path is Dagu's
// too (a run of a DAG file sent whole): a body with one of Dagu's keys
// (spec, name, dagRunId, ...) is Dagu's and answered as Dagu answers;
// any other is daguha's.
func (s *Server) enqueueRun(w http.ResponseWriter, r *http.Request) error {
	data, err := readBody(r, maxDagPushBytes)
	if err != nil {
		return err
	}
	keys := bodyKeys(data)
	if anyKey(keys, daguRunKeys...) {
		var req wire.DaguRunFromSpec
		if err := decodeStrict(data, &req); err != nil {
			return err
		}
		return s.writeRunFromSpec(w, r, req, service.SingletonRunning)
	}
	if anyKey(keys, "runs") {
		return s.enqueueBatch(w, r, data)
	}
	if len(data) > maxBodyBytes {
		return invalid(fmt.Errorf("request body: more than %d bytes", maxBodyBytes))
	}
	var req enqueueRequest
	if err := decodeStrict(data, &req); err != nil {
		return err
	}
	enqueued, err := s.service.Enqueue(r.Context(), enqueueOf(req))
	if err != nil {
		return err
	}
	code := http.StatusOK
	if enqueued.Created {
		code = http.StatusCreated
	}
	writeJSON(w, code, enqueueResponse{DagRunID: enqueued.RunID, Created: enqueued.Created})
	return nil
}

// enqueueBatch is the bulk enqueue: {"runs": [...]}, up to
// wire.MaxEnqueueBatch runs, each enqueued as if sent alone. The answer is
// 200 with each run's outcome (its status as it would have had alone);
// only a body that is not a batch is refused as a whole.
func (s *Server) enqueueBatch(w http.ResponseWriter, r *http.Request, data []byte) error {
	var batch wire.EnqueueBatch
	if err := decodeStrict(data, &batch); err != nil {
		return err
	}
	if len(batch.Runs) == 0 || len(batch.Runs) > wire.MaxEnqueueBatch {
		return invalid(fmt.Errorf("runs: %d runs; a bulk enqueue takes 1 to %d", len(batch.Runs), wire.MaxEnqueueBatch))
	}
	reqs := make([]service.EnqueueRequest, len(batch.Runs))
	for i, run := range batch.Runs {
		reqs[i] = enqueueOf(enqueueRequest(run))
	}
	answer := wire.EnqueuedBatch{Runs: make([]wire.EnqueueOutcome, len(reqs))}
	for i, result := range s.service.EnqueueMany(r.Context(), reqs) {
		out := wire.EnqueueOutcome{DagRunID: result.Enqueued.RunID, Created: result.Enqueued.Created}
		switch {
		case result.Err != nil:
			out.Status, out.Error, out.DagRunID = statusOf(result.Err), result.Err.Error(), reqs[i].DagRunID
			answer.Failed++
		case result.Enqueued.Created:
			out.Status = http.StatusCreated
			answer.Created++
		default:
			out.Status = http.StatusOK
			answer.Existed++
		}
		answer.Runs[i] = out
	}
	writeJSON(w, http.StatusOK, answer)
	return nil
}

// enqueueOf is the service's form of an enqueue request.
func enqueueOf(req enqueueRequest) service.EnqueueRequest {
	out := service.EnqueueRequest{
		DagName: req.DagName, DagRunID: req.DagRunID, Params: req.Params,
		Yaml: req.Yaml, File: req.File, ParentDagRunID: req.ParentDagRunID,
	}
	if dag := req.Dag; dag != nil {
		out.Dag = &service.InlineDag{
			Name: dag.Name, Description: dag.Description,
			WorkerSelector: dag.WorkerSelector, WorkerSelectorEscape: dag.WorkerSelectorEscape,
		}
		for _, step := range dag.Steps {
			out.Dag.Steps = append(out.Dag.Steps, service.InlineStep{Name: step.Name, Command: step.Command})
		}
	}
	return out
}

// StepView is a step of a run as the API shows it.
type StepView = wire.Step

// ChildView is a child run, in its parent's detail.
type ChildView = wire.Child

// AttemptView is one attempt of a run.
type AttemptView = wire.Attempt

// RunView is a run as the API shows it.
type RunView = wire.Run

// timestamp formats a time in RFC 3339 UTC, or "" for none.
func timestamp(unixNano int64) string {
	if unixNano == 0 {
		return ""
	}
	return time.Unix(0, unixNano).UTC().Format(time.RFC3339Nano)
}

func viewRun(run *daguhav1.Run) RunView {
	view := RunView{
		DagName:          run.GetDagName(),
		DagRunID:         run.GetId(),
		Status:           service.RunStatusName(run.GetStatus()),
		Params:           run.GetParams(),
		WorkerSelector:   run.GetDag().GetWorkerSelector(),
		EnqueuedAt:       timestamp(run.GetEnqueuedAtUnixNano()),
		StartedAt:        timestamp(run.GetStartedAtUnixNano()),
		FinishedAt:       timestamp(run.GetFinishedAtUnixNano()),
		WorkerID:         run.GetWorkerId(),
		Attempt:          run.GetAttempt(),
		Error:            run.GetError(),
		CancelRequested:  run.GetCancelRequested(),
		RootDagRunName:   run.GetRootDagRunName(),
		RootDagRunID:     run.GetRootDagRunId(),
		ParentDagRunName: run.GetParentDagRunName(),
		ParentDagRunID:   run.GetParentDagRunId(),
		ParentStepName:   run.GetParentStepName(),
		Outputs:          run.GetOutputs(),
		DagRetries:       run.GetDagRetries(),
		Retries:          run.GetRetriesRequested(),
		Queue:            service.RunQueue(run),
		Steps:            []StepView{},
		Attempts:         []AttemptView{},
		CreateIndex:      run.GetCreateIndex(),
		ModifyIndex:      run.GetModifyIndex(),
	}
	if view.WorkerSelector == nil {
		view.WorkerSelector = map[string]string{}
	}
	if view.Outputs == nil {
		view.Outputs = map[string]string{}
	}
	if slot := run.GetScheduleSlotUnix(); slot != 0 {
		view.ScheduledSlot = timestamp(slot * 1e9)
	}
	for _, step := range run.GetSteps() {
		stepView := StepView{
			Name: step.GetName(), Status: service.StepStatusName(step.GetStatus()), ExitCode: step.GetExitCode(),
			StartedAt: timestamp(step.GetStartedAtUnixNano()), FinishedAt: timestamp(step.GetFinishedAtUnixNano()),
			OutputTail: step.GetOutputTail(), Error: step.GetError(), Retry: step.GetRetry(), ChildRunID: step.GetChildRunId(),
			ParallelChildren: viewParallelChildren(step.GetParallelChildren()),
			Repeat:           step.GetRepeat(), Handler: step.GetHandler(),
		}
		for _, c := range step.GetPreconditions() {
			stepView.Preconditions = append(stepView.Preconditions, wire.Condition{
				Condition: c.GetCondition(), Expected: c.GetExpected(), Negate: c.GetNegate(), Met: c.GetMet(), Actual: c.GetActual(),
			})
		}
		view.Steps = append(view.Steps, stepView)
	}
	for _, a := range run.GetAttempts() {
		view.Attempts = append(view.Attempts, AttemptView{
			Attempt: a.GetAttempt(), WorkerID: a.GetWorkerId(), FencingToken: a.GetFencingToken(),
			StartedAt: timestamp(a.GetStartedAtUnixNano()), EndedAt: timestamp(a.GetEndedAtUnixNano()), Outcome: a.GetOutcome(),
		})
	}
	return view
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("dag_run_id")
	query := r.URL.Query()
	detail, err := s.service.Run(r.Context(), service.RunQuery{ID: id, Stale: stale(r), Index: query.Get("index"), Wait: query.Get("wait")})
	if err != nil {
		return err
	}
	view := viewRun(detail.Run)
	view.Reason = detail.Reason
	view.Graph = viewDagSteps(detail.Run.GetDag().GetSteps())
	view.Children = []ChildView{}
	for _, child := range detail.Children {
		view.Children = append(view.Children, ChildView{
			DagName: child.GetDagName(), DagRunID: child.GetId(), Status: service.RunStatusName(child.GetStatus()),
			StepName: child.GetParentStepName(), WorkerID: child.GetWorkerId(),
			StartedAt: timestamp(child.GetStartedAtUnixNano()), FinishedAt: timestamp(child.GetFinishedAtUnixNano()),
		})
	}
	writeJSON(w, http.StatusOK, view)
	return nil
}

// listRuns lists runs, newest first, at most limit (default 100, at
// most 10000) per page; ?after= (or Dagu's ?cursor=) with the previous
// page's next cursor gives the following page. Filters: daguha's
// dag_name, status, worker_id, root_dag_run_id and parent_dag_run_id,
// and Dagu's name (part of the DAG's name), dagRunId (part of the id),
// status (Dagu's numbers, repeated for any of them), fromDate and toDate
// (Unix seconds, on the enqueue time). The path is Dagu's too: the page
// comes in both shapes (runs, truncated, next and Dagu's dagRuns,
// nextCursor).
func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) error {
	page, err := s.runPageOf(daguV2, r, "")
	if err != nil {
		return err
	}
	body := wire.SharedRunList{RunList: wire.RunList{Runs: []RunView{}, Truncated: page.Truncated, Next: page.Next}, DaguRunsPage: daguRunsPage(apiV2, page)}
	for _, run := range page.Runs {
		body.Runs = append(body.Runs, viewRun(run))
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// cancelRun cancels a queued run at once, or asks the worker of a running
// one to stop it.
func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("dag_run_id")
	if err := s.service.Cancel(r.Context(), id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.Cancelled{DagRunID: id})
	return nil
}

// viewParallelChildren is what a parallel step's state records of its
// items' children, as the API shows it.
func viewParallelChildren(children []*daguhav1.ParallelChild) []wire.ParallelChild {
	var out []wire.ParallelChild
	for _, child := range children {
		out = append(out, wire.ParallelChild{DagRunID: child.GetChildRunId(), Params: child.GetParams(), Status: service.RunStatusName(child.GetStatus())})
	}
	return out
}
