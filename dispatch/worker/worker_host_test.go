package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// A host vouches for its lease (LeaseFresh) only for the first quarter of
// the lease TTL past the poll's sending plus the time the leader held the
// poll, only when the server takes batches, and never with WaitForStarts.
func TestLeaseIsFreshForAQuarterOfItsTTLFromTheGrant(t *testing.T) {
	w := &Worker{config: Config{Metrics: noMetrics{}}, holdSteps: time.Hour}
	task := func(batches bool, heldMillis uint32) *daguhav1.Task {
		return &daguhav1.Task{Run: &daguhav1.Run{Id: "r"}, LeaseTtlMillis: 8000, PollHeldMillis: heldMillis, TakesStepBatches: batches}
	}
	now := time.Now()
	for _, c := range []struct {
		name   string
		task   *daguhav1.Task
		polled time.Time
		wait   bool
		fresh  bool
	}{
		{"polled just now", task(true, 0), now, false, true},
		{"polled 1.9 s ago (2 s is a quarter)", task(true, 0), now.Add(-1900 * time.Millisecond), false, true},
		{"polled 2.1 s ago", task(true, 0), now.Add(-2100 * time.Millisecond), false, false},
		{"polled 2.1 s ago, held 500 ms by the leader", task(true, 500), now.Add(-2100 * time.Millisecond), false, true},
		{"polled 3 s ago, held 500 ms by the leader", task(true, 500), now.Add(-3 * time.Second), false, false},
		{"a server that takes no batches", task(false, 0), now, false, false},
		{"a worker that waits for starts", task(true, 0), now, true, false},
	} {
		w.config.WaitForStarts = c.wait
		h := newWorkerHost(w, c.task, context.Background(), c.polled)
		if got := h.LeaseFresh(); got != c.fresh {
			t.Errorf("%s: LeaseFresh %t, want %t", c.name, got, c.fresh)
		}
		h.close()
	}
}

// A held start still waiting for its call is replaced by its own end; any
// other held state queues behind the ones before it.
func TestHeldStartIsReplacedByItsEnd(t *testing.T) {
	w := &Worker{config: Config{Metrics: noMetrics{}}, holdSteps: time.Hour}
	h := newWorkerHost(w, &daguhav1.Task{Run: &daguhav1.Run{Id: "r"}, LeaseTtlMillis: 8000, TakesStepBatches: true}, context.Background(), time.Now())
	defer h.close()
	state := func(name string, retry uint32, status daguhav1.StepStatus) *daguhav1.StepState {
		return &daguhav1.StepState{Name: name, Retry: retry, Status: status}
	}
	none := func(error) {}
	h.HoldStep(state("a", 1, daguhav1.StepStatus_STEP_STATUS_RUNNING), none)
	h.HoldStep(state("a", 1, daguhav1.StepStatus_STEP_STATUS_FAILED), none)
	h.HoldStep(state("a", 2, daguhav1.StepStatus_STEP_STATUS_RUNNING), none)
	h.HoldStep(state("b", 1, daguhav1.StepStatus_STEP_STATUS_RUNNING), none)
	h.HoldStep(state("a", 2, daguhav1.StepStatus_STEP_STATUS_SUCCEEDED), none)
	h.HoldStep(state("b", 1, daguhav1.StepStatus_STEP_STATUS_SUCCEEDED), none)
	held, lost := h.drain()
	var got []string
	for _, s := range held {
		got = append(got, s.GetName()+"/"+s.GetStatus().Word())
	}
	if strings.Join(got, " ") != "a/failed a/succeeded b/succeeded" || lost != nil {
		t.Errorf("held after coalescing: %v (%v), want a/failed a/succeeded b/succeeded", got, lost)
	}
}
