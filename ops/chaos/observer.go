package chaos

import (
	"sort"
	"sync"
	"time"
)

// Observer reads every run from the leader at an interval while the
// faults go on, and keeps the latest record of each. With a run
// retention, the cluster removes ended runs as it goes (as it must, or its
// memory would grow for ever), so the settled state alone no longer holds
// every run of the history: the observer's last record of a run that was
// pruned (its ended record: the cluster never prunes a run that has not
// ended) stands in for it. The retention must be much longer than the
// interval, and than any outage, so every ended run is seen before it goes.
type Observer struct {
	h        *Harness
	interval time.Duration
	mu       sync.Mutex
	seen     map[string]finalRun
	reads    int
	stop     chan struct{}
	done     chan struct{}
}

// StartObserver reads the runs every interval until Stop.
func StartObserver(h *Harness, interval time.Duration) *Observer {
	o := &Observer{h: h, interval: interval, seen: map[string]finalRun{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			select {
			case <-o.stop:
				return
			case <-ticker.C:
			}
			// No leader, a cut-off server, a time-out: this read is
			// skipped, the next one comes an interval later.
			if runs, err := listFinal(o.h); err == nil {
				o.record(runs)
			}
		}
	}()
	return o
}

// record keeps the newest record of each run (by its modify index).
func (o *Observer) record(runs map[string]finalRun) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reads++
	for id, run := range runs {
		if old, ok := o.seen[id]; !ok || run.ModifyIndex >= old.ModifyIndex {
			o.seen[id] = run
		}
	}
}

// Stop ends the observation.
func (o *Observer) Stop() {
	close(o.stop)
	<-o.done
}

// Reads counts the complete reads of every run the observer made.
func (o *Observer) Reads() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reads
}

// Merge completes the settled state with the runs the cluster pruned: a
// run observed ended and absent from the settled state was pruned, and its
// last record stands. A run observed while still queued or running and
// absent from the settled state vanished: the cluster never prunes such a
// run, so either it was lost or it ended and was pruned between two reads
// (a retention too short for the observer's interval).
func (o *Observer) Merge(settled map[string]finalRun) (merged map[string]finalRun, pruned int, vanished []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	merged = make(map[string]finalRun, len(settled)+len(o.seen))
	for id, run := range settled {
		merged[id] = run
	}
	for id, run := range o.seen {
		if _, ok := settled[id]; ok {
			continue
		}
		if terminal[run.Status] {
			merged[id] = run
			pruned++
			continue
		}
		vanished = append(vanished, id)
	}
	sort.Strings(vanished)
	return merged, pruned, vanished
}
