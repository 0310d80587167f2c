package dispatch

import (
	"fmt"
	"testing"
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// benchSelectors are 50 distinct selectors: 10 by region alone and 40 by
// region and tier.
func benchSelectors() []map[string]string {
	var selectors []map[string]string
	for r := 0; r < 10; r++ {
		selectors = append(selectors, map[string]string{"region": fmt.Sprintf("r%d", r)})
		for t := 0; t < 4; t++ {
			selectors = append(selectors, map[string]string{"region": fmt.Sprintf("r%d", r), "tier": fmt.Sprintf("t%d", t)})
		}
	}
	return selectors
}

// benchState is a state store with pending runs spread over the selectors.
func benchState(b *testing.B, pending int) *store.StateStore {
	b.Helper()
	state, err := store.NewStateStore()
	if err != nil {
		b.Fatal(err)
	}
	selectors := benchSelectors()
	index := uint64(1)
	for start := 0; start < pending; start += 1000 {
		var runs []*daguhav1.Run
		for i := start; i < min(start+1000, pending); i++ {
			runs = append(runs, &daguhav1.Run{
				Id: fmt.Sprintf("run-%07d", i), DagName: "bench",
				Dag: &daguhav1.DagSpec{Name: "bench", WorkerSelector: selectors[i%len(selectors)]},
			})
		}
		if _, err := state.EnqueueRuns(index, runs); err != nil {
			b.Fatal(err)
		}
		index++
	}
	return state
}

// BenchmarkPollMatch measures what one poll costs the leader before the
// grant is written: reading the selector queues and picking the oldest
// run a worker can take, for 1,000 workers. The cost must not grow with
// the number of pending runs: compare pending=1000 with pending=100000.
func BenchmarkPollMatch(b *testing.B) {
	workers := make([]*daguhav1.WorkerInfo, 1000)
	for j := range workers {
		workers[j] = &daguhav1.WorkerInfo{
			Id:            fmt.Sprintf("worker-%04d", j),
			Labels:        map[string]string{"region": fmt.Sprintf("r%d", j%10), "tier": fmt.Sprintf("t%d", j%4), "host": fmt.Sprintf("h%d", j)},
			MaxActiveRuns: 4,
		}
	}
	for _, pending := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("pending=%d", pending), func(b *testing.B) {
			state := benchState(b, pending)
			st := &leaderState{reserved: map[string]bool{}, reservedByWorker: map[string]int{}, reservedByQueue: map[string]int{}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				info := workers[i%len(workers)]
				selectors, _, err := state.PendingSelectors()
				if err != nil {
					b.Fatal(err)
				}
				run, full, _ := st.match(state, selectors, info, time.Now())
				if run == nil || full {
					b.Fatalf("worker %s found nothing among %d pending runs", info.GetId(), pending)
				}
				st.unreserve(run, info.GetId())
			}
		})
	}
}
