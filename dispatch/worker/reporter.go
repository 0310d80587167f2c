package worker

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/dispatch/valid"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

const (
	// maxReportItems bounds the items of one Report call.
	maxReportItems = 128
	// reportBudgetBytes bounds the items of one Report call together: one
	// call fits in a message (an item alone is at most a finish's outputs,
	// its error and a chunk of steps, see stepChunkBytes).
	reportBudgetBytes = valid.MaxMessageBytes / 2
	// maxReportCalls bounds a worker's Report calls in flight at once:
	// what arrives while they are goes together in the next one.
	maxReportCalls = 2
	// reportCallTimeout bounds one Report call (as a single call was).
	reportCallTimeout = 15 * time.Second
	// singleCallsFor is how long a worker sends every item on its own
	// after the cluster answered that it has no Report call (an older
	// server), before it tries Report again.
	singleCallsFor = time.Minute
)

// reporter is a worker's group commit of reports: the step reports and
// finishes of its runs that arrive while Report calls are in flight go
// together in the next call, each item with its own outcome, so 64 runs
// reporting at once cost a call or two instead of 64. Order within a run
// is its host's business: a host has at most one item in flight.
type reporter struct {
	client daguhav1.CoordinatorServiceClient
	// wg counts the goroutines sending calls.
	wg sync.WaitGroup

	mu       sync.Mutex
	queue    []*reportCall
	inFlight int
	// singleUntil: the cluster has no Report call; until then every item
	// is a ReportStep or FinishRun call of its own.
	singleUntil time.Time
}

type reportCall struct {
	ctx  context.Context
	item *daguhav1.ReportItem
	done chan error // buffered
}

func newReporter(client daguhav1.CoordinatorServiceClient) *reporter {
	return &reporter{client: client}
}

// submit sends item (with whatever else is waiting) and returns what the
// cluster answered for it: nil when taken, else a gRPC status error, as
// the single call would have returned.
func (r *reporter) submit(ctx context.Context, item *daguhav1.ReportItem) error {
	r.mu.Lock()
	if time.Now().Before(r.singleUntil) {
		r.mu.Unlock()
		return r.alone(ctx, item)
	}
	c := &reportCall{ctx: ctx, item: item, done: make(chan error, 1)}
	r.queue = append(r.queue, c)
	r.kick()
	r.mu.Unlock()
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// kick starts calls with the waiting items while fewer than
// maxReportCalls are in flight. r.mu is held.
func (r *reporter) kick() {
	for r.inFlight < maxReportCalls && len(r.queue) > 0 {
		n, size := 1, proto.Size(r.queue[0].item)
		for n < len(r.queue) && n < maxReportItems {
			next := proto.Size(r.queue[n].item)
			if size+next > reportBudgetBytes {
				break
			}
			size += next
			n++
		}
		batch := r.queue[:n:n]
		r.queue = slices.Clone(r.queue[n:])
		r.inFlight++
		r.wg.Add(1)
		go r.send(batch)
	}
}

func (r *reporter) send(batch []*reportCall) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		r.inFlight--
		r.kick()
		r.mu.Unlock()
	}()
	// Callers that gave up (their attempt ended) are left out.
	live := batch[:0]
	for _, c := range batch {
		if c.ctx.Err() == nil {
			live = append(live, c)
		}
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), reportCallTimeout)
	defer cancel()
	// The call ends early once every caller gave up on it.
	var waiting atomic.Int32
	waiting.Store(int32(len(live)))
	items := make([]*daguhav1.ReportItem, len(live))
	for i, c := range live {
		items[i] = c.item
		stop := context.AfterFunc(c.ctx, func() {
			if waiting.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	resp, err := r.client.Report(ctx, &daguhav1.ReportRequest{Items: items})
	if err == nil && len(resp.GetOutcomes()) != len(items) {
		err = status.Errorf(codes.Internal, "the server answered %d outcomes for %d report items", len(resp.GetOutcomes()), len(items))
	}
	switch {
	case status.Code(err) == codes.Unimplemented:
		// An older server: each item on its own, for a while.
		r.mu.Lock()
		r.singleUntil = time.Now().Add(singleCallsFor)
		r.mu.Unlock()
		var wg sync.WaitGroup
		for _, c := range live {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.done <- r.alone(c.ctx, c.item)
			}()
		}
		wg.Wait()
	case err != nil:
		for _, c := range live {
			c.done <- err
		}
	default:
		for i, c := range live {
			c.done <- outcomeError(resp.GetOutcomes()[i])
		}
	}
}

func outcomeError(o *daguhav1.ReportOutcome) error {
	if o.GetCode() == uint32(codes.OK) {
		return nil
	}
	return status.Error(codes.Code(o.GetCode()), o.GetMessage())
}

// alone sends one item as the single call an older server knows.
func (r *reporter) alone(ctx context.Context, item *daguhav1.ReportItem) error {
	if end := item.GetFinish(); end != nil {
		_, err := r.client.FinishRun(ctx, &daguhav1.FinishRunRequest{LeaseToken: item.GetLeaseToken(), Status: end.GetStatus(),
			Error: end.GetError(), Outputs: end.GetOutputs(), Steps: item.GetSteps()})
		return err
	}
	req := &daguhav1.ReportStepRequest{LeaseToken: item.GetLeaseToken(), Steps: item.GetSteps()}
	if len(item.GetSteps()) == 1 {
		req = &daguhav1.ReportStepRequest{LeaseToken: item.GetLeaseToken(), Step: item.GetSteps()[0]}
	}
	_, err := r.client.ReportStep(ctx, req)
	return err
}
