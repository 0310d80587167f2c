package dispatch

import (
	"slices"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// eachNeeded calls yield with each Dagu executor a run of dag needs on its
// worker, a kind possibly more than once, until yield returns false:
// docker for a DAG-level container, then each step's and handler's
// executor (http, jq, ssh, ...). Commands and child runs need none: every
// worker runs them. A child DAG's needs are its own run's.
func eachNeeded(dag *daguhav1.DagSpec, yield func(kind string) bool) {
	if dag.GetContainerJson() != "" && !yield("docker") {
		return
	}
	for _, s := range dag.GetSteps() {
		if kind := s.GetExecutor(); kind != "" && !yield(kind) {
			return
		}
	}
	h := dag.GetHandlerOn()
	for _, s := range []*daguhav1.StepSpec{h.GetSuccess(), h.GetFailure(), h.GetCancel(), h.GetExit(), h.GetInit()} {
		if kind := s.GetExecutor(); kind != "" && !yield(kind) {
			return
		}
	}
}

// NeededExecutors are the Dagu executors a run of dag needs on its
// worker, sorted, each once (see eachNeeded).
func NeededExecutors(dag *daguhav1.DagSpec) []string {
	var needs []string
	eachNeeded(dag, func(kind string) bool {
		if !slices.Contains(needs, kind) {
			needs = append(needs, kind)
		}
		return true
	})
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
// executor a run of dag needs. The leader asks it of each run it looks
// at in a poll, so it allocates nothing and stops at the first lack.
func HasExecutors(have []string, dag *daguhav1.DagSpec) bool {
	ok := true
	eachNeeded(dag, func(kind string) bool {
		ok = slices.Contains(have, kind)
		return ok
	})
	return ok
}
