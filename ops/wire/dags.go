package wire

// DagSource is one DAG file: its name (for messages and the default DAG
// name) and its YAML text.
type DagSource struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

// DagPush is the body of POST /api/v2/dags.
type DagPush struct {
	Files []DagSource `json:"files"`
}

// DagOutcome says what a push did with one DAG.
type DagOutcome struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Result string `json:"result"`
}

// DagPushed is the answer of POST /api/v2/dags.
type DagPushed struct {
	Dags []DagOutcome `json:"dags"`
}

// Dag is a stored DAG as the API lists it.
type Dag struct {
	Name           string            `json:"name"`
	Description    string            `json:"description"`
	Schedule       []string          `json:"schedule"`
	WorkerSelector map[string]string `json:"worker_selector"`
	Params         string            `json:"params"`
	Steps          []DagStep         `json:"steps"`
	LocalDags      []string          `json:"local_dags"`
	File           string            `json:"file"`
	ContentHash    string            `json:"content_hash"`
	UpdatedAt      string            `json:"updated_at"`
	CreateIndex    uint64            `json:"create_index"`
	ModifyIndex    uint64            `json:"modify_index"`
	// LastScheduled is the last cron slot fired, with its run.
	LastScheduledSlot  string `json:"last_scheduled_slot,omitempty"`
	LastScheduledRunID string `json:"last_scheduled_run_id,omitempty"`
	// Source is the YAML as pushed (in the detail only).
	Source string `json:"source,omitempty"`
}

// DagStep is a step of a DAG definition.
type DagStep struct {
	Name     string   `json:"name"`
	Command  string   `json:"command,omitempty"`
	Script   string   `json:"script,omitempty"`
	Depends  []string `json:"depends"`
	ChildDag string   `json:"run,omitempty"`
	// Parallel is true for a step that runs its child DAG once per item.
	Parallel bool `json:"parallel,omitempty"`
}

// DagList is the answer of GET /api/v2/dags, by name.
type DagList struct {
	Dags []Dag `json:"dags"`
}

// DagDeleted is the answer of DELETE /api/v2/dags/{name}.
type DagDeleted struct {
	Name   string `json:"name"`
	Result string `json:"result"`
}
