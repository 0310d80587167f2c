package dispatch

import (
	"context"
	"errors"
	"sync"
)

// batcher groups items that arrive while earlier batches are being written,
// so a busy leader writes one Raft entry for many grants or reports
// (group commit), with up to inFlight entries on their way at once.
type batcher[Item, Outcome any] struct {
	apply    func(ctx context.Context, items []Item) ([]Outcome, error)
	maxBatch int
	inFlight chan struct{}
	requests chan batchRequest[Item, Outcome]
	wg       sync.WaitGroup
}

type batchRequest[Item, Outcome any] struct {
	item  Item
	reply chan batchReply[Outcome]
}

type batchReply[Outcome any] struct {
	outcome Outcome
	err     error
}

var errBatcherStopped = errors.New("leader is stepping down")

func newBatcher[Item, Outcome any](maxBatch, inFlight int, apply func(context.Context, []Item) ([]Outcome, error)) *batcher[Item, Outcome] {
	return &batcher[Item, Outcome]{
		apply:    apply,
		maxBatch: maxBatch,
		inFlight: make(chan struct{}, inFlight),
		requests: make(chan batchRequest[Item, Outcome], maxBatch),
	}
}

// run collects and writes batches until ctx ends.
func (b *batcher[Item, Outcome]) run(ctx context.Context) {
	defer b.wg.Wait()
	for {
		var first batchRequest[Item, Outcome]
		select {
		case first = <-b.requests:
		case <-ctx.Done():
			b.drain()
			return
		}
		select {
		case b.inFlight <- struct{}{}:
		case <-ctx.Done():
			first.reply <- batchReply[Outcome]{err: errBatcherStopped}
			b.drain()
			return
		}
		batch := []batchRequest[Item, Outcome]{first}
	collect:
		for len(batch) < b.maxBatch {
			select {
			case r := <-b.requests:
				batch = append(batch, r)
			default:
				break collect
			}
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer func() { <-b.inFlight }()
			items := make([]Item, len(batch))
			for i, r := range batch {
				items[i] = r.item
			}
			outcomes, err := b.apply(ctx, items)
			for i, r := range batch {
				if err != nil || i >= len(outcomes) {
					if err == nil {
						err = errors.New("batch returned fewer outcomes than items")
					}
					r.reply <- batchReply[Outcome]{err: err}
					continue
				}
				r.reply <- batchReply[Outcome]{outcome: outcomes[i]}
			}
		}()
	}
}

func (b *batcher[Item, Outcome]) drain() {
	for {
		select {
		case r := <-b.requests:
			r.reply <- batchReply[Outcome]{err: errBatcherStopped}
		default:
			return
		}
	}
}

// submit adds one item and waits for its outcome.
func (b *batcher[Item, Outcome]) submit(ctx context.Context, done <-chan struct{}, item Item) (Outcome, error) {
	var zero Outcome
	reply := make(chan batchReply[Outcome], 1)
	select {
	case b.requests <- batchRequest[Item, Outcome]{item: item, reply: reply}:
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-done:
		return zero, errBatcherStopped
	}
	select {
	case r := <-reply:
		return r.outcome, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-done:
		return zero, errBatcherStopped
	}
}
