package worker

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// reportClient plays the cluster's Report: each call waits for release,
// then refuses the items whose token is "stale". Without Report
// (unimplemented) it takes single calls.
type reportClient struct {
	daguhav1.CoordinatorServiceClient
	unimplemented bool
	release       chan struct{}

	mu      sync.Mutex
	calls   [][]string // the tokens of each Report call
	singles []string
}

func (c *reportClient) Report(ctx context.Context, req *daguhav1.ReportRequest, _ ...grpc.CallOption) (*daguhav1.ReportResponse, error) {
	if c.unimplemented {
		return nil, status.Error(codes.Unimplemented, "unknown method Report")
	}
	var tokens []string
	for _, item := range req.GetItems() {
		tokens = append(tokens, item.GetLeaseToken())
	}
	c.mu.Lock()
	c.calls = append(c.calls, tokens)
	c.mu.Unlock()
	select {
	case <-c.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	resp := &daguhav1.ReportResponse{}
	for _, token := range tokens {
		outcome := &daguhav1.ReportOutcome{}
		if token == "stale" {
			outcome.Code, outcome.Message = uint32(codes.FailedPrecondition), "stale lease"
		}
		resp.Outcomes = append(resp.Outcomes, outcome)
	}
	return resp, nil
}

func (c *reportClient) ReportStep(_ context.Context, req *daguhav1.ReportStepRequest, _ ...grpc.CallOption) (*daguhav1.ReportStepResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.singles = append(c.singles, "report "+req.GetLeaseToken())
	return &daguhav1.ReportStepResponse{}, nil
}

func (c *reportClient) FinishRun(_ context.Context, req *daguhav1.FinishRunRequest, _ ...grpc.CallOption) (*daguhav1.FinishRunResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.singles = append(c.singles, fmt.Sprintf("finish %s %s %d", req.GetLeaseToken(), req.GetStatus(), len(req.GetSteps())))
	return &daguhav1.FinishRunResponse{}, nil
}

func (c *reportClient) callCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

func reportItem(token string) *daguhav1.ReportItem {
	return &daguhav1.ReportItem{LeaseToken: token, Steps: []*daguhav1.StepState{{Name: "s", Status: daguhav1.StepStatus_STEP_STATUS_RUNNING}}}
}

// Items submitted while calls are in flight go together in the next call,
// and each learns its own outcome: the stale one alone is refused.
func TestReporterGroupsItemsThatArriveTogether(t *testing.T) {
	client := &reportClient{release: make(chan struct{})}
	r := newReporter(client)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	results := make(chan error, 12)
	submit := func(token string) {
		go func() { results <- r.submit(ctx, reportItem(token)) }()
	}
	// The first two items fill the calls in flight...
	submit("first")
	submit("second")
	waitFor(t, 5*time.Second, "two calls in flight", func() bool { return client.callCount() == 2 })
	// ...the next ten wait for one of them to end, and go as one.
	tokens := []string{"stale"}
	for i := range 9 {
		tokens = append(tokens, fmt.Sprintf("run-%d", i))
	}
	refusedC := make(chan error, 1)
	go func() { refusedC <- r.submit(ctx, reportItem("stale")) }()
	for _, token := range tokens[1:] {
		submit(token)
	}
	waitFor(t, 5*time.Second, "ten items waiting", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.queue) == 10
	})
	close(client.release)
	for range 11 {
		if err := <-results; err != nil {
			t.Errorf("an item was refused: %v", err)
		}
	}
	if err := <-refusedC; status.Code(err) != codes.FailedPrecondition {
		t.Errorf("the stale item: %v, want FailedPrecondition", err)
	}
	client.mu.Lock()
	defer client.mu.Unlock()
	if len(client.calls) != 3 || len(client.calls[2]) != 10 || !slices.Contains(client.calls[2], "stale") {
		t.Errorf("calls %v, want two of one item and one of ten", client.calls)
	}
	r.wg.Wait()
}

// A cluster without Report (an older server) gets every item as its own
// ReportStep or FinishRun, and Report is not tried again at once.
func TestReporterFallsBackToSingleCalls(t *testing.T) {
	client := &reportClient{unimplemented: true}
	r := newReporter(client)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.submit(ctx, reportItem("a")); err != nil {
		t.Fatal(err)
	}
	finish := &daguhav1.ReportItem{LeaseToken: "b", Steps: []*daguhav1.StepState{{Name: "s"}},
		Finish: &daguhav1.RunEnd{Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED}}
	if err := r.submit(ctx, finish); err != nil {
		t.Fatal(err)
	}
	r.wg.Wait()
	client.mu.Lock()
	defer client.mu.Unlock()
	if got := fmt.Sprint(client.singles); got != "[report a finish b RUN_STATUS_SUCCEEDED 1]" {
		t.Errorf("single calls %s", got)
	}
}
