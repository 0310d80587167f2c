package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/dispatch/valid"
	"github.com/daguha/daguha/fsm"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// enqueueRequest is the body of an enqueue, with the checks of its
// fields (the wire type is data only).
type enqueueRequest wire.EnqueueRequest

type enqueueResponse = wire.Enqueued

// checkRunID says what is wrong with a caller's run id, if anything
// ("" is none: the server picks one).
func checkRunID(id string) error {
	if id == "" {
		return nil
	}
	if err := valid.RunID(id); err != nil {
		return fmt.Errorf("dag_run_id: %w", err)
	}
	return nil
}

// validate checks the request and returns the DAG to run; every problem is
// reported, each naming the field. The rules are package valid's, as for
// DAG files and workers' labels.
func (req *enqueueRequest) validate() (*daguhav1.DagSpec, error) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if req.Dag != nil && req.DagName == "" {
		req.DagName = req.Dag.Name
	}
	if req.DagName == "" {
		add("dag_name is required (or dag.name with an inline dag)")
	} else if err := valid.DagName(req.DagName); err != nil {
		add("dag_name: %v", err)
	}
	if err := checkRunID(req.DagRunID); err != nil {
		add("%v", err)
	}
	if err := checkRequestSizes(req); err != nil {
		add("%v", err)
	}
	if req.Dag == nil {
		if len(problems) > 0 {
			return nil, errors.New(strings.Join(problems, "; "))
		}
		// A stored DAG, looked up by the caller.
		return nil, nil
	}
	dag := req.Dag
	if dag.Name != "" && dag.Name != req.DagName {
		add("dag_name %s and dag.name %s differ", valid.Quote(req.DagName), valid.Quote(dag.Name))
	}
	selector := dag.WorkerSelector
	field := "dag.workerSelector"
	if len(dag.WorkerSelectorEscape) > 0 {
		if len(selector) > 0 {
			add("dag has both workerSelector and worker_selector; use one")
		}
		selector, field = dag.WorkerSelectorEscape, "dag.worker_selector"
	}
	if err := valid.LabelCount(len(selector)); err != nil {
		add("%s: %v", field, err)
	} else {
		keys := make([]string, 0, len(selector))
		for key := range selector {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			// Selectors are queued under "k=v,k=v" and workers give their
			// labels in that form: the rules keep the two in step.
			if err := valid.LabelKey(key); err != nil {
				add("%s: %v", field, err)
			} else if err := valid.LabelValue(key, selector[key]); err != nil {
				add("%s: %v", field, err)
			}
		}
	}
	if err := valid.StepCount(len(dag.Steps)); err != nil {
		add("dag.steps: %v", err)
		// Too many steps are not read one by one.
		return nil, errors.New(strings.Join(problems, "; "))
	}
	spec := &daguhav1.DagSpec{Name: req.DagName, WorkerSelector: selector}
	seen := map[string]bool{}
	for i, step := range dag.Steps {
		switch err := valid.StepName(step.Name); {
		case err != nil:
			add("dag.steps[%d].name: %v", i, err)
		case seen[step.Name]:
			add("dag.steps[%d].name %s is used by an earlier step", i, valid.Quote(step.Name))
		}
		seen[step.Name] = true
		if strings.TrimSpace(step.Command) == "" {
			add("dag.steps[%d] (%s) has no command", i, valid.Quote(step.Name))
		} else if err := valid.Command(step.Command); err != nil {
			add("dag.steps[%d] (%s): %v", i, valid.Quote(step.Name), err)
		}
		// An inline DAG's steps run in the order given, as a chain.
		stepSpec := &daguhav1.StepSpec{Name: step.Name, Command: step.Command}
		if i > 0 {
			stepSpec.Depends = []string{dag.Steps[i-1].Name}
		}
		spec.Steps = append(spec.Steps, stepSpec)
	}
	if len(problems) == 0 {
		if err := valid.DagSize(proto.Size(spec)); err != nil {
			add("dag: %v", err)
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return spec, nil
}

// checkRequestSizes checks the parts of an enqueue that every form of it
// has: params and the parent's run id.
func checkRequestSizes(req *enqueueRequest) error {
	if err := valid.Params(req.Params); err != nil {
		return err
	}
	if req.ParentDagRunID != "" {
		if err := valid.RunID(req.ParentDagRunID); err != nil {
			return fmt.Errorf("parent_dag_run_id: %w", err)
		}
	}
	return nil
}

// enqueueRun records a new run. The server that accepts the request picks
// the run id (when the caller did not) and the enqueue time before the
// command goes to the leader, so retries of the command are identical.
func (s *Server) enqueueRun(w http.ResponseWriter, r *http.Request) {
	var req enqueueRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	var (
		spec   *daguhav1.DagSpec
		locals []*daguhav1.DagSpec
		err    error
	)
	if req.Yaml != "" {
		if req.Dag != nil {
			writeError(w, http.StatusBadRequest, errors.New("send either yaml or dag, not both"))
			return
		}
		if err := checkRunID(req.DagRunID); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		if err := checkRequestSizes(&req); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		if err := s.cluster.ConsistentRead(r.Context()); err != nil {
			writeClusterError(w, err)
			return
		}
		name := req.File
		if name == "" {
			name = "request.yaml"
		}
		files, err := ParseDags(s.cluster.FSM().State(), []DagSource{{Name: name, Content: req.Yaml}})
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		spec, locals = files[0].Dags[0], files[0].Dags[1:]
		if req.DagName != "" && req.DagName != spec.GetName() {
			writeError(w, http.StatusBadRequest, fmt.Errorf("dag_name %q and the file's DAG %q differ", req.DagName, spec.GetName()))
			return
		}
		req.DagName = spec.GetName()
	} else {
		spec, err = req.validate()
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
	}
	if spec == nil {
		if err := s.cluster.ConsistentRead(r.Context()); err != nil {
			writeClusterError(w, err)
			return
		}
		stored, err := s.cluster.FSM().State().Dag(req.DagName)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		if stored == nil {
			writeError(w, http.StatusNotFound, fmt.Errorf("no DAG named %q is stored (push it with daguha dag push, or send the file in \"yaml\")", req.DagName))
			return
		}
		spec, locals = stored.GetSpec(), stored.GetLocalDags()
	}
	if _, err := dagfile.MergeParams(spec.GetParams(), req.Params); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("params %q: %w", req.Params, err))
		return
	}
	if req.DagRunID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			writeError(w, http.StatusInternalServerError, fmt.Errorf("make a run id: %w", err))
			return
		}
		req.DagRunID = id.String()
	}
	run := &daguhav1.Run{
		Id:                 req.DagRunID,
		DagName:            req.DagName,
		Params:             req.Params,
		EnqueuedAtUnixNano: s.now().UnixNano(),
		Dag:                spec,
		LocalDags:          locals,
		// A root run is its own root, as in the seed's running_tasks.
		RootDagRunName: req.DagName,
		RootDagRunId:   req.DagRunID,
	}
	if req.ParentDagRunID != "" {
		if err := s.cluster.ConsistentRead(r.Context()); err != nil {
			writeClusterError(w, err)
			return
		}
		parent, err := s.cluster.FSM().State().Run(req.ParentDagRunID)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		if parent == nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("parent_dag_run_id %q: no such run", req.ParentDagRunID))
			return
		}
		run.ParentDagRunName, run.ParentDagRunId = parent.GetDagName(), parent.GetId()
		run.RootDagRunName, run.RootDagRunId = parent.GetRootDagRunName(), parent.GetRootDagRunId()
	}
	if ackBeforeCommit {
		s.enqueueUncommitted(w, run)
		return
	}
	outcome, err := s.enqueue(r.Context(), run)
	if err != nil {
		writeClusterError(w, err)
		return
	}
	switch {
	case outcome.GetConflict() != "":
		writeError(w, http.StatusConflict, errors.New(outcome.GetConflict()))
	case outcome.GetCreated():
		s.metrics.RunEnqueued()
		writeJSON(w, http.StatusCreated, enqueueResponse{DagRunID: run.GetId(), Created: true})
	default:
		writeJSON(w, http.StatusOK, enqueueResponse{DagRunID: run.GetId()})
	}
}

// enqueueUncommitted is the enqueue of the chaos_broken_ack build (see
// ackBeforeCommit), wrong on purpose: it answers "created" at once and
// hands the command to Raft in the background, for two seconds at most.
// The line it logs when the background write ends lets a test wait for
// the write to be given up before it heals a partition.
func (s *Server) enqueueUncommitted(w http.ResponseWriter, run *daguhav1.Run) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _, err := s.cluster.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{run}})
		s.logger.Warn("chaos_broken_ack: background enqueue ended", "run", run.GetId(), "error", err)
	}()
	writeJSON(w, http.StatusCreated, enqueueResponse{DagRunID: run.GetId(), Created: true})
}

// The API's views of runs are the wire types (ops/wire).
type (
	StepView    = wire.Step
	ChildView   = wire.Child
	AttemptView = wire.Attempt
	RunView     = wire.Run
)

// statusName is the lower-case status word the API uses.
func statusName[T interface{ String() string }](status T, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(status.String(), prefix))
}

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
		Status:           statusName(run.GetStatus(), "RUN_STATUS_"),
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
		view.Steps = append(view.Steps, StepView{
			Name: step.GetName(), Status: statusName(step.GetStatus(), "STEP_STATUS_"), ExitCode: step.GetExitCode(),
			StartedAt: timestamp(step.GetStartedAtUnixNano()), FinishedAt: timestamp(step.GetFinishedAtUnixNano()),
			OutputTail: step.GetOutputTail(), Error: step.GetError(), Retry: step.GetRetry(), ChildRunID: step.GetChildRunId(),
		})
	}
	for _, a := range run.GetAttempts() {
		view.Attempts = append(view.Attempts, AttemptView{
			Attempt: a.GetAttempt(), WorkerID: a.GetWorkerId(), FencingToken: a.GetFencingToken(),
			StartedAt: timestamp(a.GetStartedAtUnixNano()), EndedAt: timestamp(a.GetEndedAtUnixNano()), Outcome: a.GetOutcome(),
		})
	}
	return view
}

// queuedReason explains why a queued run is waiting when no registered
// worker can take it.
func (s *Server) queuedReason(run *daguhav1.Run) string {
	if run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_QUEUED {
		return ""
	}
	selector := run.GetDag().GetWorkerSelector()
	matched, workers := false, 0
	_ = s.cluster.FSM().State().EachWorker(func(w *daguhav1.Worker) bool {
		workers++
		matched = dispatch.Matches(selector, w.GetLabels())
		return !matched
	})
	switch {
	case matched:
		return ""
	case workers == 0:
		return "no worker has registered with the cluster"
	case len(selector) == 0:
		return ""
	}
	return "no worker matches selector " + valid.FormatLabels(selector)
}

// readBarrier makes the read that follows linearizable unless ?stale.
func (s *Server) readBarrier(w http.ResponseWriter, r *http.Request) bool {
	if stale(r) {
		return true
	}
	if err := s.cluster.ConsistentRead(r.Context()); err != nil {
		writeClusterError(w, err)
		return false
	}
	return true
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("dag_run_id")
	if !s.readBarrier(w, r) {
		return
	}
	run, err := s.cluster.FSM().State().Run(id)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if run == nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("no DAG run with id %q", id))
		return
	}
	// A blocking query, as Consul's: ?index=N answers once the run's
	// modify index passes N, or after ?wait (default 30 s, at most 60 s).
	if v := r.URL.Query().Get("index"); v != "" {
		index, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("index %q: want a Raft index", v))
			return
		}
		wait := 30 * time.Second
		if v := r.URL.Query().Get("wait"); v != "" {
			if wait, err = time.ParseDuration(v); err != nil || wait <= 0 {
				writeError(w, http.StatusBadRequest, fmt.Errorf("wait %q: want a duration such as 10s", v))
				return
			}
		}
		run, err = dispatch.WatchRun(r.Context(), s.cluster.FSM().State, id, index, min(wait, time.Minute))
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err)
			return
		}
	}
	view := viewRun(run)
	view.Reason = s.queuedReason(run)
	children, err := s.cluster.FSM().State().Children(id)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	view.Children = []ChildView{}
	for _, child := range children {
		view.Children = append(view.Children, ChildView{
			DagName: child.GetDagName(), DagRunID: child.GetId(), Status: statusName(child.GetStatus(), "RUN_STATUS_"),
			StepName: child.GetParentStepName(), WorkerID: child.GetWorkerId(),
			StartedAt: timestamp(child.GetStartedAtUnixNano()), FinishedAt: timestamp(child.GetFinishedAtUnixNano()),
		})
	}
	writeJSON(w, http.StatusOK, view)
}

type runListBody = wire.RunList

// runCursor is a place in the list's order (newest first: create index
// down, then run id down; runs enqueued in one command share an index).
type runCursor struct {
	index uint64
	id    string
}

func (c runCursor) String() string { return fmt.Sprintf("%d/%s", c.index, c.id) }

func parseRunCursor(text string) (runCursor, error) {
	index, id, ok := strings.Cut(text, "/")
	n, err := strconv.ParseUint(index, 10, 64)
	if !ok || err != nil || id == "" {
		return runCursor{}, fmt.Errorf("after %q: not a cursor from a previous page's \"next\"", text)
	}
	return runCursor{index: n, id: id}, nil
}

// before reports whether run a comes before run b in the list's order.
func listedBefore(a, b *daguhav1.Run) bool {
	if a.GetCreateIndex() != b.GetCreateIndex() {
		return a.GetCreateIndex() > b.GetCreateIndex()
	}
	return a.GetId() > b.GetId()
}

// listRuns lists runs, filtered by dag_name, status and worker_id, newest
// first, at most limit (default 100, at most 10000) per page; ?after=
// with the previous page's next cursor gives the following page.
func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	limit := 100
	if v := query.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit %q: want a number from 1 to 10000", v))
			return
		}
		limit = n
	}
	var after *runCursor
	if v := query.Get("after"); v != "" {
		c, err := parseRunCursor(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		after = &c
	}
	statusFilter := query.Get("status")
	switch statusFilter {
	case "", "queued", "running", "succeeded", "failed", "cancelled":
	default:
		writeError(w, http.StatusBadRequest, fmt.Errorf("status %q: want queued, running, succeeded, failed or cancelled", statusFilter))
		return
	}
	if !s.readBarrier(w, r) {
		return
	}
	kept := &newest{limit: limit}
	_ = s.cluster.FSM().State().EachRun(func(run *daguhav1.Run) bool {
		if (query.Get("dag_name") == "" || run.GetDagName() == query.Get("dag_name")) &&
			(query.Get("root_dag_run_id") == "" || run.GetRootDagRunId() == query.Get("root_dag_run_id")) &&
			(query.Get("parent_dag_run_id") == "" || run.GetParentDagRunId() == query.Get("parent_dag_run_id")) &&
			(statusFilter == "" || statusName(run.GetStatus(), "RUN_STATUS_") == statusFilter) &&
			(query.Get("worker_id") == "" || run.GetWorkerId() == query.Get("worker_id")) &&
			(after == nil || listedBefore(&daguhav1.Run{CreateIndex: after.index, Id: after.id}, run)) {
			kept.offer(run)
		}
		return true
	})
	runs, truncated := kept.page()
	body := runListBody{Runs: []RunView{}}
	for _, run := range runs {
		body.Runs = append(body.Runs, viewRun(run))
	}
	if truncated {
		body.Truncated = true
		last := runs[len(runs)-1]
		body.Next = runCursor{index: last.GetCreateIndex(), id: last.GetId()}.String()
	}
	writeJSON(w, http.StatusOK, body)
}

// cancelRun cancels a queued run at once, or asks the worker of a running
// one to stop it.
func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("dag_run_id")
	if !utf8.ValidString(id) {
		// No run has such an id, and no command can carry it.
		writeError(w, http.StatusNotFound, fmt.Errorf("no DAG run with id %q (not UTF-8)", id))
		return
	}
	result, _, err := s.cluster.Apply(r.Context(), fsm.CancelRunsType, &daguhav1.CancelRunsCommand{RunIds: []string{id}, NowUnixNano: s.now().UnixNano()})
	if err != nil {
		writeClusterError(w, err)
		return
	}
	outcome := result.(*daguhav1.CancelRunsResult).GetOutcomes()[0]
	s.metrics.RunsCancelledAtOnce(outcome.GetEndedCancelled())
	if !outcome.GetApplied() {
		code := http.StatusConflict
		if strings.Contains(outcome.GetRefused(), "does not exist") {
			code = http.StatusNotFound
		}
		writeError(w, code, errors.New(outcome.GetRefused()))
		return
	}
	writeJSON(w, http.StatusOK, wire.Cancelled{DagRunID: id})
}
