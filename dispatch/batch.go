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

// batchRequest is what one caller submits: its items go into one batch
// together.
type batchRequest[Item, Outcome any] struct {
	items []Item
	reply chan batchReply[Outcome]
}

type batchReply[Outcome any] struct {
	outcomes []Outcome
	err      error
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
		count := len(first.items)
	collect:
		for count < b.maxBatch {
			select {
			case r := <-b.requests:
				batch = append(batch, r)
				count += len(r.items)
			default:
				break collect
			}
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer func() { <-b.inFlight }()
			items := make([]Item, 0, count)
			for _, r := range batch {
				items = append(items, r.items...)
			}
			outcomes, err := b.apply(ctx, items)
			if err == nil && len(outcomes) != len(items) {
				err = errors.New("batch returned fewer outcomes than items")
			}
			at := 0
			for _, r := range batch {
				if err != nil {
					r.reply <- batchReply[Outcome]{err: err}
					continue
				}
				r.reply <- batchReply[Outcome]{outcomes: outcomes[at : at+len(r.items)]}
				at += len(r.items)
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
	outcomes, err := b.submitAll(ctx, done, []Item{item})
	if err != nil {
		var zero Outcome
		return zero, err
	}
	return outcomes[0], nil
}

// submitAll adds items that go into one batch together (one Raft entry,
// unless they are more than a batch holds) and waits for their outcomes,
// in order. It fails as a whole: a batch is one command.
func (b *batcher[Item, Outcome]) submitAll(ctx context.Context, done <-chan struct{}, items []Item) ([]Outcome, error) {
	reply := make(chan batchReply[Outcome], 1)
	select {
	case b.requests <- batchRequest[Item, Outcome]{items: items, reply: reply}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-done:
		return nil, errBatcherStopped
	}
	select {
	case r := <-reply:
		return r.outcomes, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-done:
		return nil, errBatcherStopped
	}
}
