package fsm

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// Response is what Apply returns for a command: the result message, or the
// error the command met. Errors here are deterministic (every replica meets
// the same one); they reject the command, they do not stop the replica.
type Response struct {
	Type   MessageType
	Result proto.Message
	Err    error
}

// FSM implements raft.FSM over a store.StateStore.
type FSM struct {
	state atomic.Pointer[store.StateStore]

	// applied is the index of the last command applied (or restored);
	// changed is closed and replaced whenever it moves, to wake waiters.
	mu      sync.Mutex
	applied uint64
	changed chan struct{}
}

// New returns an FSM over an empty state store.
func New() (*FSM, error) {
	s, err := store.NewStateStore()
	if err != nil {
		return nil, err
	}
	f := &FSM{changed: make(chan struct{})}
	f.state.Store(s)
	return f, nil
}

// State returns the current state store. After a restore it is a new one,
// so callers fetch it for each read instead of keeping it.
func (f *FSM) State() *store.StateStore { return f.state.Load() }

// Apply applies one committed Raft entry. Raft calls it from one goroutine.
func (f *FSM) Apply(entry *raft.Log) interface{} {
	resp := f.apply(entry.Index, entry.Data)
	f.setApplied(entry.Index)
	return resp
}

func (f *FSM) apply(index uint64, command []byte) *Response {
	if len(command) == 0 {
		panic(fmt.Errorf("fsm: entry %d: %w", index, ErrEmptyCommand))
	}
	t := MessageType(command[0])
	body := commandBody(t)
	if body == nil {
		if t&IgnoreUnknown != 0 {
			return &Response{Type: t}
		}
		panic(fmt.Errorf("fsm: entry %d: unknown command type %d; refusing to diverge from the other replicas", index, t))
	}
	if err := proto.Unmarshal(command[1:], body); err != nil {
		panic(fmt.Errorf("fsm: entry %d: decode command type %d: %w", index, t, err))
	}
	result, err := f.dispatch(index, body)
	if err != nil {
		return &Response{Type: t, Err: err}
	}
	return &Response{Type: t, Result: result}
}

// dispatch calls the one state-store method of each command type.
func (f *FSM) dispatch(index uint64, body proto.Message) (proto.Message, error) {
	state := f.State()
	switch cmd := body.(type) {
	case *daguhav1.NoopCommand:
		return &daguhav1.NoopResult{}, nil
	case *daguhav1.EnqueueRunsCommand:
		outcomes, err := state.EnqueueRuns(index, cmd.GetRuns())
		return &daguhav1.EnqueueRunsResult{Outcomes: outcomes}, err
	case *daguhav1.GrantLeasesCommand:
		outcomes, err := state.GrantLeases(index, cmd.GetGrants())
		return &daguhav1.GrantLeasesResult{Outcomes: outcomes}, err
	case *daguhav1.ReclaimRunsCommand:
		outcomes, err := state.ReclaimRuns(index, cmd.GetReclaims())
		return &daguhav1.ReclaimRunsResult{Outcomes: outcomes}, err
	case *daguhav1.ReportStepsCommand:
		outcomes, err := state.ReportSteps(index, cmd.GetReports())
		return &daguhav1.ReportStepsResult{Outcomes: outcomes}, err
	case *daguhav1.FinishRunsCommand:
		outcomes, err := state.FinishRuns(index, cmd.GetFinishes())
		return &daguhav1.FinishRunsResult{Outcomes: outcomes}, err
	case *daguhav1.CancelRunsCommand:
		outcomes, err := state.CancelRuns(index, cmd.GetRunIds(), cmd.GetNowUnixNano())
		return &daguhav1.CancelRunsResult{Outcomes: outcomes}, err
	case *daguhav1.RegisterWorkersCommand:
		return &daguhav1.RegisterWorkersResult{}, state.RegisterWorkers(index, cmd.GetWorkers())
	case *daguhav1.MarkWorkersOfflineCommand:
		reclaimed, ended, err := state.MarkWorkersOffline(index, cmd.GetWorkerIds(), cmd.GetReason(), cmd.GetNowUnixNano())
		return &daguhav1.MarkWorkersOfflineResult{ReclaimedRunIds: reclaimed, EndedCancelled: ended}, err
	case *daguhav1.RemoveWorkersCommand:
		return &daguhav1.RemoveWorkersResult{}, state.RemoveWorkers(index, cmd.GetWorkerIds())
	case *daguhav1.SetClusterMetaCommand:
		meta, err := state.SetClusterMeta(index, cmd.GetMeta())
		return &daguhav1.SetClusterMetaResult{Meta: meta}, err
	case *daguhav1.PutDagsCommand:
		outcomes, err := state.PutDags(index, cmd.GetDags(), cmd.GetNowUnixNano())
		return &daguhav1.PutDagsResult{Outcomes: outcomes}, err
	case *daguhav1.DeleteDagsCommand:
		deleted, err := state.DeleteDags(index, cmd.GetNames(), cmd.GetIfContentHash())
		return &daguhav1.DeleteDagsResult{Deleted: deleted}, err
	case *daguhav1.FireSchedulesCommand:
		outcomes, err := state.FireSchedules(index, cmd.GetFirings())
		return &daguhav1.FireSchedulesResult{Outcomes: outcomes}, err
	case *daguhav1.PruneRunsCommand:
		pruned, removed, err := state.PruneRuns(index, cmd.GetRootRunIds(), cmd.GetEndedBeforeUnixNano())
		return &daguhav1.PruneRunsResult{PrunedRootRunIds: pruned, RunsRemoved: removed}, err
	case *daguhav1.RetryRunsCommand:
		outcomes, err := state.RetryRuns(index, cmd.GetRetries())
		return &daguhav1.RetryRunsResult{Outcomes: outcomes}, err
	case *daguhav1.DequeueRunsCommand:
		outcomes, err := state.DequeueRuns(index, cmd.GetRunIds(), cmd.GetNowUnixNano())
		return &daguhav1.DequeueRunsResult{Outcomes: outcomes}, err
	}
	panic(fmt.Errorf("fsm: entry %d: command %T has no apply method", index, body))
}

func (f *FSM) setApplied(index uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if index <= f.applied {
		return
	}
	f.applied = index
	close(f.changed)
	f.changed = make(chan struct{})
}

// LastApplied returns the index of the last command this FSM applied.
func (f *FSM) LastApplied() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// WaitApplied blocks until the FSM has applied index, or ctx ends.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.mu.Lock()
		applied, changed := f.applied, f.changed
		f.mu.Unlock()
		if applied >= index {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for index %d (applied %d): %w", index, applied, ctx.Err())
		}
	}
}

// Snapshot captures the state for Raft. It is cheap: the state store's
// snapshot is immutable, and Persist streams it while Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{state: f.State().Snapshot(), lastApplied: f.LastApplied()}, nil
}

// Restore replaces the state with a snapshot's. The new store is built
// aside and swapped in only once the whole stream has been read.
func (f *FSM) Restore(reader io.ReadCloser) error {
	defer reader.Close()
	state, lastApplied, err := ReadSnapshot(reader)
	if err != nil {
		return err
	}
	f.state.Store(state)
	f.mu.Lock()
	f.applied = lastApplied
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	return nil
}
