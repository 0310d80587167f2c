package dispatch

import (
	"fmt"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/dispatch/valid"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// The bounds on what workers send, by package valid's rules. A worker
// holds a lease on its own runs only, but what it reports is replicated
// to every server: its names, labels and texts are checked before they
// reach a command.

// checkWorkerInfo checks how a worker describes itself on every call.
func checkWorkerInfo(info *daguhav1.WorkerInfo) error {
	if err := valid.WorkerID(info.GetId()); err != nil {
		return &InvalidRequestError{Reason: err.Error()}
	}
	// The security suite's deliberately broken build takes any labels, to
	// show what a 20 MB label cost before this check.
	if err := valid.Labels(info.GetLabels()); err != nil && identity.Enforced {
		return &InvalidRequestError{Reason: fmt.Sprintf("worker %q: %v", info.GetId(), err)}
	}
	if err := valid.LogAddr(info.GetLogAddr()); err != nil {
		return &InvalidRequestError{Reason: fmt.Sprintf("worker %q: %v", info.GetId(), err)}
	}
	if err := valid.WorkerCapabilities(info.GetExecutors(), info.GetAutoLabels(), info.GetLabels()); err != nil {
		return &InvalidRequestError{Reason: fmt.Sprintf("worker %q: %v", info.GetId(), err)}
	}
	return nil
}

// checkReportItem checks one run's report under its lease: each step
// state names a step or a handler of the run's DAG (so a worker cannot grow its run's
// record with made-up steps), a child run id is a run id, and a finish
// has outputs within valid.Outputs. Texts (output tails, errors) are cut
// to their limits rather than refused: they only describe.
func checkReportItem(state *store.StateStore, runID string, item *daguhav1.ReportItem) error {
	if err := validateSteps(item.GetSteps()); err != nil {
		return err
	}
	run, err := state.Run(runID)
	if err != nil {
		return err
	}
	// A run this server does not have is refused by the state machine,
	// with the reason a stale lease gets.
	var steps map[string]bool
	if run != nil {
		// Its handlers too: they run, and are reported, as steps.
		handlers := dagfile.HandlerSteps(run.GetDag())
		steps = make(map[string]bool, len(run.GetDag().GetSteps())+len(handlers))
		for _, s := range run.GetDag().GetSteps() {
			steps[s.GetName()] = true
		}
		for _, s := range handlers {
			steps[s.GetName()] = true
		}
	}
	for _, step := range item.GetSteps() {
		if err := valid.StepName(step.GetName()); err != nil {
			return &InvalidRequestError{Reason: fmt.Sprintf("step report: %v", err)}
		}
		if steps != nil && !steps[step.GetName()] {
			return &InvalidRequestError{Reason: fmt.Sprintf("step report: run %q has no step %s", runID, valid.Quote(step.GetName()))}
		}
		if id := step.GetChildRunId(); id != "" {
			if err := valid.RunID(id); err != nil {
				return &InvalidRequestError{Reason: fmt.Sprintf("step report of %s: child %v", valid.Quote(step.GetName()), err)}
			}
		}
		if err := checkParallelChildren(step); err != nil {
			return err
		}
		step.OutputTail = valid.ClipTail(step.GetOutputTail())
		step.Error = valid.ClipError(step.GetError())
	}
	if end := item.GetFinish(); end != nil {
		if err := valid.Outputs(end.GetOutputs()); err != nil {
			return &InvalidRequestError{Reason: fmt.Sprintf("run %q: %v", runID, err)}
		}
		end.Error = valid.ClipError(end.GetError())
	}
	return nil
}

// checkChildRequest checks what a worker sends to start a child run.
func checkChildRequest(stepName, params string) error {
	if err := valid.StepName(stepName); err != nil {
		return &InvalidRequestError{Reason: fmt.Sprintf("child run: %v", err)}
	}
	if err := valid.Params(params); err != nil {
		return &InvalidRequestError{Reason: fmt.Sprintf("child run of step %s: %v", valid.Quote(stepName), err)}
	}
	return nil
}

// grantBudgetBytes bounds the runs one poll is granted together: matching
// stops once they reach it, so that the last run (at most a DAG, its
// params and its record) still fits the answer in one message.
const grantBudgetBytes = valid.MaxMessageBytes - valid.MaxDagBytes - valid.MaxParamsBytes - 64<<10

// ChildResult is what a parent's worker learns of a child run it waits
// for: the run without its DAG and step states, which it does not use and
// which may be larger than a message.
func ChildResult(run *daguhav1.Run) *daguhav1.Run {
	if run == nil {
		return nil
	}
	// Every other field, shared with the stored record (which nobody
	// changes in place): a field added to Run is passed on too.
	result := &daguhav1.Run{}
	from, to := run.ProtoReflect(), result.ProtoReflect()
	from.Range(func(field protoreflect.FieldDescriptor, value protoreflect.Value) bool {
		switch field.Name() {
		case "dag", "local_dags", "steps":
		default:
			to.Set(field, value)
		}
		return true
	})
	return result
}
