package dispatch

import "context"

// Batcher is the leader's group commit, for other layers: items submitted
// while earlier batches are being written go out together, in one command,
// with up to inFlight commands on their way at once. The HTTP API batches
// enqueues with it.
type Batcher[Item, Outcome any] struct {
	b *batcher[Item, Outcome]
}

// ErrBatcherStopped is returned to items still waiting when a batcher's
// Run ends.
var ErrBatcherStopped = errBatcherStopped

// NewBatcher makes a batcher that writes at most maxBatch items per call
// of apply, which must return one outcome per item, in order.
func NewBatcher[Item, Outcome any](maxBatch, inFlight int, apply func(context.Context, []Item) ([]Outcome, error)) *Batcher[Item, Outcome] {
	return &Batcher[Item, Outcome]{b: newBatcher(maxBatch, inFlight, apply)}
}

// Run collects and writes batches until ctx ends; items still waiting then
// get ErrBatcherStopped.
func (b *Batcher[Item, Outcome]) Run(ctx context.Context) { b.b.run(ctx) }

// Submit adds one item and waits for its outcome (or for ctx or done).
func (b *Batcher[Item, Outcome]) Submit(ctx context.Context, done <-chan struct{}, item Item) (Outcome, error) {
	return b.b.submit(ctx, done, item)
}
