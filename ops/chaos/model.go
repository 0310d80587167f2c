package chaos

import (
	"fmt"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// runState is what the model knows of one run: whether it exists, and
// its terminal status once it has one ("" while queued or running).
// Queued and running are one state: grants and reclaims happen inside the
// cluster, unobserved, and move a run back and forth.
type runState struct {
	Exists bool
	Final  string
}

var terminal = map[string]bool{"succeeded": true, "failed": true, "cancelled": true}

// active: the statuses a run has before its end.
var active = map[string]bool{"queued": true, "running": true}

// stepRun is the run lifecycle as one run sees it. It returns every state
// the run may be in after the operation, none when the operation could
// not have returned what it did.
//
//   - enqueue ok: the run exists afterwards (created, or there already:
//     enqueue is idempotent). A conflict is never right: the suite only
//     enqueues one DAG and params per id. Unknown: it may or may not have
//     taken effect.
//   - read: notfound before the enqueue; queued or running until the end;
//     a terminal status forever once there is one. A run may end unseen
//     (its worker's log line lost with a kill, a cancelled queued run), so
//     a read may be the first to see the end.
//   - cancel ok: the run existed and had not ended; a queued run is
//     cancelled at once, a running one when its worker stops it (or it
//     may still end otherwise, having raced the cancel). finished: it had
//     ended (perhaps unseen). notfound: it did not exist.
//   - finish (from a worker's log): the run had not ended; the accepted
//     status is its end. A second finish is a run finished twice.
func stepRun(state runState, op Op) []runState {
	switch op.Kind {
	case OpEnqueue:
		switch op.Result {
		case ResultOK:
			if state.Exists {
				return []runState{state}
			}
			return []runState{{Exists: true}}
		case ResultUnknown:
			if state.Exists {
				return []runState{state}
			}
			return []runState{state, {Exists: true}}
		}
		return nil
	case OpRead:
		switch {
		case op.Result == ResultNotFound:
			if !state.Exists {
				return []runState{state}
			}
		case active[op.Result]:
			if state.Exists && state.Final == "" {
				return []runState{state}
			}
		case terminal[op.Result]:
			if state.Exists && (state.Final == "" || state.Final == op.Result) {
				return []runState{{Exists: true, Final: op.Result}}
			}
		}
		return nil
	case OpCancel:
		ended := func() []runState {
			return []runState{{Exists: true, Final: "succeeded"}, {Exists: true, Final: "failed"}, {Exists: true, Final: "cancelled"}}
		}
		switch op.Result {
		case ResultOK:
			if state.Exists && state.Final == "" {
				return []runState{state, {Exists: true, Final: "cancelled"}}
			}
		case ResultFinished:
			if state.Exists && state.Final != "" {
				return []runState{state}
			}
			if state.Exists {
				return ended()
			}
		case ResultNotFound:
			if !state.Exists {
				return []runState{state}
			}
		case ResultUnknown:
			if !state.Exists || state.Final != "" {
				return []runState{state}
			}
			return []runState{state, {Exists: true, Final: "cancelled"}}
		}
		return nil
	case OpFinish:
		if state.Exists && state.Final == "" && terminal[op.Result] {
			return []runState{{Exists: true, Final: op.Result}}
		}
		return nil
	}
	return nil
}

// lifecycleModel is the porcupine model of one run's history.
var lifecycleModel = porcupine.NondeterministicModel{
	Init: func() []interface{} { return []interface{}{runState{}} },
	Step: func(state, input, output interface{}) []interface{} {
		op := input.(Op)
		next := stepRun(state.(runState), op)
		out := make([]interface{}, len(next))
		for i, s := range next {
			out[i] = s
		}
		return out
	},
	DescribeOperation: func(input, output interface{}) string { return input.(Op).String() },
	DescribeState:     func(state interface{}) string { return fmt.Sprintf("%+v", state.(runState)) },
}

// Porcupine's operations carry the whole Op as input; the output is
// unused (the result is part of the input, as the model needs both).
func porcupineOps(ops []Op) []porcupine.Operation {
	out := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		out = append(out, porcupine.Operation{ClientId: op.Client, Input: op, Call: op.Call, Output: nil, Return: op.Return})
	}
	return out
}

// Verdict is porcupine's answer for one run's history.
type Verdict struct {
	RunID  string
	Result porcupine.CheckResult
	Ops    []Op
}

// CheckLinearizable checks each run's history on its own (histories of
// different runs are independent) and returns the runs whose history is
// not linearizable, or could not be decided within timeout.
func CheckLinearizable(ops []Op, timeout time.Duration) (bad []Verdict, checked int) {
	byRun := map[string][]Op{}
	for _, op := range ops {
		byRun[op.RunID] = append(byRun[op.RunID], op)
	}
	ids := make([]string, 0, len(byRun))
	for id := range byRun {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	model := lifecycleModel.ToModel()
	for _, id := range ids {
		result := porcupine.CheckOperationsTimeout(model, porcupineOps(byRun[id]), timeout)
		if result != porcupine.Ok {
			bad = append(bad, Verdict{RunID: id, Result: result, Ops: byRun[id]})
		}
	}
	return bad, len(ids)
}
