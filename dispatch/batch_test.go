package dispatch

import (
	"context"
	"runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// While one batch is being written, new items wait and go out together in
// the next: with the first write held until the queue in front of the
// batcher is full, the second write carries a full batch. Every caller
// gets the outcome of its own item, and no batch exceeds the limit.
func TestBatcherGroupsItemsThatArriveDuringAWrite(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	b := newBatcher(64, 1, func(_ context.Context, items []int) ([]int, error) {
		mu.Lock()
		first := len(sizes) == 0
		sizes = append(sizes, len(items))
		mu.Unlock()
		if first {
			<-release // hold the first write so that the others pile up
		}
		out := make([]int, len(items))
		for i, v := range items {
			out[i] = v * 10
		}
		return out, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan struct{})
	go func() {
		b.run(ctx)
		close(runDone)
	}()
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for i := 1; i <= 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			got, err := b.submit(ctx, ctx.Done(), i)
			if err != nil || got != i*10 {
				errs <- "wrong outcome"
			}
		}(i)
		if i == 1 {
			// Let the first item start its write before the rest arrive.
			for {
				mu.Lock()
				started := len(sizes) == 1
				mu.Unlock()
				if started {
					break
				}
				runtime.Gosched()
			}
		}
	}
	// Release the first write only once the rest are waiting for it (the
	// queue in front of the batcher is full).
	for len(b.requests) < cap(b.requests) {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, n := range sizes {
		total += n
		if n > 64 {
			t.Fatalf("a batch of %d items exceeds the limit of 64", n)
		}
	}
	if total != 200 || len(sizes) < 2 || sizes[0] != 1 || sizes[1] != 64 {
		t.Fatalf("200 items went out in writes of sizes %v; want 200 in all, the first alone and the second a full batch of 64", sizes)
	}
	cancel()
	<-runDone
}
