package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/daguha/daguha/ops/metrics"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// WorkerConfig describes a worker.
type WorkerConfig struct {
	ID            string
	Labels        map[string]string
	MaxActiveRuns int
	// HeartbeatInterval is how often leases are renewed (default 1 s).
	HeartbeatInterval time.Duration
	// PollWait is how long one long poll waits for a run (default 10 s).
	PollWait time.Duration
	// ReportTimeout bounds how long a report is retried through server
	// failures before the run is given up (default 2 min).
	ReportTimeout time.Duration
	Logger        *slog.Logger
	Now           func() time.Time
	// Metrics, when set, records runs in progress, step durations and
	// heartbeat round trips.
	Metrics *metrics.WorkerMetrics
}

// Worker polls the cluster for runs and executes them.
type Worker struct {
	config WorkerConfig
	client daguhav1.CoordinatorServiceClient
	logger *slog.Logger
	info   *daguhav1.WorkerInfo

	mu      sync.Mutex
	running map[string]*activeRun
	slots   chan struct{}
}

type activeRun struct {
	token  string
	cancel context.CancelCauseFunc
}

var (
	errCancelled = errors.New("cancelled")
	errLost      = errors.New("lease lost")
)

// NewWorker returns a worker speaking to the cluster over conn.
func NewWorker(conn grpc.ClientConnInterface, config WorkerConfig) (*Worker, error) {
	if config.ID == "" {
		return nil, errors.New("worker id is empty")
	}
	if config.MaxActiveRuns <= 0 {
		return nil, fmt.Errorf("worker %q: maxActiveRuns %d must be at least 1", config.ID, config.MaxActiveRuns)
	}
	if config.HeartbeatInterval <= 0 {
		config.HeartbeatInterval = time.Second
	}
	if config.PollWait <= 0 {
		config.PollWait = 10 * time.Second
	}
	if config.ReportTimeout <= 0 {
		config.ReportTimeout = 2 * time.Minute
	}
	if config.Logger == nil {
		config.Logger = slog.Default()
	}
	if config.Now == nil {
		config.Now = time.Now
	}
	config.Metrics.SetCapacity(config.MaxActiveRuns)
	return &Worker{
		config:  config,
		client:  daguhav1.NewCoordinatorServiceClient(conn),
		logger:  config.Logger.With("worker", config.ID),
		info:    &daguhav1.WorkerInfo{Id: config.ID, Labels: config.Labels, MaxActiveRuns: uint32(config.MaxActiveRuns)},
		running: map[string]*activeRun{},
		slots:   make(chan struct{}, config.MaxActiveRuns),
	}, nil
}

// Run polls and executes until ctx ends, then waits for its runs to stop.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.heartbeatLoop(ctx)
	}()
	w.logger.Info("worker started", "labels", FormatLabels(w.config.Labels), "max_active_runs", w.config.MaxActiveRuns)
	backoff := newBackoff()
	for ctx.Err() == nil {
		select {
		case w.slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		task, err := w.poll(ctx)
		if err != nil || task == nil {
			<-w.slots
			if err != nil && ctx.Err() == nil {
				w.logger.Warn("poll failed; retrying", "error", err)
				backoff.wait(ctx)
			}
			continue
		}
		backoff.reset()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-w.slots }()
			w.execute(ctx, task)
		}()
	}
	wg.Wait()
	return nil
}

func (w *Worker) poll(ctx context.Context) (*daguhav1.Task, error) {
	callCtx, cancel := context.WithTimeout(ctx, w.config.PollWait+10*time.Second)
	defer cancel()
	resp, err := w.client.Poll(callCtx, &daguhav1.PollRequest{Worker: w.info, WaitMillis: uint32(w.config.PollWait.Milliseconds())})
	if err != nil {
		return nil, err
	}
	return resp.GetTask(), nil
}

func (w *Worker) heartbeatLoop(ctx context.Context) {
	ticker := time.NewTicker(w.config.HeartbeatInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		w.mu.Lock()
		leases := make([]*daguhav1.HeldLease, 0, len(w.running))
		for id, run := range w.running {
			leases = append(leases, &daguhav1.HeldLease{RunId: id, LeaseToken: run.token})
		}
		w.mu.Unlock()
		req := &daguhav1.HeartbeatRequest{Worker: w.info, Leases: leases}
		callCtx, cancel := context.WithTimeout(ctx, 3*w.config.HeartbeatInterval+2*time.Second)
		began := time.Now()
		resp, err := w.client.Heartbeat(callCtx, req)
		cancel()
		if status.Code(err) == codes.Unavailable && ctx.Err() == nil {
			// The server it reached is down: try another at once rather
			// than stay silent for a whole interval.
			callCtx, cancel := context.WithTimeout(ctx, 3*w.config.HeartbeatInterval+2*time.Second)
			resp, err = w.client.Heartbeat(callCtx, req)
			cancel()
		}
		if ctx.Err() == nil {
			w.config.Metrics.Heartbeat(time.Since(began), err)
		}
		if err != nil {
			if ctx.Err() == nil {
				w.logger.Debug("heartbeat failed", "error", err)
			}
			continue
		}
		for _, id := range resp.GetCancelRunIds() {
			w.stop(id, errCancelled)
		}
		for _, id := range resp.GetLostRunIds() {
			w.stop(id, errLost)
		}
	}
}

func (w *Worker) stop(runID string, cause error) {
	w.mu.Lock()
	run, ok := w.running[runID]
	w.mu.Unlock()
	if ok {
		w.logger.Info("stopping run", "run", runID, "reason", cause)
		run.cancel(cause)
	}
}

// execute runs the steps of a task in order, reporting each, then the end.
func (w *Worker) execute(ctx context.Context, task *daguhav1.Task) {
	run := task.GetRun()
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w.mu.Lock()
	w.running[run.GetId()] = &activeRun{token: task.GetLeaseToken(), cancel: cancel}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.running, run.GetId())
		w.mu.Unlock()
	}()
	logger := w.logger.With("run", run.GetId(), "dag", run.GetDagName(), "attempt", run.GetAttempt())
	logger.Info("run started")
	w.config.Metrics.RunStarted()
	ended := metrics.RunAbandoned
	defer func() { w.config.Metrics.RunEnded(ended) }()

	final, message := daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, ""
	for _, spec := range run.GetDag().GetSteps() {
		started := w.config.Now().UnixNano()
		if err := w.report(runCtx, task, &daguhav1.StepState{Name: spec.GetName(), Status: daguhav1.StepStatus_STEP_STATUS_RUNNING, StartedAtUnixNano: started}); err != nil {
			final, message = w.abandon(logger, runCtx, err)
			break
		}
		result := runCommand(runCtx, spec.GetCommand())
		step := &daguhav1.StepState{
			Name: spec.GetName(), ExitCode: int32(result.exitCode), OutputTail: result.output,
			StartedAtUnixNano: started, FinishedAtUnixNano: w.config.Now().UnixNano(),
		}
		switch {
		case runCtx.Err() != nil:
			step.Status = daguhav1.StepStatus_STEP_STATUS_CANCELLED
			step.Error = context.Cause(runCtx).Error()
		case result.err != nil:
			step.Status = daguhav1.StepStatus_STEP_STATUS_FAILED
			step.Error = result.err.Error()
		default:
			step.Status = daguhav1.StepStatus_STEP_STATUS_SUCCEEDED
		}
		w.config.Metrics.StepFinished(stepStatusLabel(step.Status), time.Duration(step.FinishedAtUnixNano-started))
		if runCtx.Err() != nil {
			final, message = w.abandon(logger, runCtx, context.Cause(runCtx))
			if final == daguhav1.RunStatus_RUN_STATUS_CANCELLED {
				_ = w.report(context.WithoutCancel(ctx), task, step)
			}
			break
		}
		if err := w.report(runCtx, task, step); err != nil {
			final, message = w.abandon(logger, runCtx, err)
			break
		}
		if step.Status == daguhav1.StepStatus_STEP_STATUS_FAILED {
			final, message = daguhav1.RunStatus_RUN_STATUS_FAILED, fmt.Sprintf("step %q failed: %s", spec.GetName(), result.err)
			break
		}
	}
	if final == daguhav1.RunStatus_RUN_STATUS_UNSPECIFIED {
		logger.Info("run abandoned: this worker no longer holds it", "reason", message)
		return
	}
	finishCtx := context.WithoutCancel(ctx)
	if ctx.Err() != nil {
		// The worker is stopping: leave the run to be reclaimed.
		logger.Info("worker stopping; run left for another worker")
		return
	}
	err := w.retry(finishCtx, func(callCtx context.Context) error {
		_, err := w.client.FinishRun(callCtx, &daguhav1.FinishRunRequest{LeaseToken: task.GetLeaseToken(), Status: final, Error: message})
		return err
	})
	if err != nil {
		logger.Warn("run end not recorded", "status", final, "error", err)
		return
	}
	ended = runStatusLabel(final)
	logger.Info("run finished", "status", final)
}

// abandon decides how a run that cannot go on ends: cancelled runs are
// reported cancelled; a lost lease or a refused report means another
// attempt owns the run and this one reports nothing more.
func (w *Worker) abandon(logger *slog.Logger, runCtx context.Context, err error) (daguhav1.RunStatus, string) {
	if errors.Is(context.Cause(runCtx), errCancelled) || errors.Is(err, errCancelled) {
		return daguhav1.RunStatus_RUN_STATUS_CANCELLED, "cancelled"
	}
	return daguhav1.RunStatus_RUN_STATUS_UNSPECIFIED, err.Error()
}

func (w *Worker) report(ctx context.Context, task *daguhav1.Task, step *daguhav1.StepState) error {
	return w.retry(ctx, func(callCtx context.Context) error {
		_, err := w.client.ReportStep(callCtx, &daguhav1.ReportStepRequest{LeaseToken: task.GetLeaseToken(), Step: step})
		return err
	})
}

// retry repeats call through server failures (unavailable, timed out)
// until it succeeds, is refused, or ReportTimeout passes.
func (w *Worker) retry(ctx context.Context, call func(context.Context) error) error {
	deadline := time.Now().Add(w.config.ReportTimeout)
	backoff := newBackoff()
	for {
		callCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := call(callCtx)
		cancel()
		if err == nil {
			return nil
		}
		switch status.Code(err) {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted:
		default:
			return err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		backoff.wait(ctx)
	}
}

// backoff waits longer after each failure, up to two seconds.
type backoff struct{ next time.Duration }

func newBackoff() *backoff { return &backoff{next: 50 * time.Millisecond} }

func (b *backoff) reset() { b.next = 50 * time.Millisecond }

func (b *backoff) wait(ctx context.Context) {
	timer := time.NewTimer(b.next)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	b.next = min(2*b.next, 2*time.Second)
}
