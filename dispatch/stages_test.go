package dispatch_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// stageRecorder is an Observer that keeps the stages it is told of.
type stageRecorder struct {
	mu     sync.Mutex
	stages map[string][]time.Duration
	waits  []time.Duration
}

func (r *stageRecorder) ObserveStage(stage string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stages[stage] = append(r.stages[stage], d)
}

func (r *stageRecorder) LeaseGranted(waited time.Duration, _ bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits = append(r.waits, waited)
}

func (r *stageRecorder) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	counts := map[string]int{}
	for stage, ds := range r.stages {
		for _, d := range ds {
			if d < 0 {
				counts[stage+" negative"]++
			}
		}
		counts[stage] = len(ds)
	}
	counts[dispatch.StageQueueWait] = len(r.waits)
	return counts
}

func (r *stageRecorder) RunEnqueued()                   {}
func (r *stageRecorder) RunFinished(string)             {}
func (r *stageRecorder) RunsCancelledAtOnce(uint32)     {}
func (r *stageRecorder) RunsPruned(uint64)              {}
func (r *stageRecorder) LeasesReclaimed(string, int)    {}
func (r *stageRecorder) ReportRefused(string, int)      {}
func (r *stageRecorder) ObserveHeartbeat(time.Duration) {}

// A run's life is timed once per stage on the leader: the grant's commit
// and the poll's return when a poll takes it, the start report at the
// worker's first report only (a heartbeat renewing the lease in between
// keeps the time the poll returned; later reports are not starts), the
// finish's commit when it ends.
func TestEachStageOfARunIsTimedOnce(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	rec := &stageRecorder{stages: map[string][]time.Duration{}}
	d := dispatch.New(backend{leader.Server}, dispatch.Config{LeaseTTL: time.Hour, SigningKeys: [][]byte{[]byte("stages-key")}, Metrics: rec})
	leader.Server.RegisterLeaderDuty("dispatch", d.RunLeader)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dag := &daguhav1.DagSpec{Name: "staged", Steps: []*daguhav1.StepSpec{{Name: "s", Command: "true"}}}
	run := &daguhav1.Run{Id: "staged-1", DagName: "staged", Dag: dag, EnqueuedAtUnixNano: time.Now().UnixNano()}
	if _, _, err := leader.Server.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{run}}); err != nil {
		t.Fatal(err)
	}
	worker := &daguhav1.WorkerInfo{Id: "w", MaxActiveRuns: 4}
	var task *daguhav1.Task
	clustertest.WaitFor(t, 10*time.Second, "the dispatcher to grant", func() (bool, string) {
		var err error
		task, err = d.Poll(ctx, worker, 100*time.Millisecond)
		return err == nil && task != nil, fmt.Sprint(err)
	})
	want := func(step string, expected map[string]int) {
		t.Helper()
		got := rec.counts()
		for _, stage := range dispatch.Stages {
			if got[stage] != expected[stage] {
				t.Fatalf("after %s: stages timed %v; want %v", step, got, expected)
			}
			if got[stage+" negative"] > 0 {
				t.Fatalf("after %s: stage %s timed negative: %v", step, stage, got)
			}
		}
	}
	want("the poll", map[string]int{dispatch.StageQueueWait: 1, dispatch.StageGrantCommit: 1, dispatch.StagePollReturn: 1})

	resp, err := d.Heartbeat(ctx, worker, []*daguhav1.HeldLease{{RunId: run.GetId(), LeaseToken: task.GetLeaseToken()}})
	if err != nil || len(resp.GetLostRunIds()) != 0 {
		t.Fatalf("heartbeat: %v, lost %v", err, resp.GetLostRunIds())
	}
	want("a heartbeat", map[string]int{dispatch.StageQueueWait: 1, dispatch.StageGrantCommit: 1, dispatch.StagePollReturn: 1})

	running := &daguhav1.StepState{Name: "s", Status: daguhav1.StepStatus_STEP_STATUS_RUNNING}
	if err := d.ReportSteps(ctx, task.GetLeaseToken(), []*daguhav1.StepState{running}); err != nil {
		t.Fatal(err)
	}
	started := map[string]int{dispatch.StageQueueWait: 1, dispatch.StageGrantCommit: 1, dispatch.StagePollReturn: 1, dispatch.StageStartReport: 1}
	want("the first report", started)
	if err := d.ReportSteps(ctx, task.GetLeaseToken(), []*daguhav1.StepState{running}); err != nil {
		t.Fatal(err)
	}
	want("a second report", started)

	done := &daguhav1.StepState{Name: "s", Status: daguhav1.StepStatus_STEP_STATUS_SUCCEEDED}
	if err := d.FinishRun(ctx, task.GetLeaseToken(), daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "", nil, []*daguhav1.StepState{done}); err != nil {
		t.Fatal(err)
	}
	started[dispatch.StageFinishCommit] = 1
	want("the finish", started)
}
