package service

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

func randomRuns(rng *rand.Rand, n int) []*daguhav1.Run {
	runs := make([]*daguhav1.Run, n)
	for i := range runs {
		// Few create indexes, so that runs of one enqueue batch (one
		// index, ordered by id) are common; ids are unique, as run ids are.
		runs[i] = &daguhav1.Run{Id: fmt.Sprintf("r%05d-%d", rng.IntN(n*4), i), CreateIndex: uint64(rng.IntN(n/3 + 1))}
	}
	return runs
}

// The heap's page is the head of the whole list sorted, for any limit
// below, at or above the number of runs.
func TestNewestIsTheHeadOfTheSortedList(t *testing.T) {
	rng := rand.New(rand.NewPCG(20261202, 1))
	for round := range 200 {
		runs := randomRuns(rng, rng.IntN(300))
		sorted := append([]*daguhav1.Run(nil), runs...)
		sort.Slice(sorted, func(i, j int) bool { return listedBefore(sorted[i], sorted[j]) })
		for _, limit := range []int{1, 2, 7, 100, len(runs), len(runs) + 1} {
			if limit < 1 {
				continue
			}
			kept := &newest{limit: limit}
			for _, r := range runs {
				kept.offer(r)
			}
			page, truncated := kept.page()
			want := sorted
			if len(want) > limit {
				want = want[:limit]
			}
			if truncated != (len(runs) > limit) || len(page) != len(want) {
				t.Fatalf("round %d, %d runs, limit %d: %d kept, truncated %v", round, len(runs), limit, len(page), truncated)
			}
			for i := range want {
				if page[i] != want[i] {
					t.Fatalf("round %d, limit %d: run %d is %v, want %v", round, limit, i, page[i], want[i])
				}
			}
		}
	}
}

// A page of 100 of 200,000 runs: the heap against sorting every match,
// as the list did before.
func BenchmarkListPage(b *testing.B) {
	runs := randomRuns(rand.New(rand.NewPCG(1, 2)), 200_000)
	b.Run("heap", func(b *testing.B) {
		for range b.N {
			kept := &newest{limit: 100}
			for _, r := range runs {
				kept.offer(r)
			}
			kept.page()
		}
	})
	b.Run("sort-all", func(b *testing.B) {
		for range b.N {
			var matched []*daguhav1.Run
			for _, r := range runs {
				matched = append(matched, r)
			}
			sort.Slice(matched, func(i, j int) bool { return listedBefore(matched[i], matched[j]) })
		}
	})
}
