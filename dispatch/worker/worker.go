package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/dispatch/valid"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Config describes a worker.
type Config struct {
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
	Metrics Metrics
	// LogDir keeps the full output of every step (default: a new
	// directory daguha-worker-logs-* in the system's temporary directory).
	LogDir string
	// LogRetention is how long the logs of a run stay in LogDir after
	// they were last written; the worker removes older ones (but of the
	// runs it is executing) when it starts and then regularly. 0 keeps
	// them forever (DefaultStepLogRetention is what the commands use).
	LogRetention time.Duration
	// NoopExecutor makes every command or script step succeed at once
	// without starting a process (run/call steps still start child runs):
	// for benchmarks of the coordinator, never for real work. Such a
	// worker keeps no logs (no run log, no step logs, no log tickets):
	// its steps write nothing, and the files an attempt would create cost
	// more CPU than the coordinator spends on the run.
	NoopExecutor bool
	// KillGrace is how long a stopped step's processes get between
	// SIGTERM and SIGKILL (default 5 s).
	KillGrace time.Duration
	// LogAddr is where this worker serves its step logs (host:port), told
	// to the cluster so the API can fetch them; empty when it does not.
	LogAddr string
	// HoldSteps is how long a step's end may wait to go with its run's
	// next report or its finish before it is sent on its own (default
	// 100 ms; servers that do not take step batches get every state at
	// once).
	HoldSteps time.Duration
	// WaitForStarts makes every step's start wait to be taken before the
	// step runs, even under a lease granted a moment ago (by default such
	// a start goes with the run's next call; see StepHolder).
	WaitForStarts bool
	// Mail is the worker's own mail settings (Dagu's smtp, errorMail and
	// infoMail), which a DAG's override (see mail.go).
	Mail MailSettings
	// AutoLabels are the keys of Labels the worker fingerprinted rather
	// than was given by hand; the servers show them as such.
	AutoLabels []string
	// RefreshLabels, when set, gives the worker's labels anew (the hand
	// ones over a new fingerprint) and the keys fingerprinted, every
	// LabelRefreshInterval (default DefaultLabelRefreshInterval); the
	// executors it can run (Executors) are looked at as often. A change
	// goes with the next poll and heartbeat, so the servers match runs
	// against the machine as it is.
	RefreshLabels        func() (map[string]string, []string)
	LabelRefreshInterval time.Duration
}

// DefaultLabelRefreshInterval is how often a worker looks at its labels
// and executors again.
const DefaultLabelRefreshInterval = 5 * time.Minute

// Worker polls the cluster for runs and executes them.
type Worker struct {
	// ownLogDir: the worker made its log directory and removes it at the end.
	ownLogDir bool
	config    Config
	client    daguhav1.CoordinatorServiceClient
	reporter  *reporter
	logger    *slog.Logger
	// info is what the worker says of itself in each poll and heartbeat;
	// a label refresh replaces it whole (a message being sent is never
	// changed).
	info   atomic.Pointer[daguhav1.WorkerInfo]
	engine *Engine

	// holdSteps is config.HoldSteps.
	holdSteps time.Duration

	mu      sync.Mutex
	running map[string]*activeRun
	slots   chan struct{}
	// mails are the mails being sent (mail.go).
	mails sync.WaitGroup
}

type activeRun struct {
	token  string
	cancel context.CancelCauseFunc
}

var (
	errCancelled = errors.New("cancelled")
	errLost      = errors.New("lease lost")
)

// New returns a worker speaking to the cluster over conn.
func New(conn grpc.ClientConnInterface, config Config) (*Worker, error) {
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
	if config.HoldSteps <= 0 {
		config.HoldSteps = DefaultHoldSteps
	}
	if config.Metrics == nil {
		config.Metrics = noMetrics{}
	}
	config.Metrics.SetCapacity(config.MaxActiveRuns)
	ownLogDir := config.LogDir == "" && !config.NoopExecutor
	if config.NoopExecutor {
		config.LogDir = ""
	}
	if ownLogDir {
		dir, err := os.MkdirTemp(os.TempDir(), "daguha-worker-logs-*")
		if err != nil {
			return nil, fmt.Errorf("worker %q: step log directory: %w", config.ID, err)
		}
		config.LogDir = dir
	}
	logger := config.Logger.With("worker", config.ID)
	client := daguhav1.NewCoordinatorServiceClient(conn)
	if config.LabelRefreshInterval <= 0 {
		config.LabelRefreshInterval = DefaultLabelRefreshInterval
	}
	w := &Worker{
		ownLogDir: ownLogDir,
		config:    config,
		client:    client,
		reporter:  newReporter(client),
		logger:    logger,
		engine:    &Engine{LogDir: config.LogDir, Now: config.Now, Logger: logger, KillGrace: config.KillGrace, Noop: config.NoopExecutor, Mail: config.Mail},
		holdSteps: config.HoldSteps,
		running:   map[string]*activeRun{},
		slots:     make(chan struct{}, config.MaxActiveRuns),
	}
	w.info.Store(&daguhav1.WorkerInfo{Id: config.ID, Labels: config.Labels, MaxActiveRuns: uint32(config.MaxActiveRuns), LogAddr: config.LogAddr,
		AutoLabels: slices.Sorted(slices.Values(config.AutoLabels))})
	return w, nil
}

// Run polls and executes until ctx ends, then waits for its runs to stop.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	w.refreshExecutors(ctx, true)
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.heartbeatLoop(ctx)
	}()
	w.logger.Info("worker started", "labels", valid.FormatLabels(w.config.Labels), "max_active_runs", w.config.MaxActiveRuns,
		"executors", strings.Join(w.info.Load().GetExecutors(), ","))
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.refreshLoop(ctx)
	}()
	if w.config.LogRetention > 0 && w.config.LogDir != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.stepLogRetentionLoop(ctx)
		}()
	}
	// Several polls at once, so a worker with free slots is not held to
	// one grant per round trip; the slots bound what runs at once.
	pollers := min(w.config.MaxActiveRuns, maxPollers)
	for range pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.pollLoop(ctx, &wg)
		}()
	}
	wg.Wait()
	w.reporter.wg.Wait()
	w.mails.Wait()
	if w.ownLogDir {
		// A temporary log directory lives as long as the worker: its logs
		// can be fetched while the worker lives, and not after.
		if err := os.RemoveAll(w.config.LogDir); err != nil {
			w.logger.Warn("remove the step log directory", "dir", w.config.LogDir, "error", err)
		}
	}
	return nil
}

// stepLogRetentionLoop sweeps the step logs at start and then every
// stepLogSweepEvery until ctx ends (a temporary log directory too: a
// worker may live for months).
func (w *Worker) stepLogRetentionLoop(ctx context.Context) {
	ticker := time.NewTicker(stepLogSweepEvery(w.config.LogRetention))
	defer ticker.Stop()
	for {
		w.sweepStepLogs()
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// refreshLoop looks at the worker's labels (with RefreshLabels) and
// executors every LabelRefreshInterval until ctx ends, and says what
// changed in the next poll and heartbeat.
func (w *Worker) refreshLoop(ctx context.Context) {
	ticker := time.NewTicker(w.config.LabelRefreshInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if w.config.RefreshLabels != nil {
			w.refreshLabels()
		}
		w.refreshExecutors(ctx, false)
	}
}

// refreshLabels is one look at the labels: new ones replace the old when
// they pass package valid's rules.
func (w *Worker) refreshLabels() {
	labels, auto := w.config.RefreshLabels()
	auto = slices.Sorted(slices.Values(auto))
	old := w.info.Load()
	if maps.Equal(labels, old.GetLabels()) && slices.Equal(auto, old.GetAutoLabels()) {
		return
	}
	if err := valid.Labels(labels); err != nil {
		w.logger.Warn("refreshed labels are not valid; keeping the old ones", "labels", valid.FormatLabels(labels), "error", err)
		return
	}
	info := proto.Clone(old).(*daguhav1.WorkerInfo)
	info.Labels, info.AutoLabels = labels, auto
	w.info.Store(info)
	w.logger.Info("labels changed", "from", valid.FormatLabels(old.GetLabels()), "to", valid.FormatLabels(labels))
}

// executorProbeTimeout bounds one look at the executors a worker can run.
const executorProbeTimeout = 5 * time.Second

// refreshExecutors is one look at the executors this worker can run
// (Executors); a change after the first look is logged, and advertised.
func (w *Worker) refreshExecutors(ctx context.Context, first bool) {
	ctx, cancel := context.WithTimeout(ctx, executorProbeTimeout)
	defer cancel()
	kinds := Executors(ctx)
	old := w.info.Load()
	if slices.Equal(kinds, old.GetExecutors()) {
		return
	}
	info := proto.Clone(old).(*daguhav1.WorkerInfo)
	info.Executors = kinds
	w.info.Store(info)
	if !first {
		w.logger.Info("executors changed", "from", strings.Join(old.GetExecutors(), ","), "to", strings.Join(kinds, ","))
	}
}

// maxPollers bounds the polls one worker keeps open at once.
const maxPollers = 4

// pollLoop takes a free slot, and every other slot free at that moment,
// polls for that many runs and executes what it gets, until ctx ends.
func (w *Worker) pollLoop(ctx context.Context, wg *sync.WaitGroup) {
	backoff := newBackoff()
	for ctx.Err() == nil {
		select {
		case w.slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		taken := 1
	more:
		for taken < valid.MaxTasksPerPoll {
			select {
			case w.slots <- struct{}{}:
				taken++
			default:
				break more
			}
		}
		sent := time.Now()
		tasks, err := w.poll(ctx, taken)
		for range taken - len(tasks) {
			<-w.slots
		}
		if err != nil && len(tasks) == 0 {
			if ctx.Err() == nil {
				w.logger.Warn("poll failed; retrying", "error", err)
				backoff.wait(ctx)
			}
			continue
		}
		if len(tasks) > 0 {
			backoff.reset()
		}
		for _, task := range tasks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-w.slots }()
				w.execute(ctx, task, sent)
			}()
		}
	}
}

// poll asks for up to n runs; a server that hands out more than asked
// (none should) has the surplus ignored, to be reclaimed when unrenewed.
func (w *Worker) poll(ctx context.Context, n int) ([]*daguhav1.Task, error) {
	callCtx, cancel := context.WithTimeout(ctx, w.config.PollWait+10*time.Second)
	defer cancel()
	resp, err := w.client.Poll(callCtx, &daguhav1.PollRequest{Worker: w.info.Load(), WaitMillis: uint32(w.config.PollWait.Milliseconds()), MaxTasks: uint32(n)})
	if err != nil {
		return nil, err
	}
	var tasks []*daguhav1.Task
	if task := resp.GetTask(); task != nil {
		tasks = append(tasks, task)
	}
	tasks = append(tasks, resp.GetMoreTasks()...)
	if len(tasks) > n {
		w.logger.Warn("the server granted more runs than asked for; ignoring the surplus", "asked", n, "granted", len(tasks))
		tasks = tasks[:n]
	}
	return tasks, nil
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
		req := &daguhav1.HeartbeatRequest{Worker: w.info.Load(), Leases: leases}
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

// execute runs a task with the engine, then reports its end. polled is
// when the worker sent the poll that brought the task.
func (w *Worker) execute(ctx context.Context, task *daguhav1.Task, polled time.Time) {
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
	// Every line of an attempt names its attempt and fencing token, so an
	// execution can be told from a later one of the same run (the chaos
	// suite's checkers read them).
	logger := w.logger.With("run", run.GetId(), "dag", run.GetDagName(), "attempt", run.GetAttempt(), "fencing_token", run.GetFencingToken())
	logger.Info("run started")
	w.keepLogTicket(logger, run, task.GetLogTicket())
	w.config.Metrics.RunStarted()
	ended := RunAbandoned
	defer func() { w.config.Metrics.RunEnded(ended) }()

	host := newWorkerHost(w, task, runCtx, polled)
	defer host.close()
	final, message, outputs := w.engine.Execute(runCtx, run, host)
	if ctx.Err() != nil {
		// The worker is stopping: leave the run to be reclaimed.
		logger.Info("worker stopping; run left for another worker")
		return
	}
	if final == daguhav1.RunStatus_RUN_STATUS_UNSPECIFIED {
		logger.Info("run abandoned: this worker no longer holds it", "reason", message)
		return
	}
	// The step ends the host still holds go with the finish.
	held, lost := host.drain()
	if lost != nil && final != daguhav1.RunStatus_RUN_STATUS_CANCELLED {
		// A held end was refused as the last step ended: the lease is gone.
		logger.Info("run abandoned: this worker no longer holds it", "reason", lost.Error())
		return
	}
	final, message, outputs = boundRunEnd(final, message, outputs)
	// Held ends too large for one message with the finish go before it.
	if chunks := stepChunks(held); len(chunks) > 1 {
		held = chunks[len(chunks)-1]
		before := slices.Concat(chunks[:len(chunks)-1]...)
		called := time.Now()
		err := w.reportSteps(context.WithoutCancel(ctx), task, before)
		host.logSteps(before, called, err)
		if err != nil {
			logger.Info("run abandoned: its last step ends were not taken", "reason", err.Error())
			return
		}
	}
	called := time.Now()
	err := w.retry(context.WithoutCancel(ctx), func(callCtx context.Context) error {
		return w.reporter.submit(callCtx, &daguhav1.ReportItem{LeaseToken: task.GetLeaseToken(), Steps: held,
			Finish: &daguhav1.RunEnd{Status: final, Error: message, Outputs: outputs}})
	})
	host.logSteps(held, called, err)
	if err != nil && len(held) > 0 && !retryable(err) {
		// The finish carried steps' ends, and the cluster refused them: as
		// when such a report is refused on its own, the lease is gone.
		logger.Info("run abandoned: this worker no longer holds it", "reason", err.Error())
		return
	}
	if err != nil {
		logger.Warn("run end not recorded", "status", final.String(), "called_at_unix_nano", called.UnixNano(), "error", err)
		return
	}
	ended = final.Word()
	// The run's end as the cluster accepted it, between called_at and the
	// line's own time.
	logger.Info("run finished", "status", final.String(), "called_at_unix_nano", called.UnixNano())
	host.mailRunEnd(logger)
}

// LogDir is where the worker keeps the full logs of the steps it ran.
func (w *Worker) LogDir() string { return w.engine.LogDir }

// LogServer serves the worker's step logs (the caller registers it on a
// gRPC server of its own).
func (w *Worker) LogServer() *LogServer { return NewLogServer(w.engine.LogDir) }

func (h *workerHost) StartChild(ctx context.Context, stepName string, retry uint32, params string) (string, error) {
	var childID string
	err := h.w.retry(ctx, func(callCtx context.Context) error {
		resp, err := h.w.client.EnqueueChild(callCtx, &daguhav1.EnqueueChildRequest{LeaseToken: h.task.GetLeaseToken(), StepName: stepName, Retry: retry, Params: params})
		childID = resp.GetChildRunId()
		return err
	})
	if err == nil && childID == "" {
		err = errors.New("the cluster returned no child run id")
	}
	return childID, err
}

// watchWait is how long one WatchRun call waits for a change.
const watchWait = 10 * time.Second

// WaitChild long-polls the child's record until it has ended. Server
// failures are retried (without ReportTimeout's bound: the child may run
// for long); a refusal ends the wait.
func (h *workerHost) WaitChild(ctx context.Context, childRunID string) (*daguhav1.Run, error) {
	var last uint64
	backoff := newBackoff()
	for {
		callCtx, cancel := context.WithTimeout(ctx, watchWait+10*time.Second)
		resp, err := h.w.client.WatchRun(callCtx, &daguhav1.WatchRunRequest{RunId: childRunID, MinModifyIndex: last, WaitMillis: uint32(watchWait.Milliseconds()),
			LeaseToken: h.task.GetLeaseToken()})
		cancel()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if err != nil {
			switch status.Code(err) {
			case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted:
				backoff.wait(ctx)
				continue
			}
			return nil, err
		}
		backoff.reset()
		run := resp.GetRun()
		switch run.GetStatus() {
		case daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, daguhav1.RunStatus_RUN_STATUS_FAILED, daguhav1.RunStatus_RUN_STATUS_CANCELLED:
			return run, nil
		}
		last = max(last, run.GetModifyIndex())
	}
}

// reportSteps sends step states of one run as one item of the worker's
// next report, retried through server failures; states too large for one
// message together go as several items, one after the other, in order.
func (w *Worker) reportSteps(ctx context.Context, task *daguhav1.Task, steps []*daguhav1.StepState) error {
	for _, chunk := range stepChunks(steps) {
		item := &daguhav1.ReportItem{LeaseToken: task.GetLeaseToken(), Steps: chunk}
		err := w.retry(ctx, func(callCtx context.Context) error {
			return w.reporter.submit(callCtx, item)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// stepChunkBytes bounds the step states of one report item together.
const stepChunkBytes = 1 << 20

// stepChunks splits step states, in order, into runs of at most
// stepChunkBytes (a state alone is at most an output tail, an error and
// names: far less). No states make no chunk but one empty one.
func stepChunks(steps []*daguhav1.StepState) [][]*daguhav1.StepState {
	chunks := [][]*daguhav1.StepState{nil}
	size := 0
	for _, step := range steps {
		n := proto.Size(step)
		last := len(chunks) - 1
		if len(chunks[last]) > 0 && size+n > stepChunkBytes {
			chunks = append(chunks, nil)
			last, size = last+1, 0
		}
		chunks[last] = append(chunks[last], step)
		size += n
	}
	return chunks
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
		if !retryable(err) {
			return err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		backoff.wait(ctx)
	}
}

// retryable tells a server failure, worth trying again, from a refusal.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted:
		return true
	}
	return false
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
