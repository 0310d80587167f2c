package worker

import (
	"context"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// noopExecutor runs command and script steps on an engine with Noop set
// (a worker with NoopExecutor): each succeeds at once without starting a
// process, its output variable empty. For benchmarks of the coordinator,
// never for real work.
type noopExecutor struct{}

func init() { registerExecutor(kindNoop, noopExecutor{}) }

func (noopExecutor) execute(_ context.Context, t *stepTry) *daguhav1.StepState {
	t.x.setOutput(t.i, "")
	return &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_SUCCEEDED}
}
