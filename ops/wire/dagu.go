package wire

// Dagu's REST API, as daguha serves it under /api/v1 (current Dagu) and
// /api/v2 (Dagu 1.x): the bodies below carry Dagu's field names
// (camelCase) and Dagu's status numbers, so that a script or client
// written for Dagu reads daguha's answers. Where a path is shared with
// daguha's own API under /api/v2 the answer is one of the Shared* bodies:
// daguha's fields and Dagu's side by side, so both kinds of client read
// what they expect (docs/dagu-api.md says which path answers what).

// DaguError is the body of every error answer on Dagu's paths: Code is one
// of Dagu's error codes ("bad_request", "not_found", "already_exists",
// "not_running", "forbidden", "unauthorized", "internal_error",
// "bad_gateway", "timeout").
type DaguError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// SharedError is the body of an error on a path both APIs share under
// /api/v2: daguha's error and Dagu's code and message.
type SharedError struct {
	Error   string `json:"error"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// DaguTimeout is the body of a 408 from start-sync: the run goes on, by
// this id.
type DaguTimeout struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	DagRunID string `json:"dagRunId"`
}

// DaguHealth is the answer of GET /api/v1/health: "healthy" once the
// server knows a leader (200), "unhealthy" before (503).
type DaguHealth struct {
	Status  string `json:"status"`
	Version string `json:"version"`
	// Uptime is in seconds.
	Uptime    int64  `json:"uptime"`
	Timestamp string `json:"timestamp"`
}

// SharedHealth is the answer of GET /api/v2/health: daguha's status
// ("ok" or "no leader") with Dagu's version, uptime and timestamp.
type SharedHealth struct {
	Health
	Version   string `json:"version"`
	Uptime    int64  `json:"uptime"`
	Timestamp string `json:"timestamp"`
}

// DaguRunningTask is a run on a worker, in Dagu's worker list.
type DaguRunningTask struct {
	DagRunID         string `json:"dagRunId"`
	DagName          string `json:"dagName"`
	StartedAt        string `json:"startedAt"`
	RootDagRunName   string `json:"rootDagRunName"`
	RootDagRunID     string `json:"rootDagRunId"`
	ParentDagRunName string `json:"parentDagRunName,omitempty"`
	ParentDagRunID   string `json:"parentDagRunId,omitempty"`
}

// DaguWorker is a worker in Dagu's shape: TotalPollers is the runs it may
// hold at once (its maxActiveRuns), BusyPollers those it holds;
// HealthStatus is "healthy", "warning" or "unhealthy" (an offline worker
// shows as unhealthy).
type DaguWorker struct {
	ID              string            `json:"id"`
	Labels          map[string]string `json:"labels"`
	TotalPollers    int               `json:"totalPollers"`
	BusyPollers     int               `json:"busyPollers"`
	RunningTasks    []DaguRunningTask `json:"runningTasks"`
	LastHeartbeatAt string            `json:"lastHeartbeatAt"`
	HealthStatus    string            `json:"healthStatus"`
}

// DaguWorkers is the answer of GET /api/v1/workers.
type DaguWorkers struct {
	Workers []DaguWorker `json:"workers"`
	Errors  []string     `json:"errors"`
}

// DaguSchedule is one cron expression of a DAG.
type DaguSchedule struct {
	Expression string `json:"expression"`
}

// DaguDag is a DAG's core definition, in a list of DAGs.
type DaguDag struct {
	Name          string         `json:"name"`
	Group         string         `json:"group,omitempty"`
	Schedule      []DaguSchedule `json:"schedule"`
	Description   string         `json:"description"`
	Params        []string       `json:"params"`
	DefaultParams string         `json:"defaultParams"`
	Labels        []string       `json:"labels"`
	Tags          []string       `json:"tags"`
	Queue         string         `json:"queue,omitempty"`
	MaxActiveRuns int            `json:"maxActiveRuns,omitempty"`
}

// DaguCommand is one command of a step.
type DaguCommand struct {
	Command string   `json:"command"`
	Args    []string `json:"args,omitempty"`
}

// DaguStep is a step of a DAG definition.
type DaguStep struct {
	Name        string        `json:"name"`
	ID          string        `json:"id,omitempty"`
	Description string        `json:"description,omitempty"`
	Dir         string        `json:"dir,omitempty"`
	Commands    []DaguCommand `json:"commands,omitempty"`
	Script      string        `json:"script,omitempty"`
	Stdout      string        `json:"stdout,omitempty"`
	Stderr      string        `json:"stderr,omitempty"`
	Output      string        `json:"output,omitempty"`
	// Call is the DAG a run/call step starts, with Params.
	Call       string   `json:"call,omitempty"`
	Params     string   `json:"params,omitempty"`
	Depends    []string `json:"depends"`
	TimeoutSec int64    `json:"timeoutSec,omitempty"`
}

// DaguHandlerOn are the handler steps of a DAG.
type DaguHandlerOn struct {
	Success *DaguStep `json:"success,omitempty"`
	Failure *DaguStep `json:"failure,omitempty"`
	Abort   *DaguStep `json:"abort,omitempty"`
	Exit    *DaguStep `json:"exit,omitempty"`
}

// DaguDagDetails is a DAG's whole definition.
type DaguDagDetails struct {
	Name           string         `json:"name"`
	Group          string         `json:"group,omitempty"`
	Schedule       []DaguSchedule `json:"schedule"`
	Description    string         `json:"description"`
	Env            []string       `json:"env"`
	HandlerOn      *DaguHandlerOn `json:"handlerOn,omitempty"`
	Steps          []DaguStep     `json:"steps"`
	Delay          int64          `json:"delay,omitempty"`
	MaxActiveRuns  int            `json:"maxActiveRuns,omitempty"`
	MaxActiveSteps int            `json:"maxActiveSteps,omitempty"`
	Queue          string         `json:"queue,omitempty"`
	Params         []string       `json:"params"`
	DefaultParams  string         `json:"defaultParams"`
	Labels         []string       `json:"labels"`
	Tags           []string       `json:"tags"`
	// NextRun is the next cron slot (RFC 3339), "" without a schedule.
	NextRun string `json:"nextRun,omitempty"`
}

// DaguRunSummary is a DAG run in a list. Status is Dagu's number
// (0 not started, 1 running, 2 failed, 3 aborted, 4 succeeded, 5 queued)
// and StatusLabel its word; times are RFC 3339, "" when not yet.
type DaguRunSummary struct {
	RootDAGRunName     string   `json:"rootDAGRunName"`
	RootDAGRunID       string   `json:"rootDAGRunId"`
	ParentDAGRunName   string   `json:"parentDAGRunName,omitempty"`
	ParentDAGRunID     string   `json:"parentDAGRunId,omitempty"`
	DagRunID           string   `json:"dagRunId"`
	Name               string   `json:"name"`
	Status             int      `json:"status"`
	StatusLabel        string   `json:"statusLabel"`
	QueuedAt           string   `json:"queuedAt"`
	StartedAt          string   `json:"startedAt"`
	FinishedAt         string   `json:"finishedAt"`
	ScheduleTime       string   `json:"scheduleTime,omitempty"`
	Log                string   `json:"log"`
	Params             string   `json:"params"`
	WorkerID           string   `json:"workerId"`
	TriggerType        string   `json:"triggerType"`
	ArtifactsAvailable bool     `json:"artifactsAvailable"`
	AutoRetryCount     int      `json:"autoRetryCount"`
	AutoRetryLimit     *int     `json:"autoRetryLimit"`
	Labels             []string `json:"labels"`
	Tags               []string `json:"tags"`
}

// DaguSubRun is a child run a step started.
type DaguSubRun struct {
	DagRunID string `json:"dagRunId"`
	Params   string `json:"params"`
	DagName  string `json:"dagName"`
}

// DaguCondition is a precondition and how it evaluated.
type DaguCondition struct {
	Condition string `json:"condition"`
	Expected  string `json:"expected,omitempty"`
	Negate    bool   `json:"negate,omitempty"`
	Matched   bool   `json:"matched"`
	Error     string `json:"error,omitempty"`
}

// DaguNode is a step of a run: Status is Dagu's node number (0 not
// started, 1 running, 2 failed, 3 aborted, 4 succeeded, 5 skipped).
// Stdout and Stderr are the API paths of the step's log.
type DaguNode struct {
	Step          DaguStep        `json:"step"`
	Stdout        string          `json:"stdout"`
	Stderr        string          `json:"stderr"`
	StartedAt     string          `json:"startedAt"`
	FinishedAt    string          `json:"finishedAt"`
	Status        int             `json:"status"`
	StatusLabel   string          `json:"statusLabel"`
	RetryCount    int             `json:"retryCount"`
	DoneCount     int             `json:"doneCount"`
	SubRuns       []DaguSubRun    `json:"subRuns,omitempty"`
	Error         string          `json:"error,omitempty"`
	ExitCode      int32           `json:"exitCode"`
	Preconditions []DaguCondition `json:"preconditions,omitempty"`
}

// DaguRunDetails is a run with its steps.
type DaguRunDetails struct {
	DaguRunSummary
	Nodes         []DaguNode      `json:"nodes"`
	OnSuccess     *DaguNode       `json:"onSuccess,omitempty"`
	OnFailure     *DaguNode       `json:"onFailure,omitempty"`
	OnAbort       *DaguNode       `json:"onAbort,omitempty"`
	OnExit        *DaguNode       `json:"onExit,omitempty"`
	Preconditions []DaguCondition `json:"preconditions"`
	Error         string          `json:"error,omitempty"`
}

// DaguPagination is a page of a DAG list.
type DaguPagination struct {
	TotalRecords int `json:"totalRecords"`
	CurrentPage  int `json:"currentPage"`
	TotalPages   int `json:"totalPages"`
	NextPage     int `json:"nextPage"`
	PrevPage     int `json:"prevPage"`
}

// DaguDagFile is a DAG in Dagu's list: FileName is the DAG's name (daguha
// keeps DAGs by name), FilePath the file it was pushed from.
type DaguDagFile struct {
	FileName     string         `json:"fileName"`
	FilePath     string         `json:"filePath"`
	Dag          DaguDag        `json:"dag"`
	LatestDAGRun DaguRunSummary `json:"latestDAGRun"`
	Suspended    bool           `json:"suspended"`
	Errors       []string       `json:"errors"`
	NextRun      string         `json:"nextRun,omitempty"`
}

// DaguDagList is the answer of GET /api/v1/dags.
type DaguDagList struct {
	Dags       []DaguDagFile  `json:"dags"`
	Errors     []string       `json:"errors"`
	Pagination DaguPagination `json:"pagination"`
}

// SharedDagItem is a DAG in GET /api/v2/dags: daguha's fields and Dagu's.
type SharedDagItem struct {
	Dag
	DaguDagFile
}

// SharedDagList is the answer of GET /api/v2/dags.
type SharedDagList struct {
	Dags       []SharedDagItem `json:"dags"`
	Errors     []string        `json:"errors"`
	Pagination DaguPagination  `json:"pagination"`
}

// DaguLocalDag is another DAG of a DAG's file.
type DaguLocalDag struct {
	Name   string          `json:"name"`
	Dag    *DaguDagDetails `json:"dag,omitempty"`
	Errors []string        `json:"errors"`
}

// DaguDagDetail is the answer of GET /api/v1/dags/{fileName}.
type DaguDagDetail struct {
	FilePath     string         `json:"filePath"`
	DagDetails   DaguDagDetails `json:"dag"`
	LocalDags    []DaguLocalDag `json:"localDags"`
	LatestDAGRun DaguRunDetails `json:"latestDAGRun"`
	Suspended    bool           `json:"suspended"`
	Errors       []string       `json:"errors"`
	Spec         string         `json:"spec"`
}

// SharedDagDetail is the answer of GET /api/v2/dags/{name}.
type SharedDagDetail struct {
	Dag
	DaguDagDetail
}

// DaguCreateDag is the body of Dagu's POST /dags: a new DAG named Name,
// from Spec (YAML; empty: a DAG of one step, echo hello, as Dagu makes).
type DaguCreateDag struct {
	Name string `json:"name"`
	Spec string `json:"spec,omitempty"`
}

// DaguDagCreated is the answer of Dagu's POST /dags (201).
type DaguDagCreated struct {
	Name string `json:"name"`
}

// DaguValidate is the body of POST /dags/validate.
type DaguValidate struct {
	Spec string `json:"spec"`
	Name string `json:"name,omitempty"`
}

// DaguValidated is the answer of POST /dags/validate: Errors has every
// problem, each with its line.
type DaguValidated struct {
	Valid  bool            `json:"valid"`
	Dag    *DaguDagDetails `json:"dag,omitempty"`
	Errors []string        `json:"errors"`
}

// DaguSpec is the answer of GET /dags/{fileName}/spec.
type DaguSpec struct {
	Dag    *DaguDagDetails `json:"dag,omitempty"`
	Spec   string          `json:"spec"`
	Errors []string        `json:"errors"`
}

// DaguSpecUpdate is the body of PUT /dags/{fileName}/spec.
type DaguSpecUpdate struct {
	Spec string `json:"spec"`
}

// DaguErrors is the answer of PUT /dags/{fileName}/spec (nothing was
// stored when Errors is not empty) and of POST /dags/{fileName}/stop-all
// (the runs it could not stop).
type DaguErrors struct {
	Errors []string `json:"errors"`
}

// DaguStart is the body of POST /dags/{fileName}/start, start-sync and
// enqueue. Timeout (seconds, 1 to 86400) is start-sync's and required
// there; Queue is enqueue's.
type DaguStart struct {
	Params    string   `json:"params,omitempty"`
	DagRunID  string   `json:"dagRunId,omitempty"`
	DagName   string   `json:"dagName,omitempty"`
	Singleton bool     `json:"singleton,omitempty"`
	Labels    []string `json:"labels,omitempty"`
	Tags      []string `json:"tags,omitempty"`
	Queue     string   `json:"queue,omitempty"`
	Timeout   int      `json:"timeout,omitempty"`
}

// DaguRunFromSpec is the body of POST /dag-runs and /dag-runs/enqueue: a
// run of the DAG file Spec; Name names the DAG when the file does not.
type DaguRunFromSpec struct {
	Spec      string   `json:"spec"`
	Name      string   `json:"name,omitempty"`
	Params    string   `json:"params,omitempty"`
	DagRunID  string   `json:"dagRunId,omitempty"`
	Singleton bool     `json:"singleton,omitempty"`
	Labels    []string `json:"labels,omitempty"`
	Tags      []string `json:"tags,omitempty"`
	Queue     string   `json:"queue,omitempty"`
}

// DaguRunStarted is the answer of a start or enqueue on Dagu's paths.
type DaguRunStarted struct {
	DagRunID string `json:"dagRunId"`
}

// DaguRetry is the body of POST /dag-runs/{name}/{dagRunId}/retry.
type DaguRetry struct {
	DagRunID string `json:"dagRunId"`
	StepName string `json:"stepName,omitempty"`
}

// DaguRunsPage is the answer of GET /api/v1/dag-runs: newest first;
// NextCursor, when set, is the cursor of the next page.
type DaguRunsPage struct {
	DagRuns    []DaguRunSummary `json:"dagRuns"`
	NextCursor string           `json:"nextCursor,omitempty"`
}

// SharedRunList is the answer of GET /api/v2/dag-runs: the same page in
// daguha's shape (runs, truncated, next) and in Dagu's (dagRuns,
// nextCursor).
type SharedRunList struct {
	RunList
	DaguRunsPage
}

// DaguRunDetail is the answer of GET /dag-runs/{name}/{dagRunId}.
type DaguRunDetail struct {
	DagRunDetails DaguRunDetails `json:"dagRunDetails"`
}

// DaguDagRun is the answer of start-sync and of GET
// /dags/{fileName}/dag-runs/{dagRunId}.
type DaguDagRun struct {
	DagRun DaguRunDetails `json:"dagRun"`
}

// DaguGridItem is a step's statuses over a DAG's recent runs, oldest
// first.
type DaguGridItem struct {
	Name    string `json:"name"`
	History []int  `json:"history"`
}

// DaguDagRuns is the answer of GET /dags/{fileName}/dag-runs.
type DaguDagRuns struct {
	DagRuns  []DaguRunDetails `json:"dagRuns"`
	GridData []DaguGridItem   `json:"gridData"`
}

// DaguLog is a log, or the lines of it asked for.
type DaguLog struct {
	Content    string `json:"content"`
	LineCount  int    `json:"lineCount"`
	TotalLines int    `json:"totalLines"`
	HasMore    bool   `json:"hasMore"`
	// IsEstimate is true when the worker's full log could not be had and
	// the content is the tail of the output the cluster keeps.
	IsEstimate bool `json:"isEstimate"`
}

// DaguOutputsMetadata says which run the outputs come from.
type DaguOutputsMetadata struct {
	DagName     string `json:"dagName"`
	DagRunID    string `json:"dagRunId"`
	AttemptID   string `json:"attemptId"`
	Status      string `json:"status"`
	CompletedAt string `json:"completedAt"`
	Params      string `json:"params"`
}

// DaguOutputs is the answer of GET /dag-runs/{name}/{dagRunId}/outputs.
type DaguOutputs struct {
	Metadata DaguOutputsMetadata `json:"metadata"`
	Outputs  map[string]string   `json:"outputs"`
}

// DaguSubRunDetail is a child run with its status and times.
type DaguSubRunDetail struct {
	DagRunID    string `json:"dagRunId"`
	Params      string `json:"params"`
	DagName     string `json:"dagName"`
	Status      int    `json:"status"`
	StatusLabel string `json:"statusLabel"`
	StartedAt   string `json:"startedAt"`
	FinishedAt  string `json:"finishedAt"`
}

// DaguSubRuns is the answer of GET /dag-runs/{name}/{dagRunId}/sub-dag-runs.
type DaguSubRuns struct {
	SubRuns []DaguSubRunDetail `json:"subRuns"`
}
