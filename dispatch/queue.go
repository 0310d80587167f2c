package dispatch

import (
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// QueueLimit is how many runs of run's queue (store.QueueOf) may run at
// once across the cluster, 0 for no limit, as Dagu decides it: the
// servers' queues setting for that queue name first (at least 1); else
// the DAG's maxActiveRuns; else, for a queue the DAG names, 1 (Dagu's
// default). A DAG that names no queue and sets no maxActiveRuns is not
// limited: daguha's default, kept from before queues (Dagu's is 1).
func QueueLimit(queues map[string]int, run *daguhav1.Run) int {
	if limit, ok := queues[store.QueueOf(run)]; ok {
		return max(limit, 1)
	}
	if limit := run.GetDag().GetMaxActiveRuns(); limit > 0 {
		return int(limit)
	}
	if run.GetDag().GetQueue() != "" {
		return 1
	}
	return 0
}
