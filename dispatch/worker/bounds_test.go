package worker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/dispatch/valid"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// What a worker sends fits in one message: the step states of one run are
// split, in order, into items of at most stepChunkBytes.
func TestStepChunksKeepOrderAndFit(t *testing.T) {
	var steps []*daguhav1.StepState
	for i := range 40 {
		steps = append(steps, &daguhav1.StepState{Name: fmt.Sprintf("s%d", i), OutputTail: strings.Repeat("t", valid.MaxOutputTailBytes)})
	}
	chunks := stepChunks(steps)
	if len(chunks) < 3 {
		t.Fatalf("40 states of 64 KiB went in %d chunks", len(chunks))
	}
	for i, chunk := range chunks {
		if size := proto.Size(&daguhav1.ReportItem{Steps: chunk}); size > stepChunkBytes+1024 {
			t.Errorf("chunk %d is %d bytes, more than %d", i, size, stepChunkBytes)
		}
	}
	if !slices.Equal(slices.Concat(chunks...), steps) {
		t.Fatal("the chunks do not give back the states in order")
	}
	if got := stepChunks(nil); len(got) != 1 || len(got[0]) != 0 {
		t.Fatalf("no states: %v, want one empty chunk (a finish without steps)", got)
	}
}

// A Report call carries items up to half a message together; the others
// wait for the next call.
func TestReporterCallsFitInAMessage(t *testing.T) {
	client := &reportClient{release: make(chan struct{})}
	close(client.release)
	r := newReporter(client)
	r.inFlight = maxReportCalls // hold the calls until every item waits
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	results := make(chan error, 8)
	for i := range 8 {
		item := &daguhav1.ReportItem{LeaseToken: fmt.Sprintf("run-%d", i), Steps: []*daguhav1.StepState{{Name: "s",
			OutputTail: strings.Repeat("t", 900<<10)}}}
		go func() { results <- r.submit(ctx, item) }()
	}
	waitFor(t, 5*time.Second, "eight items waiting", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.queue) == 8
	})
	r.mu.Lock()
	r.inFlight = 0
	r.kick()
	r.mu.Unlock()
	for range 8 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	r.wg.Wait()
	client.mu.Lock()
	defer client.mu.Unlock()
	for _, call := range client.calls {
		// Items of 900 KiB: two fit in half a message, three do not.
		if len(call) > 2 {
			t.Errorf("one Report call carried %d items of 900 KiB: %v", len(call), client.calls)
		}
	}
}

// A run's end is kept within what the cluster takes: outputs beyond the
// limits are left out and fail a run that succeeded, and its error is cut.
func TestBoundRunEnd(t *testing.T) {
	big := strings.Repeat("v", valid.MaxOutputValueBytes)
	final, message, outputs := boundRunEnd(daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "", map[string]string{"A": big, "B": big, "C": "x"})
	if final != daguhav1.RunStatus_RUN_STATUS_FAILED || outputs != nil || !strings.Contains(message, "more than the limit of 2097152") {
		t.Fatalf("outputs over 2 MiB: %s %q %d outputs", final, message, len(outputs))
	}
	final, message, _ = boundRunEnd(daguhav1.RunStatus_RUN_STATUS_FAILED, strings.Repeat("e", 20<<10), map[string]string{"A": "1"})
	if final != daguhav1.RunStatus_RUN_STATUS_FAILED || len(message) > valid.MaxErrorBytes {
		t.Fatalf("a 20 KiB error: %s, %d bytes", final, len(message))
	}
	final, message, outputs = boundRunEnd(daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "", map[string]string{"A": "1"})
	if final != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED || message != "" || outputs["A"] != "1" {
		t.Fatalf("an end within the limits was changed: %s %q %v", final, message, outputs)
	}
}

// Output that is not UTF-8 grows when its bytes are replaced; what is
// reported is still at most the tail's limit, and text.
func TestReportedTextsAreCutAfterTheyAreMadeText(t *testing.T) {
	st := &daguhav1.StepState{OutputTail: strings.Repeat("\xff", valid.MaxOutputTailBytes), Error: strings.Repeat("\xfe", valid.MaxErrorBytes)}
	sanitize(st)
	if len(st.GetOutputTail()) > valid.MaxOutputTailBytes || !utf8.ValidString(st.GetOutputTail()) {
		t.Errorf("output tail: %d bytes, UTF-8 %t", len(st.GetOutputTail()), utf8.ValidString(st.GetOutputTail()))
	}
	if len(st.GetError()) > valid.MaxErrorBytes || !utf8.ValidString(st.GetError()) {
		t.Errorf("error: %d bytes, UTF-8 %t", len(st.GetError()), utf8.ValidString(st.GetError()))
	}
}
