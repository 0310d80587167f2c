package wire

// InlineStep is a step of a DAG sent inline with an enqueue.
type InlineStep struct {
	Name    string `json:"name"`
	Command string `json:"command"`
}

// InlineDag is a DAG sent inline with an enqueue; its steps run in the
// order given, as a chain. Both Dagu spellings of the selector key are
// accepted: WorkerSelectorEscape is the snake_case one.
type InlineDag struct {
	Name                 string            `json:"name"`
	Description          string            `json:"description,omitempty"`
	WorkerSelector       map[string]string `json:"workerSelector,omitempty"`
	WorkerSelectorEscape map[string]string `json:"worker_selector,omitempty"`
	Steps                []InlineStep      `json:"steps"`
}

// EnqueueRequest is the body of POST /api/v2/dag-runs: a run of a stored
// DAG (DagName), of an inline DAG (Dag) or of a DAG file (Yaml).
type EnqueueRequest struct {
	DagName  string     `json:"dag_name,omitempty"`
	DagRunID string     `json:"dag_run_id,omitempty"`
	Params   string     `json:"params,omitempty"`
	Dag      *InlineDag `json:"dag,omitempty"`
	// Yaml is a whole DAG file (Dagu's YAML, several documents allowed):
	// its first DAG runs, the others are its local DAGs. File names it in
	// messages and gives the DAG its default name.
	Yaml string `json:"yaml,omitempty"`
	File string `json:"file,omitempty"`
	// ParentDagRunID makes this run a child of an existing run: its
	// parent is that run and its root is the parent's root.
	ParentDagRunID string `json:"parent_dag_run_id,omitempty"`
}

// Enqueued is the answer of an enqueue (201 when created, 200 when the
// run already existed).
type Enqueued struct {
	DagRunID string `json:"dag_run_id"`
	// Created is false when the run already existed (a retried request).
	Created bool `json:"created"`
}

// MaxEnqueueBatch bounds the runs of one bulk enqueue.
const MaxEnqueueBatch = 1000

// EnqueueBatch is the bulk form of POST /api/v2/dag-runs: up to
// MaxEnqueueBatch runs, each enqueued as if it were sent alone (its own
// run id makes it idempotent; none: the server makes one up).
type EnqueueBatch struct {
	Runs []EnqueueRequest `json:"runs"`
}

// EnqueuedBatch is the answer of a bulk enqueue: one outcome per run, in
// the request's order, and how many were created, existed already or
// failed.
type EnqueuedBatch struct {
	Runs    []EnqueueOutcome `json:"runs"`
	Created int              `json:"created"`
	Existed int              `json:"existed"`
	Failed  int              `json:"failed"`
}

// EnqueueOutcome is what became of one run of a bulk enqueue: Status is
// the HTTP status it would have had alone (201 created, 200 existed, or
// the error's), Error the error's message.
type EnqueueOutcome struct {
	DagRunID string `json:"dag_run_id,omitempty"`
	Created  bool   `json:"created"`
	Status   int    `json:"status"`
	Error    string `json:"error,omitempty"`
}

// Step is a step of a run as the API shows it.
type Step struct {
	Name       string `json:"name"`
	Status     string `json:"status"`
	ExitCode   int32  `json:"exit_code"`
	StartedAt  string `json:"started_at"`
	FinishedAt string `json:"finished_at"`
	OutputTail string `json:"output_tail"`
	Error      string `json:"error,omitempty"`
	// Retry is 1 for the first try of the step.
	Retry      uint32 `json:"retry,omitempty"`
	ChildRunID string `json:"child_dag_run_id,omitempty"`
	// ParallelChildren: for a parallel step, the child run of each item
	// started so far, in the items' order.
	ParallelChildren []ParallelChild `json:"parallel_children,omitempty"`
	// Repeat counts the executions of a step with a repeat policy: 1 for
	// the first.
	Repeat uint32 `json:"repeat,omitempty"`
	// Handler is, for a handler step, which one: success, failure,
	// cancel, exit or init.
	Handler string `json:"handler,omitempty"`
	// Preconditions are how the step's preconditions evaluated.
	Preconditions []Condition `json:"preconditions,omitempty"`
}

// ParallelChild is the child run of one item of a parallel step.
type ParallelChild struct {
	DagRunID string `json:"dag_run_id"`
	// Params are the child's params, cut short when long.
	Params string `json:"params"`
	// Status is "running" until the parent saw the child end.
	Status string `json:"status"`
}

// Condition is how one precondition evaluated.
type Condition struct {
	Condition string `json:"condition"`
	Expected  string `json:"expected,omitempty"`
	Negate    bool   `json:"negate,omitempty"`
	Met       bool   `json:"met"`
	// Actual is what it evaluated to: the expanded text, or the command's
	// exit status.
	Actual string `json:"actual"`
}

// Child is a child run, in its parent's detail.
type Child struct {
	DagName    string `json:"dag_name"`
	DagRunID   string `json:"dag_run_id"`
	Status     string `json:"status"`
	StepName   string `json:"step_name"`
	WorkerID   string `json:"worker_id"`
	StartedAt  string `json:"started_at"`
	FinishedAt string `json:"finished_at"`
}

// Attempt is one attempt of a run.
type Attempt struct {
	Attempt      uint32 `json:"attempt"`
	WorkerID     string `json:"worker_id"`
	FencingToken uint64 `json:"fencing_token"`
	StartedAt    string `json:"started_at"`
	EndedAt      string `json:"ended_at"`
	Outcome      string `json:"outcome"`
}

// Run is a run as the API shows it: the answer of GET
// /api/v2/dag-runs/{id}, and each run of a list.
type Run struct {
	DagName          string            `json:"dag_name"`
	DagRunID         string            `json:"dag_run_id"`
	Status           string            `json:"status"`
	Params           string            `json:"params"`
	WorkerSelector   map[string]string `json:"worker_selector"`
	EnqueuedAt       string            `json:"enqueued_at"`
	StartedAt        string            `json:"started_at"`
	FinishedAt       string            `json:"finished_at"`
	WorkerID         string            `json:"worker_id"`
	Attempt          uint32            `json:"attempt"`
	Error            string            `json:"error,omitempty"`
	Reason           string            `json:"reason,omitempty"`
	CancelRequested  bool              `json:"cancel_requested,omitempty"`
	RootDagRunName   string            `json:"root_dag_run_name"`
	RootDagRunID     string            `json:"root_dag_run_id"`
	ParentDagRunName string            `json:"parent_dag_run_name"`
	ParentDagRunID   string            `json:"parent_dag_run_id"`
	ParentStepName   string            `json:"parent_step_name,omitempty"`
	ScheduledSlot    string            `json:"scheduled_slot,omitempty"`
	// DagRetries counts the times the run was queued again after failing,
	// by its DAG's retryPolicy.
	DagRetries uint32 `json:"dag_retries,omitempty"`
	// Retries counts the times the run was queued again by a retry
	// (daguha retry, POST .../retry).
	Retries uint32 `json:"retries,omitempty"`
	// Queue is the queue the run waits and runs in: its DAG's queue, else
	// the DAG's name (Dagu's queues).
	Queue    string            `json:"queue,omitempty"`
	Outputs  map[string]string `json:"outputs"`
	Steps    []Step            `json:"steps"`
	Attempts []Attempt         `json:"attempts"`
	// Children is in a run's detail only.
	Children []Child `json:"children,omitempty"`
	// Graph is, in a run's detail only, the steps of the DAG the run runs
	// with their depends: the web UI draws the run's graph from it.
	Graph       []DagStep `json:"graph,omitempty"`
	CreateIndex uint64    `json:"create_index"`
	ModifyIndex uint64    `json:"modify_index"`
}

// RunList is the answer of GET /api/v2/dag-runs: one page of runs,
// newest first.
type RunList struct {
	Runs []Run `json:"runs"`
	// Truncated is true when more runs matched than limit.
	Truncated bool `json:"truncated"`
	// Next, when truncated, is the cursor of the next page: pass it as
	// ?after= (with the same filters) for the runs that follow.
	Next string `json:"next,omitempty"`
}

// Cancelled is the answer of POST /api/v2/dag-runs/{id}/cancel.
type Cancelled struct {
	DagRunID string `json:"dag_run_id"`
}

// RetryRequest is the body of POST /api/v2/dag-runs/{id}/retry; none is
// the same as an empty one.
type RetryRequest struct {
	// Step, when set, runs that step and every step after it again (Dagu's
	// retry --step); else the steps that did not succeed and every step
	// after them. The other steps keep what they recorded.
	Step string `json:"step,omitempty"`
}

// Retried is the answer of POST /api/v2/dag-runs/{id}/retry: the run is
// queued again under its id, for its next attempt.
type Retried struct {
	DagRunID string `json:"dag_run_id"`
	Status   string `json:"status"`
	Step     string `json:"step,omitempty"`
}

// Dequeued is the answer of POST /api/v2/dag-runs/{id}/dequeue: the
// queued run ended with the status Dagu gives a dequeued run.
type Dequeued struct {
	DagRunID string `json:"dag_run_id"`
	Status   string `json:"status"`
}

// RestartRequest is the body of POST /api/v2/dag-runs/{id}/restart; none
// is the same as an empty one.
type RestartRequest struct {
	// DagRunID is the new run's id (default: the server makes one up);
	// the same id twice is one run.
	DagRunID string `json:"dag_run_id,omitempty"`
}

// Restarted is the answer of POST /api/v2/dag-runs/{id}/restart: a new
// run with the ended run's DAG and params (201 when created, 200 when a
// run of that id existed).
type Restarted struct {
	DagRunID      string `json:"dag_run_id"`
	Created       bool   `json:"created"`
	RestartedFrom string `json:"restarted_from"`
}

// CancelledRuns is the answer of POST /api/v2/dags/{name}/cancel-running:
// the running runs of the DAG asked to stop, in id order.
type CancelledRuns struct {
	DagName   string   `json:"dag_name"`
	DagRunIDs []string `json:"dag_run_ids"`
}
