package dispatch

import (
	"fmt"
	"strconv"

	"github.com/google/uuid"

	"github.com/daguha/daguha/dispatch/valid"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// ParallelChildRunID returns the id of the child run of one item of a
// parallel step: a name-based UUID of the parent's id, the step, the
// retry and the child's params, as Dagu derives it from the params. The
// same item asked for again (by the parent's next attempt after a
// failover, or twice by one attempt) is the same child; two items with the
// same params are one child, as in Dagu.
func ParallelChildRunID(parentID, step string, retry uint32, params string) string {
	return uuid.NewSHA1(childNamespace, []byte(parentID+"\x00"+step+"\x00"+strconv.FormatUint(uint64(retry), 10)+"\x00parallel\x00"+params)).String()
}

// childRunIDOf is the id of the child a run/call step asks for: one per
// step and retry, or, for a parallel step, one per item as well.
func childRunIDOf(parentID, stepKey string, step *daguhav1.StepSpec, retry uint32, params string) string {
	if step.GetParallel() != nil {
		return ParallelChildRunID(parentID, stepKey, retry, params)
	}
	return ChildRunID(parentID, stepKey, retry)
}

// checkParallelChildren checks what a step report records of a parallel
// step's children: at most valid.MaxParallelItems of them, each a run id,
// with params cut to what a state shows.
func checkParallelChildren(step *daguhav1.StepState) error {
	children := step.GetParallelChildren()
	if len(children) > valid.MaxParallelItems {
		return &InvalidRequestError{Reason: fmt.Sprintf("step report of %s: %d parallel children, more than the limit of %d",
			valid.Quote(step.GetName()), len(children), valid.MaxParallelItems)}
	}
	for _, child := range children {
		if id := child.GetChildRunId(); id != "" {
			if err := valid.RunID(id); err != nil {
				return &InvalidRequestError{Reason: fmt.Sprintf("step report of %s: parallel child %v", valid.Quote(step.GetName()), err)}
			}
		}
		child.Params = valid.ClipParallelParams(child.GetParams())
	}
	return nil
}
