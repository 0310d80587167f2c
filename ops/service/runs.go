package service

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/dispatch/valid"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// RunStatusName is the word for a run's status ("queued", "running",
// "succeeded", ...), as runs are shown and filtered by.
func RunStatusName(status daguhav1.RunStatus) string { return status.Word() }

// StepStatusName is the word for a step's status.
func StepStatusName(status daguhav1.StepStatus) string { return status.Word() }

// queuedReason explains why a queued run is waiting when no registered
// worker can take it.
func (s *Service) queuedReason(run *daguhav1.Run) string {
	if run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_QUEUED {
		return ""
	}
	if notBefore := run.GetRetryAfterUnixNano(); notBefore > s.now().UnixNano() {
		return fmt.Sprintf("retry %d of %d after the run failed, not before %s", run.GetDagRetries(), run.GetDag().GetRetryPolicy().GetLimit(),
			time.Unix(0, notBefore).UTC().Format(time.RFC3339))
	}
	selector := run.GetDag().GetWorkerSelector()
	matched, selected, workers := false, 0, 0
	var missing []string // what the selected workers lack, each named once
	_ = s.cluster.FSM().State().EachWorker(func(w *daguhav1.Worker) bool {
		workers++
		if !dispatch.Matches(selector, w.GetLabels()) {
			return true
		}
		selected++
		lacks := dispatch.MissingExecutors(w.GetExecutors(), run.GetDag())
		for _, kind := range lacks {
			if !slices.Contains(missing, kind) {
				missing = append(missing, kind)
			}
		}
		matched = len(lacks) == 0
		return !matched
	})
	switch {
	case matched:
		return s.queueReason(run)
	case workers == 0:
		return "no worker has registered with the cluster"
	case selected > 0:
		slices.Sort(missing)
		return missingExecutorsReason(missing, selector)
	case len(selector) == 0:
		return ""
	}
	return "no worker matches selector " + valid.FormatLabels(selector)
}

// missingExecutorsReason says which executors a queued run needs that no
// worker it may go to runs.
func missingExecutorsReason(missing []string, selector map[string]string) string {
	which := "no worker"
	if len(selector) > 0 {
		which = "no worker matching selector " + valid.FormatLabels(selector)
	}
	noun := "executor"
	if len(missing) > 1 {
		noun = "executors"
	}
	return fmt.Sprintf("%s runs the %s %s that its steps need", which, strings.Join(missing, ", "), noun)
}

// queueReason says when a queued run waits for its queue's limit (Dagu's
// queue, else its DAG's maxActiveRuns).
func (s *Service) queueReason(run *daguhav1.Run) string {
	limit := dispatch.QueueLimit(s.queues, run)
	if limit == 0 {
		return ""
	}
	queue := store.QueueOf(run)
	running, err := s.cluster.FSM().State().RunningInQueue(queue)
	if err != nil || running < limit {
		return ""
	}
	return fmt.Sprintf("queue %q runs its limit of %d at once", queue, limit)
}

// RunQuery asks for one run. Index and Wait make it a blocking query, as
// Consul's: with Index (a Raft index, as text) it answers once the run's
// modify index passes it, or after Wait (a duration as text; default
// 30 s, at most a minute). They are checked once the run is found.
type RunQuery struct {
	ID    string
	Stale bool
	Index string
	Wait  string
}

// RunDetail is a run with why it waits (if queued and no worker can
// take it) and its child runs.
type RunDetail struct {
	Run      *daguhav1.Run
	Reason   string
	Children []*daguhav1.Run
}

// Run returns one run in detail.
func (s *Service) Run(ctx context.Context, query RunQuery) (RunDetail, error) {
	if err := s.consistent(ctx, query.Stale); err != nil {
		return RunDetail{}, err
	}
	id := query.ID
	run, err := s.cluster.FSM().State().Run(id)
	if err != nil {
		return RunDetail{}, errorOf(Internal, err)
	}
	if run == nil {
		return RunDetail{}, errorf(NotFound, "no DAG run with id %q", id)
	}
	if query.Index != "" {
		index, err := strconv.ParseUint(query.Index, 10, 64)
		if err != nil {
			return RunDetail{}, errorf(Invalid, "index %q: want a Raft index", query.Index)
		}
		wait := 30 * time.Second
		if query.Wait != "" {
			if wait, err = time.ParseDuration(query.Wait); err != nil || wait <= 0 {
				return RunDetail{}, errorf(Invalid, "wait %q: want a duration such as 10s", query.Wait)
			}
		}
		run, err = dispatch.WatchRun(ctx, s.cluster.FSM().State, id, index, min(wait, time.Minute))
		if err != nil {
			return RunDetail{}, errorOf(Interrupted, err)
		}
	}
	detail := RunDetail{Run: run, Reason: s.queuedReason(run)}
	if detail.Children, err = s.cluster.FSM().State().Children(id); err != nil {
		return RunDetail{}, errorOf(Internal, err)
	}
	return detail, nil
}

// RunFilter selects runs: each field set must match. After is the Next
// cursor of a previous page.
type RunFilter struct {
	DagName        string
	RootDagRunID   string
	ParentDagRunID string
	Status         string
	WorkerID       string
	// Dagu's filters: NameContains is part of the DAG's name (any case),
	// IDContains part of the run id; AnyStatus, when not empty, the
	// statuses one of which the run must have (words, as Status); the run
	// was enqueued at or after EnqueuedFrom and at or before EnqueuedTo
	// (Unix nanoseconds; 0: no bound).
	NameContains string
	IDContains   string
	AnyStatus    []string
	EnqueuedFrom int64
	EnqueuedTo   int64
	After        string
	Limit        int
	Stale        bool
}

// runStatusWords are the statuses a filter may name.
var runStatusWords = []string{"queued", "running", "succeeded", "failed", "cancelled"}

// matches says whether run passes the filter's fields (all but After).
func (filter *RunFilter) matches(run *daguhav1.Run) bool {
	if (filter.DagName != "" && run.GetDagName() != filter.DagName) ||
		(filter.RootDagRunID != "" && run.GetRootDagRunId() != filter.RootDagRunID) ||
		(filter.ParentDagRunID != "" && run.GetParentDagRunId() != filter.ParentDagRunID) ||
		(filter.Status != "" && RunStatusName(run.GetStatus()) != filter.Status) ||
		(filter.WorkerID != "" && run.GetWorkerId() != filter.WorkerID) ||
		(filter.IDContains != "" && !strings.Contains(run.GetId(), filter.IDContains)) ||
		(filter.EnqueuedFrom != 0 && run.GetEnqueuedAtUnixNano() < filter.EnqueuedFrom) ||
		(filter.EnqueuedTo != 0 && run.GetEnqueuedAtUnixNano() > filter.EnqueuedTo) {
		return false
	}
	if filter.NameContains != "" && !strings.Contains(strings.ToLower(run.GetDagName()), strings.ToLower(filter.NameContains)) {
		return false
	}
	return len(filter.AnyStatus) == 0 || slices.Contains(filter.AnyStatus, RunStatusName(run.GetStatus()))
}

// RunPage is a page of runs, newest first.
type RunPage struct {
	Runs []*daguhav1.Run
	// Truncated is true when more runs matched than the limit; Next is
	// then the cursor of the page that follows.
	Truncated bool
	Next      string
}

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

// listedBefore reports whether run a comes before run b in the list's order.
func listedBefore(a, b *daguhav1.Run) bool {
	if a.GetCreateIndex() != b.GetCreateIndex() {
		return a.GetCreateIndex() > b.GetCreateIndex()
	}
	return a.GetId() > b.GetId()
}

// ListRuns lists the runs the filter selects, newest first, at most
// filter.Limit of them.
func (s *Service) ListRuns(ctx context.Context, filter RunFilter) (RunPage, error) {
	var after *runCursor
	if filter.After != "" {
		c, err := parseRunCursor(filter.After)
		if err != nil {
			return RunPage{}, errorOf(Invalid, err)
		}
		after = &c
	}
	for _, status := range append([]string{filter.Status}, filter.AnyStatus...) {
		if status != "" && !slices.Contains(runStatusWords, status) {
			return RunPage{}, errorf(Invalid, "status %q: want queued, running, succeeded, failed or cancelled", status)
		}
	}
	if err := s.consistent(ctx, filter.Stale); err != nil {
		return RunPage{}, err
	}
	kept := &newest{limit: filter.Limit}
	_ = s.cluster.FSM().State().EachRun(func(run *daguhav1.Run) bool {
		if filter.matches(run) && (after == nil || listedBefore(&daguhav1.Run{CreateIndex: after.index, Id: after.id}, run)) {
			kept.offer(run)
		}
		return true
	})
	runs, truncated := kept.page()
	page := RunPage{Runs: runs, Truncated: truncated}
	if truncated {
		last := runs[len(runs)-1]
		page.Next = runCursor{index: last.GetCreateIndex(), id: last.GetId()}.String()
	}
	return page, nil
}

// Cancel cancels a queued run at once, or asks the worker of a running
// one to stop it.
func (s *Service) Cancel(ctx context.Context, id string) error {
	if !utf8.ValidString(id) {
		// No run has such an id, and no command can carry it.
		return errorf(NotFound, "no DAG run with id %q (not UTF-8)", id)
	}
	result, _, err := s.cluster.Apply(ctx, fsm.CancelRunsType, &daguhav1.CancelRunsCommand{RunIds: []string{id}, NowUnixNano: s.now().UnixNano()})
	if err != nil {
		return err
	}
	outcome := result.(*daguhav1.CancelRunsResult).GetOutcomes()[0]
	s.metrics.RunsCancelledAtOnce(outcome.GetEndedCancelled())
	if !outcome.GetApplied() {
		return refusal(outcome)
	}
	return nil
}
