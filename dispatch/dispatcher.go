package dispatch

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/dispatch/valid"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// Defaults for the dispatcher.
const (
	DefaultLeaseTTL = 10 * time.Second
	// maxPollWait bounds a long poll, so a worker hears from the cluster
	// (and notices a dead server) at least this often.
	maxPollWait = 30 * time.Second
	// pendingScanLimit bounds how many reserved runs a poll skips in one
	// selector's queue before looking elsewhere.
	pendingScanLimit = 64
)

var (
	// ErrNotLeader: this server is not the established leader; retry.
	ErrNotLeader = errors.New("dispatcher is not running on this server (not the established leader)")
)

// StaleLeaseError is a report from a worker that no longer holds the run.
type StaleLeaseError struct{ Reason string }

func (e *StaleLeaseError) Error() string { return e.Reason }

// NotFoundError is a request for something that does not exist.
type NotFoundError struct{ Reason string }

func (e *NotFoundError) Error() string { return e.Reason }

// ForbiddenError is a worker acting on what is not its own: a lease
// granted to another worker, a run it does not hold.
type ForbiddenError struct{ Reason string }

func (e *ForbiddenError) Error() string { return e.Reason }

type workerKey struct{}

// WithWorker marks a call as made by the worker id, proven (by its
// certificate): leases granted to other workers are refused to it. A
// call without it proves nothing but its lease tokens.
func WithWorker(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, workerKey{}, id)
}

func workerOf(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(workerKey{}).(string)
	return id, ok
}

// checkHolder refuses (and logs) a lease that was granted to another
// worker than the proven caller.
func (d *Dispatcher) checkHolder(ctx context.Context, claims LeaseClaims) error {
	if id, ok := workerOf(ctx); ok && claims.WorkerID != id {
		d.logger.Warn("a worker used another worker's lease; refused", "worker", id, "lease_worker", claims.WorkerID, "run", claims.RunID)
		return &ForbiddenError{Reason: fmt.Sprintf("the lease on run %q was granted to worker %q, not to the calling worker %q", claims.RunID, claims.WorkerID, id)}
	}
	return nil
}

// InvalidRequestError is a request that names bad input.
type InvalidRequestError struct{ Reason string }

func (e *InvalidRequestError) Error() string { return e.Reason }

// Backend is what the dispatcher needs of the cluster: writes through Raft
// and the current state.
type Backend interface {
	Apply(ctx context.Context, t fsm.MessageType, body proto.Message) (proto.Message, uint64, error)
	State() *store.StateStore
}

// Config tunes the dispatcher.
type Config struct {
	// LeaseTTL is how long a lease lives without a heartbeat renewing it.
	LeaseTTL time.Duration
	// SigningKeys sign lease tokens (the first) and verify them (all).
	// Empty: the cluster's own key, chosen once by the first leader.
	SigningKeys [][]byte
	Now         func() time.Time
	Logger      *slog.Logger
	// MaxBatch and InFlight shape the group commit of grants and reports.
	MaxBatch int
	InFlight int
	// Heartbeats is this server's table of worker heartbeats (shared with
	// the API, which reports health from it).
	Heartbeats *Heartbeats
	// Thresholds turn heartbeat age into health; past Offline the leader
	// declares the worker offline and takes its runs back.
	Thresholds Thresholds
	// Retention is how long an offline worker stays listed (24 h).
	Retention time.Duration
	// RunRetention is how long an ended run stays in the state before the
	// leader removes it with its whole hierarchy; 0 keeps runs forever.
	RunRetention time.Duration
	// ScheduleZone is the zone of the schedules that name none with
	// CRON_TZ= (Dagu's tz setting); nil: the server's local zone. Every
	// server should have the same, as any of them may lead.
	ScheduleZone *time.Location
	// PruneInterval is how often the leader looks for runs past the run
	// retention (default: a tenth of it, between a second and a minute).
	PruneInterval time.Duration
	// Queues are Dagu's queues setting: how many runs of a queue may run
	// at once, by queue name (see QueueLimit). Every server should have
	// the same, as any of them may lead.
	Queues map[string]int
	// Metrics, when set, counts grants, ends, reclaims and refusals.
	Metrics Observer
}

// DefaultRetention is how long offline workers stay listed.
const DefaultRetention = 24 * time.Hour

// Dispatcher is the leader's side of dispatch. RunLeader is its leader
// duty; the RPC methods answer only while it runs.
type Dispatcher struct {
	backend Backend
	config  Config
	logger  *slog.Logger

	mu     sync.Mutex
	active *leaderState
}

// New returns a dispatcher; register RunLeader as a leader duty.
func New(backend Backend, config Config) *Dispatcher {
	if config.LeaseTTL <= 0 {
		config.LeaseTTL = DefaultLeaseTTL
	}
	if config.Now == nil {
		config.Now = time.Now
	}
	if config.Metrics == nil {
		config.Metrics = noObserver{}
	}
	if config.Logger == nil {
		config.Logger = slog.Default()
	}
	if config.MaxBatch <= 0 {
		config.MaxBatch = 256
	}
	if config.InFlight <= 0 {
		// Two entries of a kind on their way at once: what arrives
		// meanwhile waits for the next, so a busy leader writes fewer,
		// larger entries (four wrote 1.7 times as many Raft entries per
		// run, at a fifth more CPU per run; docs/performance.md, change
		// 20), and one slow entry still leaves another going.
		config.InFlight = 2
	}
	if config.Heartbeats == nil {
		config.Heartbeats = NewHeartbeats(config.Now)
	}
	if config.Thresholds == (Thresholds{}) {
		config.Thresholds = DefaultThresholds
	}
	if config.Retention <= 0 {
		config.Retention = DefaultRetention
	}
	return &Dispatcher{backend: backend, config: config, logger: config.Logger.With("component", "dispatch")}
}

// leaderState exists while this server leads; its ctx ends with leadership.
type leaderState struct {
	d      *Dispatcher
	ctx    context.Context
	signer *Signer

	grants   *batcher[*daguhav1.Grant, *daguhav1.GrantOutcome]
	reports  *batcher[*daguhav1.StepReport, *daguhav1.RunOutcome]
	finishes *batcher[*daguhav1.Finish, *daguhav1.RunOutcome]

	// registerMu makes concurrent first calls of a worker (poll and
	// heartbeat) write its registration once.
	registerMu sync.Mutex

	mu               sync.Mutex
	deadlines        map[string]lease
	reserved         map[string]bool
	reservedByWorker map[string]int
	reservedByQueue  map[string]int
}

type lease struct {
	fencingToken uint64
	deadline     time.Time
	// handedAt is when the poll that took this lease returned it, until
	// the worker's first report of the attempt arrives (the start_report
	// stage); zero after it, and for leases this leader did not grant.
	handedAt time.Time
}

func (d *Dispatcher) leader() (*leaderState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.active == nil {
		return nil, ErrNotLeader
	}
	return d.active, nil
}

// Duty is one named piece of the leader's work. Each runs from the moment
// its server is an established leader until ctx ends.
type Duty struct {
	Name string
	Run  func(ctx context.Context)
}

// LeaderDuties is the list of what the leader's side of dispatch runs,
// each registered as its own leader duty (ops/agent registers them with
// the cluster, which logs each start and stop by name):
//   - leases: serves polls, reports and heartbeats through the grant,
//     report and finish batchers, keeps lease deadlines and reclaims
//     expired leases, declares silent workers offline (one duty: these
//     share the term's lease table and signer);
//   - schedule: fires cron slots;
//   - prune: removes ended runs past the run retention (when one is set).
func (d *Dispatcher) LeaderDuties() []Duty {
	duties := []Duty{
		{Name: "leases", Run: d.runLeases},
		{Name: "schedule", Run: d.runScheduler},
	}
	if d.config.RunRetention > 0 {
		duties = append(duties, Duty{Name: "prune", Run: d.runPruner})
	}
	return duties
}

// RunLeader runs every duty of LeaderDuties side by side until ctx ends:
// one leader duty for embedders and tests that want the whole.
func (d *Dispatcher) RunLeader(ctx context.Context) {
	var wg sync.WaitGroup
	for _, duty := range d.LeaderDuties() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			duty.Run(ctx)
		}()
	}
	wg.Wait()
}

func (d *Dispatcher) runScheduler(ctx context.Context) {
	s := newScheduler(d.backend, d.config.Now, d.logger)
	s.zone = d.config.ScheduleZone
	s.metrics = d.config.Metrics
	s.run(ctx)
}

func (d *Dispatcher) runPruner(ctx context.Context) {
	p := &pruner{backend: d.backend, retention: d.config.RunRetention, interval: d.config.PruneInterval, now: d.config.Now, d: d}
	p.run(ctx)
}

// runLeases serves polls, renews and reclaims leases until ctx ends.
func (d *Dispatcher) runLeases(ctx context.Context) {
	signer, err := d.resolveSigner(ctx)
	if err != nil {
		d.logger.Error("dispatch cannot start: no signing key", "error", err)
		return
	}
	st := &leaderState{
		d: d, ctx: ctx, signer: signer,
		deadlines:        map[string]lease{},
		reserved:         map[string]bool{},
		reservedByWorker: map[string]int{},
		reservedByQueue:  map[string]int{},
	}
	st.grants = newBatcher(d.config.MaxBatch, d.config.InFlight, st.applyGrants)
	st.reports = newBatcher(d.config.MaxBatch, d.config.InFlight, st.applyReports)
	st.finishes = newBatcher(d.config.MaxBatch, d.config.InFlight, st.applyFinishes)

	// Leases are leader memory: a new leader gives every running run a
	// full lease, so a failover never takes runs from live workers.
	now := d.config.Now()
	if err := d.backend.State().EachRunning("", func(run *daguhav1.Run) bool {
		st.deadlines[run.GetId()] = lease{fencingToken: run.GetFencingToken(), deadline: now.Add(d.config.LeaseTTL)}
		return true
	}); err != nil {
		d.logger.Error("dispatch: read running runs", "error", err)
		return
	}

	var wg sync.WaitGroup
	for _, b := range []func(context.Context){st.grants.run, st.reports.run, st.finishes.run} {
		wg.Add(1)
		go func(run func(context.Context)) {
			defer wg.Done()
			run(ctx)
		}(b)
	}
	// Counted before the state is published: from then on polls change
	// deadlines under st.mu.
	running := len(st.deadlines)
	d.mu.Lock()
	d.active = st
	d.mu.Unlock()
	zone := "Local"
	if d.config.ScheduleZone != nil {
		zone = d.config.ScheduleZone.String()
	}
	d.logger.Info("dispatch started", "running_runs", running, "lease_ttl", d.config.LeaseTTL, "schedule_zone", zone)

	wg.Add(1)
	go func() {
		defer wg.Done()
		st.livenessLoop()
	}()
	st.reclaimLoop()

	d.mu.Lock()
	d.active = nil
	d.mu.Unlock()
	wg.Wait()
	d.logger.Info("dispatch stopped")
}

// resolveSigner uses the configured keys, or the cluster's own key, which
// the first leader chooses and writes through Raft so every later leader
// signs and verifies with the same one.
func (d *Dispatcher) resolveSigner(ctx context.Context) (*Signer, error) {
	if len(d.config.SigningKeys) > 0 {
		return NewSigner(d.config.SigningKeys...)
	}
	if meta := d.backend.State().ClusterMeta(); meta != nil && len(meta.GetSigningKey()) > 0 {
		return NewSigner(meta.GetSigningKey())
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	result, _, err := d.backend.Apply(ctx, fsm.SetClusterMetaType, &daguhav1.SetClusterMetaCommand{Meta: &daguhav1.ClusterMeta{SigningKey: key}})
	if err != nil {
		return nil, err
	}
	return NewSigner(result.(*daguhav1.SetClusterMetaResult).GetMeta().GetSigningKey())
}

func (st *leaderState) applyGrants(ctx context.Context, grants []*daguhav1.Grant) ([]*daguhav1.GrantOutcome, error) {
	result, _, err := st.d.backend.Apply(ctx, fsm.GrantLeasesType, &daguhav1.GrantLeasesCommand{Grants: grants})
	if err != nil {
		return nil, err
	}
	return result.(*daguhav1.GrantLeasesResult).GetOutcomes(), nil
}

func (st *leaderState) applyReports(ctx context.Context, reports []*daguhav1.StepReport) ([]*daguhav1.RunOutcome, error) {
	result, _, err := st.d.backend.Apply(ctx, fsm.ReportStepsType, &daguhav1.ReportStepsCommand{Reports: reports})
	if err != nil {
		return nil, err
	}
	return result.(*daguhav1.ReportStepsResult).GetOutcomes(), nil
}

func (st *leaderState) applyFinishes(ctx context.Context, finishes []*daguhav1.Finish) ([]*daguhav1.RunOutcome, error) {
	result, _, err := st.d.backend.Apply(ctx, fsm.FinishRunsType, &daguhav1.FinishRunsCommand{Finishes: finishes})
	if err != nil {
		return nil, err
	}
	return result.(*daguhav1.FinishRunsResult).GetOutcomes(), nil
}

// adoptUnknownLeases gives a full lease to every running run this leader
// has no deadline for (its state was replaced by a snapshot restore, or a
// grant reached the state another way), and forgets deadlines of runs
// that are no longer running, so every lease is watched exactly once.
func (st *leaderState) adoptUnknownLeases(now time.Time) {
	running := map[string]uint64{}
	_ = st.d.backend.State().EachRunning("", func(run *daguhav1.Run) bool {
		running[run.GetId()] = run.GetFencingToken()
		return true
	})
	st.mu.Lock()
	defer st.mu.Unlock()
	for id, token := range running {
		if l, ok := st.deadlines[id]; !ok || l.fencingToken != token {
			st.deadlines[id] = lease{fencingToken: token, deadline: now.Add(st.d.config.LeaseTTL)}
		}
	}
	for id := range st.deadlines {
		if _, ok := running[id]; !ok {
			delete(st.deadlines, id)
		}
	}
}

// reclaimLoop takes back the runs whose lease lapsed, until leadership ends.
func (st *leaderState) reclaimLoop() {
	interval := max(st.d.config.LeaseTTL/5, 50*time.Millisecond)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-st.ctx.Done():
			return
		case <-ticker.C:
			st.reclaimExpired()
		}
	}
}

func (st *leaderState) reclaimExpired() {
	now := st.d.config.Now()
	st.adoptUnknownLeases(now)
	var reclaims []*daguhav1.Reclaim
	st.mu.Lock()
	for runID, l := range st.deadlines {
		if now.After(l.deadline) {
			reclaims = append(reclaims, &daguhav1.Reclaim{
				RunId: runID, FencingToken: l.fencingToken, NowUnixNano: now.UnixNano(),
				Reason: fmt.Sprintf("lease not renewed for %s", st.d.config.LeaseTTL),
			})
		}
	}
	st.mu.Unlock()
	if len(reclaims) == 0 {
		return
	}
	result, _, err := st.d.backend.Apply(st.ctx, fsm.ReclaimRunsType, &daguhav1.ReclaimRunsCommand{Reclaims: reclaims})
	if err != nil {
		st.d.logger.Warn("reclaim lapsed leases", "runs", len(reclaims), "error", err)
		return
	}
	st.d.config.Metrics.LeasesReclaimed(ReclaimLeaseExpired, countApplied(result.(*daguhav1.ReclaimRunsResult).GetOutcomes()))
	st.mu.Lock()
	defer st.mu.Unlock()
	for i, outcome := range result.(*daguhav1.ReclaimRunsResult).GetOutcomes() {
		// Applied or not (finished meanwhile), this lease is over.
		if l, ok := st.deadlines[outcome.GetRunId()]; ok && l.fencingToken == reclaims[i].GetFencingToken() {
			delete(st.deadlines, outcome.GetRunId())
		}
		if outcome.GetApplied() {
			st.d.logger.Info("reclaimed run", "run", outcome.GetRunId(), "reason", reclaims[i].GetReason())
		}
		st.d.config.Metrics.RunsCancelledAtOnce(outcome.GetEndedCancelled())
	}
}

// livenessLoop declares workers offline when their heartbeats stop for
// longer than the offline threshold (taking back their runs in the same
// Raft command), and forgets offline workers after the retention.
func (st *leaderState) livenessLoop() {
	d := st.d
	// A worker this server has never heard from (a cluster restarted
	// whole, say) gets a full offline period from now, not zero.
	_ = d.backend.State().EachWorker(func(w *daguhav1.Worker) bool {
		if _, ok := d.config.Heartbeats.Last(w.GetId()); !ok && !w.GetOffline() {
			d.config.Heartbeats.Seen(w.GetId())
		}
		return true
	})
	interval := max(d.config.Thresholds.Warning/10, 50*time.Millisecond)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-st.ctx.Done():
			return
		case <-ticker.C:
		}
		now := d.config.Now()
		var offline, expired []string
		_ = d.backend.State().EachWorker(func(w *daguhav1.Worker) bool {
			switch {
			case w.GetOffline() && now.Sub(time.Unix(0, w.GetOfflineAtUnixNano())) > d.config.Retention:
				expired = append(expired, w.GetId())
			case !w.GetOffline():
				if health, _ := d.config.Heartbeats.Health(w.GetId(), d.config.Thresholds); health == Offline {
					offline = append(offline, w.GetId())
				}
			}
			return true
		})
		if len(offline) > 0 {
			result, _, err := d.backend.Apply(st.ctx, fsm.MarkWorkersOfflineType, &daguhav1.MarkWorkersOfflineCommand{
				WorkerIds: offline, NowUnixNano: now.UnixNano(),
				Reason: fmt.Sprintf("no heartbeat for more than %s", d.config.Thresholds.Offline),
			})
			if err != nil {
				d.logger.Warn("declare workers offline", "workers", offline, "error", err)
			} else {
				reclaimed := result.(*daguhav1.MarkWorkersOfflineResult).GetReclaimedRunIds()
				d.config.Metrics.LeasesReclaimed(ReclaimWorkerOffline, len(reclaimed))
				d.config.Metrics.RunsCancelledAtOnce(result.(*daguhav1.MarkWorkersOfflineResult).GetEndedCancelled())
				st.mu.Lock()
				for _, id := range reclaimed {
					delete(st.deadlines, id)
				}
				st.mu.Unlock()
				d.logger.Warn("workers declared offline", "workers", offline, "runs_taken_back", len(reclaimed))
			}
		}
		if len(expired) > 0 {
			if _, _, err := d.backend.Apply(st.ctx, fsm.RemoveWorkersType, &daguhav1.RemoveWorkersCommand{WorkerIds: expired}); err != nil {
				d.logger.Warn("remove expired workers", "workers", expired, "error", err)
				continue
			}
			for _, id := range expired {
				d.config.Heartbeats.Forget(id)
			}
		}
	}
}

// Heartbeats is the table health is computed from.
func (d *Dispatcher) Heartbeats() *Heartbeats { return d.config.Heartbeats }

// Thresholds are the health thresholds in force.
func (d *Dispatcher) Thresholds() Thresholds { return d.config.Thresholds }

func validateWorker(info *daguhav1.WorkerInfo) error {
	if info.GetId() == "" {
		return &InvalidRequestError{Reason: "worker id is empty"}
	}
	if info.GetMaxActiveRuns() == 0 {
		return &InvalidRequestError{Reason: fmt.Sprintf("worker %q: maxActiveRuns must be at least 1", info.GetId())}
	}
	return checkWorkerInfo(info)
}

// ensureRegistered records the worker and its labels in the replicated
// registry when they are new or changed, or when the worker comes back
// after it was declared offline.
func (st *leaderState) ensureRegistered(ctx context.Context, info *daguhav1.WorkerInfo) error {
	current := func() bool {
		w, _ := st.d.backend.State().Worker(info.GetId())
		return w != nil && !w.GetOffline() && w.GetMaxActiveRuns() == info.GetMaxActiveRuns() &&
			valid.FormatLabels(w.GetLabels()) == valid.FormatLabels(info.GetLabels()) && w.GetLogAddr() == info.GetLogAddr() &&
			slices.Equal(w.GetExecutors(), info.GetExecutors()) && slices.Equal(w.GetAutoLabels(), info.GetAutoLabels())
	}
	if current() {
		return nil
	}
	st.registerMu.Lock()
	defer st.registerMu.Unlock()
	if current() {
		return nil
	}
	_, _, err := st.d.backend.Apply(ctx, fsm.RegisterWorkersType, &daguhav1.RegisterWorkersCommand{Workers: []*daguhav1.Worker{{
		Id: info.GetId(), Labels: info.GetLabels(), MaxActiveRuns: info.GetMaxActiveRuns(),
		RegisteredAtUnixNano: st.d.config.Now().UnixNano(), LogAddr: info.GetLogAddr(),
		Executors: info.GetExecutors(), AutoLabels: info.GetAutoLabels(),
	}}})
	if err != nil {
		return fmt.Errorf("register worker %q: %w", info.GetId(), err)
	}
	st.d.logger.Info("worker registered", "worker", info.GetId(), "labels", valid.FormatLabels(info.GetLabels()), "max_active_runs", info.GetMaxActiveRuns(),
		"executors", strings.Join(info.GetExecutors(), ","))
	return nil
}

// workerCall is what every call from a worker does first: check the
// worker's description, find the leader's state, note that the worker
// was heard from, and register it when it is new, changed or returning.
func (d *Dispatcher) workerCall(ctx context.Context, info *daguhav1.WorkerInfo) (*leaderState, error) {
	if err := validateWorker(info); err != nil {
		return nil, err
	}
	st, err := d.leader()
	if err != nil {
		return nil, err
	}
	d.config.Heartbeats.Seen(info.GetId())
	if err := st.ensureRegistered(ctx, info); err != nil {
		return nil, err
	}
	return st, nil
}

// Poll waits up to wait for a run the worker can take and grants it.
func (d *Dispatcher) Poll(ctx context.Context, info *daguhav1.WorkerInfo, wait time.Duration) (*daguhav1.Task, error) {
	tasks, err := d.PollMany(ctx, info, wait, 1)
	if len(tasks) == 0 {
		return nil, err
	}
	return tasks[0], err
}

// PollMany waits up to wait for runs the worker can take and grants up to
// max of them at once: matched together, committed in one Raft entry by
// the grant batcher. It returns as soon as at least one is granted.
func (d *Dispatcher) PollMany(ctx context.Context, info *daguhav1.WorkerInfo, wait time.Duration, limit int) ([]*daguhav1.Task, error) {
	arrived := d.config.Now()
	st, err := d.workerCall(ctx, info)
	if err != nil {
		return nil, err
	}
	limit = min(valid.MaxTasksPerPoll, max(limit, 1))
	wait = min(max(wait, 0), maxPollWait)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	// A worker may poll several times at once: matching counts the runs
	// reserved for its polls in flight against its maxActiveRuns, and the
	// grant itself is refused in the state machine past that limit.
	for {
		tasks, watch, err := st.tryGrant(ctx, info, limit, arrived)
		if err != nil || len(tasks) > 0 {
			return tasks, err
		}
		select {
		case <-watch:
		case <-timer.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-st.ctx.Done():
			return nil, ErrNotLeader
		}
	}
}

// capacityRecheck is how soon a worker at its maxActiveRuns looks again.
const capacityRecheck = 200 * time.Millisecond

// tryGrant matches up to max runs and grants them. With nothing to grant
// it returns a channel that is closed when it is worth looking again.
// arrived is when the poll reached the leader.
func (st *leaderState) tryGrant(ctx context.Context, info *daguhav1.WorkerInfo, limit int, arrived time.Time) ([]*daguhav1.Task, <-chan struct{}, error) {
	for {
		state := st.d.backend.State()
		selectors, watch, err := state.PendingSelectors()
		if err != nil {
			return nil, nil, err
		}
		var (
			runs          []*daguhav1.Run
			full, limited bool
			size          int
		)
		for len(runs) < limit && size < grantBudgetBytes {
			run, f, l := st.match(state, selectors, info, st.d.config.Now())
			full, limited = full || f, limited || l
			if run == nil {
				break
			}
			runs = append(runs, run)
			size += proto.Size(run)
		}
		if len(runs) == 0 {
			if full || limited {
				// At its maxActiveRuns the worker frees a slot without
				// changing a pending queue; runs waiting for their DAG's
				// maxActiveRuns, or for the wait of their retry policy,
				// likewise: look again soon.
				return nil, afterChan(capacityRecheck), nil
			}
			return nil, watch, nil
		}
		tasks, refused, err := st.grant(ctx, info, runs, arrived)
		if err != nil || len(tasks) > 0 || refused == 0 {
			return tasks, nil, err
		}
		// Every grant was refused (the run moved on meanwhile): match again.
	}
}

// grant commits the grants of the matched runs (one Raft entry, as the
// batcher gathers them) and signs a lease token for each granted one.
// arrived is when the poll asking for them reached the leader: each task
// says how long after it its lease started (Task.poll_held_millis).
func (st *leaderState) grant(ctx context.Context, info *daguhav1.WorkerInfo, runs []*daguhav1.Run, arrived time.Time) (tasks []*daguhav1.Task, refused int, err error) {
	now := st.d.config.Now().UnixNano()
	grants := make([]*daguhav1.Grant, len(runs))
	for i, run := range runs {
		grants[i] = &daguhav1.Grant{
			RunId: run.GetId(), WorkerId: info.GetId(), Attempt: run.GetAttempt() + 1,
			MaxActiveRuns: info.GetMaxActiveRuns(), NowUnixNano: now,
		}
	}
	outcomes, err := st.grants.submitAll(ctx, st.ctx.Done(), grants)
	committed := st.d.config.Now()
	for _, run := range runs {
		st.unreserve(run, info.GetId())
	}
	if err != nil {
		if errors.Is(err, errBatcherStopped) {
			err = ErrNotLeader
		}
		// Grants whose fate is unknown are not handed out: if they did
		// commit, their leases expire unrenewed and the runs are reclaimed.
		return nil, 0, err
	}
	metrics := st.d.config.Metrics
	grantCommit := committed.Sub(time.Unix(0, now))
	fencing := make([]uint64, 0, len(runs))
	for i, run := range runs {
		outcome := outcomes[i]
		if !outcome.GetGranted() {
			st.d.logger.Debug("grant refused; matching again", "run", run.GetId(), "reason", outcome.GetRefused())
			refused++
			continue
		}
		attempt := run.GetAttempt() + 1
		token, serr := st.signer.Sign(LeaseClaims{
			RunID: run.GetId(), Attempt: attempt, WorkerID: info.GetId(), FencingToken: outcome.GetFencingToken(),
		})
		if serr != nil {
			return nil, 0, serr
		}
		fencing = append(fencing, outcome.GetFencingToken())
		metrics.LeaseGranted(queueWait(outcome.GetRun()), attempt == 1)
		metrics.ObserveStage(StageGrantCommit, grantCommit)
		tasks = append(tasks, &daguhav1.Task{Run: outcome.GetRun(), LeaseToken: token, LeaseTtlMillis: uint32(st.d.config.LeaseTTL.Milliseconds()),
			TakesStepBatches: true, LogTicket: st.signer.LogTicket(run.GetId(), attempt, info.GetId())})
	}
	// The leases start now, as the poll returns its tasks. The poll was
	// held this long before: the worker counts its lease from when it sent
	// the poll plus this (rounded down, so never later than the lease's
	// real start).
	handed := st.d.config.Now()
	held := uint32(min(max(handed.Sub(arrived), 0)/time.Millisecond, math.MaxUint32))
	st.mu.Lock()
	for i, task := range tasks {
		task.PollHeldMillis = held
		st.deadlines[task.GetRun().GetId()] = lease{fencingToken: fencing[i], deadline: handed.Add(st.d.config.LeaseTTL), handedAt: handed}
	}
	st.mu.Unlock()
	for range tasks {
		metrics.ObserveStage(StagePollReturn, handed.Sub(committed))
	}
	return tasks, refused, nil
}

func afterChan(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	time.AfterFunc(d, func() { close(ch) })
	return ch
}

// match picks the oldest queued run the worker can take among the heads of
// the selector queues it satisfies, and reserves it. full is true when the
// worker holds its maxActiveRuns already.
func (st *leaderState) match(state *store.StateStore, selectors []*store.Selector, info *daguhav1.WorkerInfo, now time.Time) (run *daguhav1.Run, full, limited bool) {
	held := 0
	_ = state.EachRunning(info.GetId(), func(*daguhav1.Run) bool { held++; return true })
	st.mu.Lock()
	defer st.mu.Unlock()
	if held+st.reservedByWorker[info.GetId()] >= int(info.GetMaxActiveRuns()) {
		return nil, true, false
	}
	var queues map[string]int
	if st.d != nil {
		queues = st.d.config.Queues
	}
	// atLimit says whether a run's queue already runs its limit,
	// counting the runs other polls are granting now.
	atLimit := func(run *daguhav1.Run) bool {
		limit := QueueLimit(queues, run)
		if limit == 0 {
			return false
		}
		queue := store.QueueOf(run)
		running, err := state.RunningInQueue(queue)
		return err != nil || running+st.reservedByQueue[queue] >= limit
	}
	var best *daguhav1.Run
	for _, selector := range selectors {
		if !Matches(selector.Labels, info.GetLabels()) {
			continue
		}
		scanned := 0
		_ = state.EachPending(selector.Key, func(candidate *daguhav1.Run) bool {
			scanned++
			if st.reserved[candidate.GetId()] {
				return scanned < pendingScanLimit
			}
			if atLimit(candidate) {
				limited = true
				return scanned < pendingScanLimit
			}
			// A step needs an executor this worker does not run.
			if !HasExecutors(info.GetExecutors(), candidate.GetDag()) {
				return scanned < pendingScanLimit
			}
			// Queued again by its DAG's retry policy, and not due yet.
			if candidate.GetRetryAfterUnixNano() > now.UnixNano() {
				limited = true
				return scanned < pendingScanLimit
			}
			if best == nil || candidate.GetCreateIndex() < best.GetCreateIndex() {
				best = candidate
			}
			return false
		})
	}
	if best != nil {
		st.reserved[best.GetId()] = true
		st.reservedByWorker[info.GetId()]++
		st.reservedByQueue[store.QueueOf(best)]++
	}
	return best, false, limited
}

func (st *leaderState) unreserve(run *daguhav1.Run, workerID string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.reserved, run.GetId())
	if st.reservedByWorker[workerID]--; st.reservedByWorker[workerID] <= 0 {
		delete(st.reservedByWorker, workerID)
	}
	queue := store.QueueOf(run)
	if st.reservedByQueue[queue]--; st.reservedByQueue[queue] <= 0 {
		delete(st.reservedByQueue, queue)
	}
}

// Heartbeat renews the leases the worker still holds and says which runs
// it must stop.
func (d *Dispatcher) Heartbeat(ctx context.Context, info *daguhav1.WorkerInfo, held []*daguhav1.HeldLease) (*daguhav1.HeartbeatResponse, error) {
	st, err := d.workerCall(ctx, info)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	state := d.backend.State()
	now := d.config.Now()
	resp := &daguhav1.HeartbeatResponse{}
	defer func() {
		d.config.Metrics.ReportRefused(RefusedHeartbeat, len(resp.LostRunIds))
		d.config.Metrics.ObserveHeartbeat(time.Since(began))
	}()
	for _, h := range held {
		claims, err := st.signer.Verify(h.GetLeaseToken())
		if err != nil || claims.RunID != h.GetRunId() || claims.WorkerID != info.GetId() {
			resp.LostRunIds = append(resp.LostRunIds, h.GetRunId())
			continue
		}
		run, err := state.Run(claims.RunID)
		if err != nil {
			return nil, err
		}
		current := run != nil && run.GetStatus() == daguhav1.RunStatus_RUN_STATUS_RUNNING && run.GetFencingToken() == claims.FencingToken
		if run == nil || !current && store.FencingChecked {
			resp.LostRunIds = append(resp.LostRunIds, h.GetRunId())
			continue
		}
		st.mu.Lock()
		renewed := lease{fencingToken: claims.FencingToken, deadline: now.Add(d.config.LeaseTTL)}
		if l, ok := st.deadlines[run.GetId()]; ok && l.fencingToken == claims.FencingToken {
			renewed.handedAt = l.handedAt
		}
		st.deadlines[run.GetId()] = renewed
		st.mu.Unlock()
		if run.GetCancelRequested() {
			resp.CancelRunIds = append(resp.CancelRunIds, run.GetId())
		}
	}
	return resp, nil
}

// VerifyLease checks a lease token on any server, leader or not: with the
// leader's signer, or one made from the configured keys or the cluster's
// own key in the state.
func (d *Dispatcher) VerifyLease(token string) (LeaseClaims, error) {
	if st, err := d.leader(); err == nil {
		return st.verify(token)
	}
	keys := d.config.SigningKeys
	if len(keys) == 0 {
		if meta := d.backend.State().ClusterMeta(); meta != nil && len(meta.GetSigningKey()) > 0 {
			keys = [][]byte{meta.GetSigningKey()}
		}
	}
	if len(keys) == 0 {
		// No key yet: no token can have been signed; the worker retries.
		return LeaseClaims{}, ErrNotLeader
	}
	signer, err := NewSigner(keys...)
	if err != nil {
		return LeaseClaims{}, err
	}
	return signer.Verify(token)
}

// verify checks a lease token and returns its claims.
func (st *leaderState) verify(token string) (LeaseClaims, error) {
	claims, err := st.signer.Verify(token)
	if err != nil {
		return LeaseClaims{}, err
	}
	return claims, nil
}

func refusal(outcome *daguhav1.RunOutcome) error {
	if outcome.GetApplied() {
		return nil
	}
	return &StaleLeaseError{Reason: outcome.GetRefused()}
}

// ReportStep records a step's state under the lease in token.
func (d *Dispatcher) ReportStep(ctx context.Context, token string, step *daguhav1.StepState) error {
	return d.ReportSteps(ctx, token, []*daguhav1.StepState{step})
}

// ReportSteps records step states, in order, under the lease in token, in
// one Raft entry: all taken, or all refused.
func (d *Dispatcher) ReportSteps(ctx context.Context, token string, steps []*daguhav1.StepState) error {
	return d.Report(ctx, []*daguhav1.ReportItem{{LeaseToken: token, Steps: steps}})[0]
}

func validateSteps(steps []*daguhav1.StepState) error {
	for _, step := range steps {
		if step.GetName() == "" {
			return &InvalidRequestError{Reason: "step report without a step name"}
		}
	}
	return nil
}

// FinishRun records the end of the run under the lease in token, with the
// step states not reported yet (recorded first, in the same transaction).
func (d *Dispatcher) FinishRun(ctx context.Context, token string, status daguhav1.RunStatus, message string, outputs map[string]string, steps []*daguhav1.StepState) error {
	return d.Report(ctx, []*daguhav1.ReportItem{{LeaseToken: token, Steps: steps,
		Finish: &daguhav1.RunEnd{Status: status, Error: message, Outputs: outputs}}})[0]
}

// Report records the items of a worker's report: each item's step states
// (ReportSteps) or, when it has a finish, its end with those states
// (FinishRun), under the item's own lease. The step reports of all items
// go to the group commit together, and so do the finishes: a worker's
// report of many runs costs a Raft entry or two, not one per run. errs[i]
// is what ReportSteps or FinishRun would have returned for item i alone.
func (d *Dispatcher) Report(ctx context.Context, items []*daguhav1.ReportItem) (errs []error) {
	errs = make([]error, len(items))
	st, err := d.leader()
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	var (
		reports    []*daguhav1.StepReport
		reportItem []int // the item of each report
		finishes   []*daguhav1.Finish
		finishItem []int
	)
	arrived := d.config.Now()
	now := arrived.UnixNano()
	for i, item := range items {
		refusedKind := RefusedStep
		if item.GetFinish() != nil {
			refusedKind = RefusedFinish
		}
		claims, err := st.verify(item.GetLeaseToken())
		if err == nil {
			err = d.checkHolder(ctx, claims)
		}
		if err != nil {
			d.config.Metrics.ReportRefused(refusedKind, 1)
			errs[i] = err
			continue
		}
		if err := checkReportItem(d.backend.State(), claims.RunID, item); err != nil {
			errs[i] = err
			continue
		}
		st.firstReport(claims, arrived)
		if end := item.GetFinish(); end != nil {
			finishes = append(finishes, &daguhav1.Finish{
				RunId: claims.RunID, FencingToken: claims.FencingToken, Status: end.GetStatus(), Error: end.GetError(),
				NowUnixNano: now, Outputs: end.GetOutputs(), Steps: item.GetSteps(),
			})
			finishItem = append(finishItem, i)
			continue
		}
		if len(item.GetSteps()) == 0 {
			errs[i] = &InvalidRequestError{Reason: "step report without a step name"}
			continue
		}
		for _, step := range item.GetSteps() {
			reports = append(reports, &daguhav1.StepReport{RunId: claims.RunID, FencingToken: claims.FencingToken, Step: step})
			reportItem = append(reportItem, i)
		}
	}
	var wg sync.WaitGroup
	if len(reports) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcomes, err := st.reports.submitAll(ctx, st.ctx.Done(), reports)
			for j, i := range reportItem {
				switch {
				case err != nil:
					errs[i] = notLeaderIfStopped(err)
				case errs[i] == nil && !outcomes[j].GetApplied():
					// One run, one token: the item's reports share a fate.
					d.config.Metrics.ReportRefused(RefusedStep, 1)
					errs[i] = refusal(outcomes[j])
				}
			}
		}()
	}
	if len(finishes) > 0 {
		outcomes, err := st.finishes.submitAll(ctx, st.ctx.Done(), finishes)
		finishCommit := d.config.Now().Sub(arrived)
		for j, i := range finishItem {
			if err != nil {
				errs[i] = notLeaderIfStopped(err)
				continue
			}
			finish := finishes[j]
			if !outcomes[j].GetApplied() {
				d.config.Metrics.ReportRefused(RefusedFinish, 1)
				errs[i] = refusal(outcomes[j])
				continue
			}
			st.mu.Lock()
			if l, ok := st.deadlines[finish.GetRunId()]; ok && l.fencingToken == finish.GetFencingToken() {
				delete(st.deadlines, finish.GetRunId())
			}
			st.mu.Unlock()
			d.config.Metrics.ObserveStage(StageFinishCommit, finishCommit)
			d.config.Metrics.RunFinished(finish.GetStatus().Word())
			d.config.Metrics.RunsCancelledAtOnce(outcomes[j].GetEndedCancelled())
		}
	}
	wg.Wait()
	return errs
}

// firstReport observes the start_report stage when this is the first
// report the leader received for the attempt it granted.
func (st *leaderState) firstReport(claims LeaseClaims, arrived time.Time) {
	st.mu.Lock()
	l, ok := st.deadlines[claims.RunID]
	first := ok && l.fencingToken == claims.FencingToken && !l.handedAt.IsZero()
	if first {
		st.deadlines[claims.RunID] = lease{fencingToken: l.fencingToken, deadline: l.deadline}
	}
	st.mu.Unlock()
	if first {
		st.d.config.Metrics.ObserveStage(StageStartReport, arrived.Sub(l.handedAt))
	}
}

func notLeaderIfStopped(err error) error {
	if errors.Is(err, errBatcherStopped) {
		return ErrNotLeader
	}
	return err
}
