package wire

// RunningTask is a run on a worker, in the seed's shape plus the ids of
// the run's root and parent (empty parent fields for a root run).
type RunningTask struct {
	DagName          string `json:"dag_name"`
	DagRunID         string `json:"dag_run_id"`
	RootDagRunName   string `json:"root_dag_run_name"`
	RootDagRunID     string `json:"root_dag_run_id"`
	ParentDagRunName string `json:"parent_dag_run_name"`
	ParentDagRunID   string `json:"parent_dag_run_id"`
	StartedAt        string `json:"started_at"`
}

// Worker is one worker in the seed's /api/v2/workers shape.
type Worker struct {
	ID     string            `json:"id"`
	Labels map[string]string `json:"labels"`
	// AutoLabels are the keys of Labels the worker fingerprinted (the
	// others were given by hand); Executors the Dagu executors it runs
	// beside commands and child runs. Both beyond the seed's shape.
	AutoLabels    []string      `json:"auto_labels"`
	Executors     []string      `json:"executors"`
	HealthStatus  string        `json:"health_status"`
	LastHeartbeat string        `json:"last_heartbeat"`
	RunningTasks  []RunningTask `json:"running_tasks"`
	// Version is the daguha version the worker runs, as its gossip meta
	// says ("before 0.1.0" when it advertises none, "unknown" when the
	// answering server's gossip does not know it). Beyond the seed's shape.
	Version string `json:"version"`
}

// Workers is the answer of GET /api/v2/workers.
type Workers struct {
	Workers []Worker `json:"workers"`
}
