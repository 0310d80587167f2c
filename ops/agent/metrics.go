package agent

import (
	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/ops/metrics"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// watchState registers the collectors that read this server's replicated
// state and heartbeat table at scrape time: Raft, the dispatch queues and
// the workers by health.
func watchState(m *metrics.Metrics, server *cluster.Server, dispatcher *dispatch.Dispatcher) {
	if m == nil {
		return
	}
	m.WatchRaft(server.Raft())
	m.WatchQueues(func() ([]metrics.Queue, error) {
		state := server.FSM().State()
		selectors, _, err := state.PendingSelectors()
		if err != nil || len(selectors) == 0 {
			return nil, err
		}
		var live []map[string]string
		err = state.EachWorker(func(w *daguhav1.Worker) bool {
			if health, _ := dispatcher.Heartbeats().WorkerHealth(w, dispatcher.Thresholds()); health != dispatch.Offline {
				live = append(live, w.GetLabels())
			}
			return true
		})
		if err != nil {
			return nil, err
		}
		queues := make([]metrics.Queue, 0, len(selectors))
		for _, selector := range selectors {
			q := metrics.Queue{Selector: selector.Key, Pending: int(selector.Pending)}
			for _, labels := range live {
				if dispatch.Matches(selector.Labels, labels) {
					q.MatchingWorkers++
				}
			}
			queues = append(queues, q)
		}
		return queues, nil
	})
	m.WatchWorkers(func() (metrics.WorkerCounts, error) {
		state := server.FSM().State()
		counts := metrics.WorkerCounts{ByHealth: map[string]int{}}
		err := state.EachWorker(func(w *daguhav1.Worker) bool {
			health, _ := dispatcher.Heartbeats().WorkerHealth(w, dispatcher.Thresholds())
			counts.ByHealth[health]++
			return true
		})
		if err != nil {
			return counts, err
		}
		err = state.EachRunning("", func(*daguhav1.Run) bool {
			counts.RunsRunning++
			return true
		})
		return counts, err
	})
}
