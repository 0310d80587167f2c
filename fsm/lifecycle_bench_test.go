package fsm_test

import (
	"fmt"
	"testing"

	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// BenchmarkRunLifecycle applies what every server applies for a batch of
// no-op runs of one step: the enqueue, the grant, the step's start report
// and the finish carrying the step's end, 64 runs per entry (as a busy
// worker's reports go). It reports the cost per run.
func BenchmarkRunLifecycle(b *testing.B) {
	for _, steps := range []int{1, 10} {
		b.Run(fmt.Sprintf("steps=%d", steps), func(b *testing.B) {
			const batch = 64
			f := newFSM(b)
			dag := &daguhav1.DagSpec{Name: "bench"}
			for i := range steps {
				dag.Steps = append(dag.Steps, &daguhav1.StepSpec{Name: fmt.Sprintf("s%d", i), Command: "true"})
			}
			index := uint64(1)
			b.ReportAllocs()
			b.ResetTimer()
			for n := range b.N {
				var runs []*daguhav1.Run
				var grants []*daguhav1.Grant
				for i := range batch {
					id := fmt.Sprintf("run-%d-%d", n, i)
					runs = append(runs, &daguhav1.Run{Id: id, DagName: "bench", Dag: dag, EnqueuedAtUnixNano: int64(n)})
					grants = append(grants, &daguhav1.Grant{RunId: id, WorkerId: "w", Attempt: 1, MaxActiveRuns: batch, NowUnixNano: int64(n)})
				}
				f.Apply(entry(index, encode(b, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: runs})))
				index++
				f.Apply(entry(index, encode(b, fsm.GrantLeasesType, &daguhav1.GrantLeasesCommand{Grants: grants})))
				token := index
				index++
				var reports []*daguhav1.StepReport
				var finishes []*daguhav1.Finish
				for _, run := range runs {
					reports = append(reports, &daguhav1.StepReport{RunId: run.GetId(), FencingToken: token,
						Step: &daguhav1.StepState{Name: "s0", Status: daguhav1.StepStatus_STEP_STATUS_RUNNING, StartedAtUnixNano: 1, Retry: 1}})
					finishes = append(finishes, &daguhav1.Finish{RunId: run.GetId(), FencingToken: token, Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED,
						NowUnixNano: 2, Steps: []*daguhav1.StepState{{Name: "s0", Status: daguhav1.StepStatus_STEP_STATUS_SUCCEEDED, StartedAtUnixNano: 1, FinishedAtUnixNano: 2, Retry: 1}}})
				}
				f.Apply(entry(index, encode(b, fsm.ReportStepsType, &daguhav1.ReportStepsCommand{Reports: reports})))
				index++
				f.Apply(entry(index, encode(b, fsm.FinishRunsType, &daguhav1.FinishRunsCommand{Finishes: finishes})))
				index++
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/run")
			if run, _ := f.State().Run("run-0-0"); run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
				b.Fatalf("run-0-0: %v", run)
			}
		})
	}
}
