package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/dispatch/valid"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// boundsCluster is a one-server cluster with a dispatcher serving.
type boundsCluster struct {
	d       *dispatch.Dispatcher
	backend backend
	ctx     context.Context
}

func startBoundsCluster(t *testing.T) *boundsCluster {
	t.Helper()
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	d := dispatch.New(backend{leader.Server}, dispatch.Config{LeaseTTL: time.Hour})
	leader.Server.RegisterLeaderDuty("dispatch", d.RunLeader)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	clustertest.WaitFor(t, 10*time.Second, "the dispatcher to serve", func() (bool, string) {
		_, err := d.Heartbeat(ctx, &daguhav1.WorkerInfo{Id: "probe", MaxActiveRuns: 1}, nil)
		return err == nil, "not yet"
	})
	return &boundsCluster{d: d, backend: backend{leader.Server}, ctx: ctx}
}

func (b *boundsCluster) state() *store.StateStore { return b.backend.State() }

func (b *boundsCluster) enqueue(t *testing.T, run *daguhav1.Run) {
	t.Helper()
	run.DagName = run.GetDag().GetName()
	if _, _, err := b.backend.Apply(b.ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{run}}); err != nil {
		t.Fatal(err)
	}
}

// Every call from a worker carries its id, labels and log address: those
// outside package valid's rules are refused before anything is recorded
// (the 20 MB label of issue #20 was replicated to every server).
func TestWorkerInfoOutsideTheRulesIsRefused(t *testing.T) {
	b := startBoundsCluster(t)
	d, state, ctx := b.d, b.state, b.ctx
	many := map[string]string{}
	for i := range valid.MaxLabels + 1 {
		many["k"+strings.Repeat("x", i)] = "v"
	}
	for _, tc := range []struct {
		name string
		info *daguhav1.WorkerInfo
		want string
	}{
		{"a worker id with a slash", &daguhav1.WorkerInfo{Id: "a/b", MaxActiveRuns: 1}, `worker id "a/b": must be 1-253`},
		{"a worker id of 254 bytes", &daguhav1.WorkerInfo{Id: strings.Repeat("w", 254), MaxActiveRuns: 1}, "must be 1-253"},
		{"a 20 MB label value", &daguhav1.WorkerInfo{Id: "w20", MaxActiveRuns: 1, Labels: map[string]string{"big": strings.Repeat("x", 20<<20)}}, `(20971520 bytes) of "big": must be at most 63 bytes`},
		{"a label key with '='", &daguhav1.WorkerInfo{Id: "weq", MaxActiveRuns: 1, Labels: map[string]string{"a=b": "c"}}, `label key "a=b"`},
		{"65 labels", &daguhav1.WorkerInfo{Id: "w65", MaxActiveRuns: 1, Labels: many}, "65 labels, more than the limit of 64"},
		{"a log address that is no host:port", &daguhav1.WorkerInfo{Id: "wlog", MaxActiveRuns: 1, LogAddr: strings.Repeat("h", 300) + ":1"}, "log address"},
		{"33 executors", &daguhav1.WorkerInfo{Id: "wex", MaxActiveRuns: 1, Executors: manyExecutors(valid.MaxExecutors + 1)}, "33 executors, more than the limit of 32"},
		{"a 1 MB executor name", &daguhav1.WorkerInfo{Id: "wexn", MaxActiveRuns: 1, Executors: []string{strings.Repeat("x", 1<<20)}}, "executor name"},
		{"a fingerprinted key that is no label", &daguhav1.WorkerInfo{Id: "wauto", MaxActiveRuns: 1, Labels: map[string]string{"os": "linux"}, AutoLabels: []string{"gpu"}},
			`fingerprinted label "gpu": must be the key of one of the worker's labels`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Heartbeat(ctx, tc.info, nil)
			var invalid *dispatch.InvalidRequestError
			if !errors.As(err, &invalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("heartbeat: %v, want an invalid request naming %q", err, tc.want)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("the refusal is %d bytes long: it echoes the input", len(err.Error()))
			}
			if _, err := d.PollMany(ctx, tc.info, 0, 1); !errors.As(err, &invalid) {
				t.Fatalf("poll: %v, want an invalid request", err)
			}
			if w, _ := state().Worker(tc.info.GetId()); w != nil {
				t.Fatalf("the refused worker was registered: %v", w.GetId())
			}
		})
	}
}

func manyExecutors(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("x%d", i)
	}
	return out
}

// A worker reports on the steps of the run it holds, and only on them:
// made-up step names, bad child run ids and outputs over their limits are
// refused; output tails and errors are cut to their limits.
func TestStepReportsAreBounded(t *testing.T) {
	b := startBoundsCluster(t)
	d, state, ctx := b.d, b.state, b.ctx
	info := &daguhav1.WorkerInfo{Id: "w1", MaxActiveRuns: 4}
	b.enqueue(t, &daguhav1.Run{Id: "r1", Dag: &daguhav1.DagSpec{Name: "d",
		Steps:     []*daguhav1.StepSpec{{Name: "a", Command: "true"}, {Name: "b", ChildDag: "c"}},
		HandlerOn: &daguhav1.HandlerOn{Exit: &daguhav1.StepSpec{Name: "onExit", Command: "true"}}}})
	task, err := d.Poll(ctx, info, 5*time.Second)
	if err != nil || task == nil {
		t.Fatalf("poll: %v %v", task, err)
	}
	token := task.GetLeaseToken()
	refused := func(name string, err error, want string) {
		t.Helper()
		var invalid *dispatch.InvalidRequestError
		if !errors.As(err, &invalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an invalid request naming %q", name, err, want)
		}
	}
	step := func(name string) *daguhav1.StepState {
		return &daguhav1.StepState{Name: name, Status: daguhav1.StepStatus_STEP_STATUS_RUNNING}
	}
	refused("a step the DAG does not have", d.ReportSteps(ctx, token, []*daguhav1.StepState{step("made-up")}), `run "r1" has no step "made-up"`)
	refused("a handler the DAG does not have", d.ReportSteps(ctx, token, []*daguhav1.StepState{step("onSuccess")}), `run "r1" has no step "onSuccess"`)
	refused("a step name with a newline", d.ReportSteps(ctx, token, []*daguhav1.StepState{step("a\nb")}), "control characters")
	bad := step("b")
	bad.ChildRunId = "../x"
	refused("a child run id that is no run id", d.ReportSteps(ctx, token, []*daguhav1.StepState{bad}), `child run id "../x"`)
	refused("params of a child over 64 KiB", func() error {
		_, _, err := d.EnqueueChild(ctx, token, "b", 0, strings.Repeat("p", valid.MaxParamsBytes+1))
		return err
	}(), "params: 65537 bytes")
	refused("a child of a step name over 128 bytes", func() error {
		_, _, err := d.EnqueueChild(ctx, token, strings.Repeat("s", 129), 0, "")
		return err
	}(), "must be at most 128 bytes")

	long := step("a")
	long.OutputTail = strings.Repeat("t", 100<<10) + "END"
	long.Error = strings.Repeat("e", 20<<10)
	if err := d.ReportSteps(ctx, token, []*daguhav1.StepState{long}); err != nil {
		t.Fatalf("a report with a long tail and error: %v", err)
	}
	run, _ := state().Run("r1")
	got := run.GetSteps()[0]
	if len(got.GetOutputTail()) != valid.MaxOutputTailBytes || !strings.HasSuffix(got.GetOutputTail(), "END") {
		t.Errorf("stored output tail is %d bytes, want its last %d", len(got.GetOutputTail()), valid.MaxOutputTailBytes)
	}
	if len(got.GetError()) > valid.MaxErrorBytes {
		t.Errorf("stored error is %d bytes, more than %d", len(got.GetError()), valid.MaxErrorBytes)
	}
	if err := d.ReportSteps(ctx, token, []*daguhav1.StepState{step("onExit")}); err != nil {
		t.Errorf("a report of the DAG's exit handler: %v", err)
	}

	big := strings.Repeat("v", valid.MaxOutputValueBytes)
	err = d.FinishRun(ctx, token, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "", map[string]string{"A": big, "B": big, "C": "v"}, nil)
	refused("outputs over 2 MiB together", err, "outputs: 2097156 bytes together, more than the limit of 2097152")
	if err := d.FinishRun(ctx, token, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "", map[string]string{"A": "1"}, nil); err != nil {
		t.Fatalf("a finish within the limits: %v", err)
	}
}

// A poll asking for several runs is granted as many as fit in one answer
// together; the others wait for the next poll.
func TestOnePollIsGrantedWhatFitsInAMessage(t *testing.T) {
	b := startBoundsCluster(t)
	d, ctx := b.d, b.ctx
	info := &daguhav1.WorkerInfo{Id: "w1", MaxActiveRuns: 8}
	description := strings.Repeat("d", 1500<<10)
	for _, id := range []string{"r1", "r2", "r3"} {
		b.enqueue(t, &daguhav1.Run{Id: id, Dag: &daguhav1.DagSpec{Name: "big", Description: description,
			Steps: []*daguhav1.StepSpec{{Name: "a", Command: "true"}}}})
	}
	granted := 0
	for granted < 3 {
		tasks, err := d.PollMany(ctx, info, 5*time.Second, 8)
		if err != nil || len(tasks) == 0 {
			t.Fatalf("poll: %d tasks, %v", len(tasks), err)
		}
		answer := &daguhav1.PollResponse{Task: tasks[0], MoreTasks: tasks[1:]}
		if size := proto.Size(answer); size > valid.MaxMessageBytes {
			t.Fatalf("one poll was granted %d runs, %d bytes: more than a message holds (%d)", len(tasks), size, valid.MaxMessageBytes)
		}
		granted += len(tasks)
	}
}

// The parent's worker learns its child's status, error and outputs, not
// its DAG and step states.
func TestChildResultLeavesOutTheDagAndSteps(t *testing.T) {
	run := &daguhav1.Run{Id: "c1", Status: daguhav1.RunStatus_RUN_STATUS_FAILED, Error: "step x failed", ModifyIndex: 7,
		Outputs: map[string]string{"A": "1"}, Dag: &daguhav1.DagSpec{Name: "child"}, LocalDags: []*daguhav1.DagSpec{{Name: "l"}},
		Steps: []*daguhav1.StepState{{Name: "x", OutputTail: strings.Repeat("t", 1000)}}}
	got := dispatch.ChildResult(run)
	if got.GetDag() != nil || got.GetLocalDags() != nil || got.GetSteps() != nil {
		t.Fatalf("the child result carries its DAG or steps: %v", got)
	}
	if got.GetId() != "c1" || got.GetStatus() != run.GetStatus() || got.GetError() != run.GetError() ||
		got.GetModifyIndex() != 7 || got.GetOutputs()["A"] != "1" {
		t.Fatalf("the child result lost what the parent needs: %v", got)
	}
	if run.GetDag() == nil || len(run.GetSteps()) != 1 {
		t.Fatal("ChildResult changed the run it was given")
	}
}
