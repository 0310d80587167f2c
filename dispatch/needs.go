package dispatch

import (
	"slices"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// NeededExecutors are the Dagu executors a run of dag needs on its
// worker, sorted: each step's executor (http, jq, ssh, ...) and docker
// for a DAG-level container. Commands and child runs need none: every
// worker runs them. A child DAG's needs are its own run's.
func NeededExecutors(dag *daguhav1.DagSpec) []string {
	var needs []string
	add := func(kind string) {
		if kind != "" && !slices.Contains(needs, kind) {
			needs = append(needs, kind)
		}
	}
	if dag.GetContainerJson() != "" {
		add("docker")
	}
	for _, s := range dag.GetSteps() {
		add(s.GetExecutor())
	}
	for _, h := range []*daguhav1.StepSpec{dag.GetHandlerOn().GetSuccess(), dag.GetHandlerOn().GetFailure(), dag.GetHandlerOn().GetCancel(), dag.GetHandlerOn().GetExit(), dag.GetHandlerOn().GetInit()} {
		add(h.GetExecutor())
	}
	slices.Sort(needs)
	return needs
}

// MissingExecutors are the executors a run of dag needs that a worker
// advertising have lacks, sorted.
func MissingExecutors(have []string, dag *daguhav1.DagSpec) []string {
	var missing []string
	for _, kind := range NeededExecutors(dag) {
		if !slices.Contains(have, kind) {
			missing = append(missing, kind)
		}
	}
	return missing
}

// HasExecutors says whether a worker advertising have runs every
// executor a run of dag needs.
func HasExecutors(have []string, dag *daguhav1.DagSpec) bool {
	return len(MissingExecutors(have, dag)) == 0
}
