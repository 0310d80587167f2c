package dispatch

import (
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// MatchOnce is the matching of one poll, as the leader does it before
// writing a grant: it reads the selector queues of state and returns the
// oldest queued run the worker may take (nil if none). Nothing is granted
// or reserved. It exists for benchmarks and tools that measure matching
// on its own.
func MatchOnce(state *store.StateStore, info *daguhav1.WorkerInfo) (*daguhav1.Run, error) {
	selectors, _, err := state.PendingSelectors()
	if err != nil {
		return nil, err
	}
	st := &leaderState{reserved: map[string]bool{}, reservedByWorker: map[string]int{}, reservedByQueue: map[string]int{}}
	run, _, _ := st.match(state, selectors, info, time.Now())
	return run, nil
}
