package service

import (
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// WorkerStatus is a registered worker as this server sees it: its health
// from the age of its last heartbeat here (OFFLINE once the leader has
// declared it so), and the runs it holds.
type WorkerStatus struct {
	Worker        *daguhav1.Worker
	Health        string
	LastHeartbeat time.Time
	Running       []*daguhav1.Run
}

// Workers lists the replicated worker registry with this server's
// heartbeat table; it is this server's own view, leader or not.
func (s *Service) Workers() []WorkerStatus {
	state := s.cluster.FSM().State()
	workers := []WorkerStatus{}
	_ = state.EachWorker(func(worker *daguhav1.Worker) bool {
		health, last := s.heartbeats.WorkerHealth(worker, s.thresholds)
		status := WorkerStatus{Worker: worker, Health: health, LastHeartbeat: last}
		_ = state.EachRunning(worker.GetId(), func(run *daguhav1.Run) bool {
			status.Running = append(status.Running, run)
			return true
		})
		workers = append(workers, status)
		return true
	})
	return workers
}
