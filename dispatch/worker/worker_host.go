package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// DefaultHoldSteps is how long a step's end may wait for the run's next
// report or its finish before it is sent on its own.
const DefaultHoldSteps = 100 * time.Millisecond

// errAttemptOver ends the calls of an attempt the worker no longer runs.
var errAttemptOver = errors.New("the attempt is over")

// workerHost is the cluster as one attempt's engine sees it: calls under
// the task's lease.
//
// When the granting server takes several step states per call
// (Task.takes_step_batches), the host sends the attempt's states in order,
// one call at a time: the states that arrive while a call is in flight go
// together in the next one, so no state of a step overtakes an earlier one
// and the finish comes after every state sent before it. A step's end
// (HoldStep) waits for no call of its own: it goes with the run's next
// report, or its finish, or on its own after the worker's HoldSteps delay.
// With an older server every state is its own call, as it always was.
//
// Until freshUntil a step's start is held too (LeaseFresh): the lease
// started no earlier than the poll's sending plus the time the leader held
// the poll (Task.poll_held_millis), and runs for lease_ttl_millis, so for
// the first quarter of that no other attempt can hold the run.
type workerHost struct {
	w          *Worker
	task       *daguhav1.Task
	batches    bool
	freshUntil time.Time
	// ctx carries the calls: it ends when the attempt is given up (lease
	// lost, worker stopping, host closed), not when the run is cancelled,
	// since a cancelled run still reports its end.
	ctx       context.Context
	cancel    context.CancelCauseFunc
	stopWatch func() bool

	mu      sync.Mutex
	queue   []*hostState
	sending bool
	idle    chan struct{} // closed when the call in flight ends
	timer   *time.Timer
	timerID int
	due     bool // the hold ran out while a call was in flight
	closed  bool
	// lost is the first failure of a call that carried held ends: the
	// engine may have ended the attempt before it heard of it.
	lost error
	// endMail is the run's end's mail, sent once the end is recorded
	// (mail.go).
	endMail *outMail
}

// hostState is a step state waiting for its call.
type hostState struct {
	step *daguhav1.StepState
	// done receives the answer of a reported state (buffered); nil for a
	// held one.
	done chan error
	// failed is told when a held state is not taken.
	failed func(error)
}

func newWorkerHost(w *Worker, task *daguhav1.Task, runCtx context.Context, polled time.Time) *workerHost {
	h := &workerHost{w: w, task: task, batches: task.GetTakesStepBatches()}
	if h.batches && !w.config.WaitForStarts {
		ttl := time.Duration(task.GetLeaseTtlMillis()) * time.Millisecond
		h.freshUntil = polled.Add(time.Duration(task.GetPollHeldMillis())*time.Millisecond + ttl/4)
	}
	h.ctx, h.cancel = context.WithCancelCause(context.WithoutCancel(runCtx))
	h.stopWatch = context.AfterFunc(runCtx, func() {
		if cause := context.Cause(runCtx); !errors.Is(cause, errCancelled) {
			h.cancel(cause)
		}
	})
	return h
}

// ReportStep sends a step's state and returns once the cluster took it.
func (h *workerHost) ReportStep(ctx context.Context, step *daguhav1.StepState) error {
	h.stepMetrics(step)
	if !h.batches {
		return h.reportAlone(ctx, step)
	}
	s := &hostState{step: step, done: make(chan error, 1)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errAttemptOver
	}
	h.queue = append(h.queue, s)
	h.kick()
	h.mu.Unlock()
	select {
	case err := <-s.done:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// LeaseFresh tells whether the lease is certain to be held still: before
// freshUntil, by the monotonic clock.
func (h *workerHost) LeaseFresh() bool {
	return time.Now().Before(h.freshUntil)
}

// HoldStep takes a step's state to send with the run's next call. A held
// start still waiting is replaced by its own end, which carries all it
// said (the cluster keeps one state per step).
func (h *workerHost) HoldStep(step *daguhav1.StepState, failed func(error)) {
	h.stepMetrics(step)
	if !h.batches {
		if err := h.reportAlone(h.ctx, step); err != nil {
			failed(err)
		}
		return
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		failed(errAttemptOver)
		return
	}
	if i := h.heldStart(step.GetName()); i >= 0 {
		h.queue[i] = &hostState{step: step, failed: failed}
	} else {
		h.queue = append(h.queue, &hostState{step: step, failed: failed})
	}
	if !h.sending {
		h.arm()
	}
	h.mu.Unlock()
}

// heldStart is the place in the queue of the step's held start when that
// is the step's last state queued, or -1. h.mu is held.
func (h *workerHost) heldStart(name string) int {
	for i := len(h.queue) - 1; i >= 0; i-- {
		if s := h.queue[i]; s.step.GetName() == name {
			if s.done == nil && s.step.GetStatus() == daguhav1.StepStatus_STEP_STATUS_RUNNING {
				return i
			}
			return -1
		}
	}
	return -1
}

func (h *workerHost) stepMetrics(step *daguhav1.StepState) {
	if step.GetFinishedAtUnixNano() > 0 && step.GetStartedAtUnixNano() > 0 {
		h.w.config.Metrics.StepFinished(step.GetStatus().Word(), time.Duration(step.GetFinishedAtUnixNano()-step.GetStartedAtUnixNano()))
	}
}

// reportAlone sends one state in a call of its own.
func (h *workerHost) reportAlone(ctx context.Context, step *daguhav1.StepState) error {
	called := time.Now()
	steps := []*daguhav1.StepState{step}
	err := h.w.reportSteps(ctx, h.task, steps)
	h.logSteps(steps, called, err)
	return err
}

// kick starts a call with the queued states unless one is in flight.
// h.mu is held.
func (h *workerHost) kick() {
	if h.sending || h.closed || len(h.queue) == 0 {
		return
	}
	batch := h.queue
	h.queue = nil
	h.sending, h.due = true, false
	h.disarm()
	h.idle = make(chan struct{})
	go h.send(batch)
}

// arm starts the hold of the queued ends, unless it runs already. h.mu is
// held.
func (h *workerHost) arm() {
	if h.timer != nil || h.closed {
		return
	}
	h.timerID++
	id := h.timerID
	h.timer = time.AfterFunc(h.w.holdSteps, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if id != h.timerID {
			return
		}
		h.timer = nil
		if h.sending {
			h.due = true
			return
		}
		h.kick()
	})
}

func (h *workerHost) disarm() {
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	h.timerID++
}

func (h *workerHost) send(batch []*hostState) {
	steps := make([]*daguhav1.StepState, len(batch))
	held := false
	for i, s := range batch {
		steps[i] = s.step
		held = held || s.done == nil
	}
	called := time.Now()
	err := h.w.reportSteps(h.ctx, h.task, steps)
	h.logSteps(steps, called, err)
	for _, s := range batch {
		switch {
		case s.done != nil:
			s.done <- err
		case err != nil:
			s.failed(err)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil && held && h.lost == nil {
		h.lost = err
	}
	h.sending = false
	close(h.idle)
	// What came meanwhile: a reported state goes at once, held ends when
	// their hold runs out.
	report := h.due
	for _, s := range h.queue {
		report = report || s.done != nil
	}
	if report {
		h.kick()
	} else if len(h.queue) > 0 {
		h.arm()
	}
}

// logSteps writes one line per state a call carried: what this attempt
// (under this fencing token) told the cluster, and whether it was taken.
func (h *workerHost) logSteps(steps []*daguhav1.StepState, called time.Time, err error) {
	run := h.task.GetRun()
	for _, step := range steps {
		attrs := []any{"run", run.GetId(), "attempt", run.GetAttempt(), "fencing_token", run.GetFencingToken(),
			"step", step.GetName(), "step_status", step.GetStatus().String(), "retry", step.GetRetry(),
			"called_at_unix_nano", called.UnixNano()}
		if err != nil {
			h.w.logger.Info("step report not taken", append(attrs, "error", err)...)
		} else {
			h.w.logger.Info("step reported", attrs...)
		}
	}
}

// drain waits for the call in flight and returns the states still held,
// to go with the finish, and the failure of a call that carried held ends
// (nil when none failed). No call starts after it.
func (h *workerHost) drain() (held []*daguhav1.StepState, lost error) {
	h.mu.Lock()
	h.closed = true
	h.disarm()
	for h.sending {
		idle := h.idle
		h.mu.Unlock()
		<-idle
		h.mu.Lock()
	}
	for _, s := range h.queue {
		held = append(held, s.step)
	}
	h.queue = nil
	lost = h.lost
	h.mu.Unlock()
	return held, lost
}

// close ends the attempt's calls: what is still held is dropped (the
// attempt is over or its states went with the finish).
func (h *workerHost) close() {
	h.mu.Lock()
	h.closed = true
	h.disarm()
	h.queue = nil
	var idle chan struct{}
	if h.sending {
		idle = h.idle
	}
	h.mu.Unlock()
	h.cancel(errAttemptOver)
	if idle != nil {
		<-idle
	}
	h.stopWatch()
}
