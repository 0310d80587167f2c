package api

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/ops/service"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// How daguha's records look in Dagu's shapes: Dagu's status numbers and
// words, its times (RFC 3339 to the second, "" for none) and its names.

// daguTime formats a time as Dagu does.
func daguTime(unixNano int64) string {
	if unixNano == 0 {
		return ""
	}
	return time.Unix(0, unixNano).UTC().Format(time.RFC3339)
}

// daguRunStatus is a run status as Dagu's number and word.
func daguRunStatus(status daguhav1.RunStatus) (int, string) { return status.Dagu() }

// daguhaStatusOf is the word daguha filters runs by for one of Dagu's
// status numbers or words (or daguha's own word); "" for a status no
// daguha run has, ok false for one that is none of these.
func daguhaStatusOf(text string) (word string, ok bool) {
	for _, status := range []daguhav1.RunStatus{daguhav1.RunStatus_RUN_STATUS_QUEUED, daguhav1.RunStatus_RUN_STATUS_RUNNING,
		daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, daguhav1.RunStatus_RUN_STATUS_FAILED, daguhav1.RunStatus_RUN_STATUS_CANCELLED} {
		number, label := status.Dagu()
		if text == strconv.Itoa(number) || text == label || text == status.Word() {
			return status.Word(), true
		}
	}
	switch text {
	case "0", "6", "7", "8", "not_started", "partially_succeeded", "waiting", "rejected":
		return "", true
	}
	return "", false
}

// daguNodeStatus is a step status as Dagu's node number and word.
func daguNodeStatus(status daguhav1.StepStatus) (int, string) {
	switch status {
	case daguhav1.StepStatus_STEP_STATUS_RUNNING:
		return 1, "running"
	case daguhav1.StepStatus_STEP_STATUS_FAILED:
		return 2, "failed"
	case daguhav1.StepStatus_STEP_STATUS_CANCELLED:
		return 3, "aborted"
	case daguhav1.StepStatus_STEP_STATUS_SUCCEEDED:
		return 4, "succeeded"
	case daguhav1.StepStatus_STEP_STATUS_SKIPPED:
		return 5, "skipped"
	}
	return 0, "not_started"
}

// runPathIn is the path of a run (or of a part of it) under a prefix.
func runPathIn(prefix string, run *daguhav1.Run, suffix string) string {
	return prefix + "/dag-runs/" + url.PathEscape(run.GetDagName()) + "/" + url.PathEscape(run.GetId()) + suffix
}

// emptyIfNil is list, or an empty one: JSON shows [] rather than null.
func emptyIfNil[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

func daguRunSummary(prefix string, run *daguhav1.Run) wire.DaguRunSummary {
	number, label := daguRunStatus(run.GetStatus())
	view := wire.DaguRunSummary{
		RootDAGRunName: run.GetRootDagRunName(), RootDAGRunID: run.GetRootDagRunId(),
		ParentDAGRunName: run.GetParentDagRunName(), ParentDAGRunID: run.GetParentDagRunId(),
		DagRunID: run.GetId(), Name: run.GetDagName(), Status: number, StatusLabel: label,
		QueuedAt: daguTime(run.GetEnqueuedAtUnixNano()), StartedAt: daguTime(run.GetStartedAtUnixNano()),
		FinishedAt: daguTime(run.GetFinishedAtUnixNano()), Log: runPathIn(prefix, run, "/log"),
		Params: run.GetParams(), WorkerID: run.GetWorkerId(), TriggerType: "manual",
		AutoRetryCount: int(run.GetDagRetries()),
		Labels:         emptyIfNil(run.GetDag().GetLabels()), Tags: emptyIfNil(run.GetDag().GetLabels()),
	}
	switch {
	case run.GetScheduleSlotUnix() != 0:
		view.TriggerType = "scheduler"
		view.ScheduleTime = daguTime(run.GetScheduleSlotUnix() * 1e9)
	case run.GetParentDagRunId() != "":
		view.TriggerType = "subdag"
	}
	if policy := run.GetDag().GetRetryPolicy(); policy != nil {
		limit := int(policy.GetLimit())
		view.AutoRetryLimit = &limit
	}
	return view
}

// daguNoRun is the latest run of a DAG that has none, as Dagu shows it:
// not started.
func daguNoRun(dagName string) wire.DaguRunSummary {
	return wire.DaguRunSummary{Name: dagName, StatusLabel: "not_started", TriggerType: "unknown", Labels: []string{}, Tags: []string{}}
}

func daguStep(step *daguhav1.StepSpec) wire.DaguStep {
	view := wire.DaguStep{
		Name: step.GetName(), ID: step.GetId(), Description: step.GetDescription(), Dir: step.GetDir(),
		Script: step.GetScript(), Stdout: step.GetStdout(), Stderr: step.GetStderr(), Output: step.GetOutput(),
		Call: step.GetChildDag(), Params: step.GetChildParams(), Depends: emptyIfNil(step.GetDepends()),
		TimeoutSec: step.GetTimeoutSec(),
	}
	for _, command := range step.GetCommands() {
		view.Commands = append(view.Commands, wire.DaguCommand{Command: command})
	}
	if command := step.GetCommand(); command != "" && len(view.Commands) == 0 {
		view.Commands = []wire.DaguCommand{{Command: command}}
	}
	return view
}

// daguParamNames are the names of a DAG's params ($1, $2, ... for the
// positional ones).
func daguParamNames(params []*daguhav1.Param) []string {
	names := []string{}
	for i, p := range params {
		name := p.GetName()
		if name == "" {
			name = fmt.Sprintf("$%d", i+1)
		}
		names = append(names, name)
	}
	return names
}

func daguSchedules(spec *daguhav1.DagSpec) []wire.DaguSchedule {
	schedules := []wire.DaguSchedule{}
	for _, expr := range spec.GetSchedule() {
		schedules = append(schedules, wire.DaguSchedule{Expression: expr})
	}
	return schedules
}

// daguNextRun is the DAG's next start slot after now, "" without one.
func daguNextRun(spec *daguhav1.DagSpec, now time.Time) string {
	var next time.Time
	for _, expr := range spec.GetSchedule() {
		schedule, err := dagfile.ParseSchedule(expr)
		if err != nil {
			continue
		}
		if at := schedule.Next(now); !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	if next.IsZero() {
		return ""
	}
	return next.UTC().Format(time.RFC3339)
}

func daguDag(spec *daguhav1.DagSpec) wire.DaguDag {
	return wire.DaguDag{
		Name: spec.GetName(), Schedule: daguSchedules(spec), Description: spec.GetDescription(),
		Params: daguParamNames(spec.GetParams()), DefaultParams: dagfile.FormatParams(spec.GetParams()),
		Labels: emptyIfNil(spec.GetLabels()), Tags: emptyIfNil(spec.GetLabels()),
		Queue: spec.GetQueue(), MaxActiveRuns: int(spec.GetMaxActiveRuns()),
	}
}

func daguDagDetails(spec *daguhav1.DagSpec, now time.Time) wire.DaguDagDetails {
	view := wire.DaguDagDetails{
		Name: spec.GetName(), Schedule: daguSchedules(spec), Description: spec.GetDescription(),
		Env: []string{}, Steps: []wire.DaguStep{}, Delay: spec.GetDelaySec(),
		MaxActiveRuns: int(spec.GetMaxActiveRuns()), MaxActiveSteps: int(spec.GetMaxActiveSteps()), Queue: spec.GetQueue(),
		Params: daguParamNames(spec.GetParams()), DefaultParams: dagfile.FormatParams(spec.GetParams()),
		Labels: emptyIfNil(spec.GetLabels()), Tags: emptyIfNil(spec.GetLabels()), NextRun: daguNextRun(spec, now),
	}
	for _, env := range spec.GetEnv() {
		view.Env = append(view.Env, env.GetName()+"="+env.GetValue())
	}
	for _, step := range spec.GetSteps() {
		view.Steps = append(view.Steps, daguStep(step))
	}
	if on := spec.GetHandlerOn(); on != nil {
		handler := func(step *daguhav1.StepSpec) *wire.DaguStep {
			if step == nil {
				return nil
			}
			view := daguStep(step)
			return &view
		}
		view.HandlerOn = &wire.DaguHandlerOn{Success: handler(on.GetSuccess()), Failure: handler(on.GetFailure()),
			Abort: handler(on.GetCancel()), Exit: handler(on.GetExit())}
	}
	return view
}

// daguNode is a step of a run: its definition and its state (nil: not
// started).
func daguNode(prefix string, run *daguhav1.Run, spec *daguhav1.StepSpec, state *daguhav1.StepState) wire.DaguNode {
	logPath := runPathIn(prefix, run, "/steps/"+url.PathEscape(spec.GetName())+"/log")
	node := wire.DaguNode{Step: daguStep(spec), Stdout: logPath, Stderr: logPath + "?stream=stderr"}
	node.Status, node.StatusLabel = daguNodeStatus(state.GetStatus())
	if state == nil {
		return node
	}
	node.StartedAt, node.FinishedAt = daguTime(state.GetStartedAtUnixNano()), daguTime(state.GetFinishedAtUnixNano())
	node.RetryCount = max(int(state.GetRetry())-1, 0)
	node.DoneCount = int(state.GetRepeat())
	node.Error, node.ExitCode = state.GetError(), state.GetExitCode()
	if child := state.GetChildRunId(); child != "" {
		node.SubRuns = append(node.SubRuns, wire.DaguSubRun{DagRunID: child, Params: spec.GetChildParams(), DagName: spec.GetChildDag()})
	}
	for _, child := range state.GetParallelChildren() {
		node.SubRuns = append(node.SubRuns, wire.DaguSubRun{DagRunID: child.GetChildRunId(), Params: child.GetParams(), DagName: spec.GetChildDag()})
	}
	for _, c := range state.GetPreconditions() {
		node.Preconditions = append(node.Preconditions, wire.DaguCondition{Condition: c.GetCondition(), Expected: c.GetExpected(), Negate: c.GetNegate(), Matched: c.GetMet()})
	}
	return node
}

func daguRunDetails(prefix string, run *daguhav1.Run) wire.DaguRunDetails {
	view := wire.DaguRunDetails{DaguRunSummary: daguRunSummary(prefix, run), Nodes: []wire.DaguNode{}, Preconditions: []wire.DaguCondition{}, Error: run.GetError()}
	states := map[string]*daguhav1.StepState{}
	for _, state := range run.GetSteps() {
		states[state.GetName()] = state
	}
	shown := map[string]bool{}
	for _, step := range run.GetDag().GetSteps() {
		view.Nodes = append(view.Nodes, daguNode(prefix, run, step, states[step.GetName()]))
		shown[step.GetName()] = true
	}
	on := run.GetDag().GetHandlerOn()
	for _, h := range []struct {
		step *daguhav1.StepSpec
		into **wire.DaguNode
	}{{on.GetSuccess(), &view.OnSuccess}, {on.GetFailure(), &view.OnFailure}, {on.GetCancel(), &view.OnAbort}, {on.GetExit(), &view.OnExit}} {
		if h.step != nil {
			node := daguNode(prefix, run, h.step, states[h.step.GetName()])
			*h.into = &node
			shown[h.step.GetName()] = true
		}
	}
	// A step the definition does not name (the init handler) is shown
	// after the others rather than left out.
	var others []string
	for name := range states {
		if !shown[name] {
			others = append(others, name)
		}
	}
	sort.Strings(others)
	for _, name := range others {
		step := dagfile.FindStep(run.GetDag(), name)
		if step == nil {
			step = &daguhav1.StepSpec{Name: name}
		}
		view.Nodes = append(view.Nodes, daguNode(prefix, run, step, states[name]))
	}
	return view
}

func daguSubRun(run *daguhav1.Run) wire.DaguSubRunDetail {
	number, label := daguRunStatus(run.GetStatus())
	return wire.DaguSubRunDetail{
		DagRunID: run.GetId(), Params: run.GetParams(), DagName: run.GetDagName(), Status: number, StatusLabel: label,
		StartedAt: daguTime(run.GetStartedAtUnixNano()), FinishedAt: daguTime(run.GetFinishedAtUnixNano()),
	}
}

// daguDagFile is a stored DAG in Dagu's list, with its newest run (nil:
// none).
func daguDagFile(prefix string, dag service.Dag, newest *daguhav1.Run, now time.Time) wire.DaguDagFile {
	spec := dag.Stored.GetSpec()
	view := wire.DaguDagFile{
		FileName: spec.GetName(), FilePath: spec.GetSourceFile(), Dag: daguDag(spec),
		LatestDAGRun: daguNoRun(spec.GetName()), Errors: []string{}, NextRun: daguNextRun(spec, now),
	}
	if newest != nil {
		view.LatestDAGRun = daguRunSummary(prefix, newest)
	}
	return view
}

// daguDagDetail is a stored DAG in detail, with its newest run (nil:
// none).
func daguDagDetail(prefix string, dag service.Dag, newest *daguhav1.Run, now time.Time) wire.DaguDagDetail {
	spec := dag.Stored.GetSpec()
	view := wire.DaguDagDetail{
		FilePath: spec.GetSourceFile(), DagDetails: daguDagDetails(spec, now), LocalDags: []wire.DaguLocalDag{},
		LatestDAGRun: wire.DaguRunDetails{DaguRunSummary: daguNoRun(spec.GetName()), Nodes: []wire.DaguNode{}, Preconditions: []wire.DaguCondition{}},
		Errors:       []string{}, Spec: dag.Source(),
	}
	for _, local := range dag.Stored.GetLocalDags() {
		details := daguDagDetails(local, now)
		view.LocalDags = append(view.LocalDags, wire.DaguLocalDag{Name: local.GetName(), Dag: &details, Errors: []string{}})
	}
	if newest != nil {
		view.LatestDAGRun = daguRunDetails(prefix, newest)
	}
	return view
}
