package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/dispatch/valid"
	"github.com/daguha/daguha/fsm"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// maxDagPushBytes bounds one push of DAG files.
const maxDagPushBytes = 8 << 20

// The bodies of a push are the wire types (ops/wire).
type (
	DagSource    = wire.DagSource
	DagOutcome   = wire.DagOutcome
	pushRequest  = wire.DagPush
	pushResponse = wire.DagPushed
)

// ParseDags parses DAG files and checks them together against the stored
// DAGs: every problem of every file is reported, each with its file and
// line. A run/call step may name a DAG of its own file, of another file
// of the same push, or a stored one.
func ParseDags(state *store.StateStore, sources []DagSource) ([]*dagfile.File, error) {
	var (
		problems dagfile.Problems
		other    []string
		files    []*dagfile.File
	)
	// Which DAGs the push defines comes first, so that a file may call a
	// DAG of a file after it; each file is then parsed and checked once,
	// with every problem it has.
	byName := map[string]string{}
	for _, source := range sources {
		if f, err := dagfile.Parse(source.Name, []byte(source.Content)); err == nil {
			if _, dup := byName[f.Dags[0].GetName()]; !dup {
				byName[f.Dags[0].GetName()] = source.Name
			}
		}
	}
	known := func(name string) bool {
		if _, ok := byName[name]; ok {
			return true
		}
		stored, err := state.Dag(name)
		return err == nil && stored != nil
	}
	defined := map[string]string{}
	for _, source := range sources {
		file, err := dagfile.Check(source.Name, []byte(source.Content), known)
		if err != nil {
			var p dagfile.Problems
			if errors.As(err, &p) {
				problems = append(problems, p...)
			} else {
				other = append(other, err.Error())
			}
			continue
		}
		name := file.Dags[0].GetName()
		if first, dup := defined[name]; dup {
			problems = append(problems, dagfile.Problem{File: source.Name, Line: 1, Key: "name",
				Message: fmt.Sprintf("DAG %q is also defined by %s in this push", name, first)})
			continue
		}
		defined[name] = source.Name
		files = append(files, file)
	}
	if len(problems) > 0 || len(other) > 0 {
		return nil, &dagErrors{problems: problems, other: other}
	}
	return files, nil
}

// dagErrors is every problem a set of DAG files has.
type dagErrors struct {
	problems dagfile.Problems
	other    []string
}

func (e *dagErrors) Error() string {
	lines := append([]string(nil), e.other...)
	for _, p := range e.problems {
		lines = append(lines, p.Error())
	}
	return strings.Join(lines, "\n")
}

// PushDags stores DAG files in the replicated state: a DAG whose content
// is unchanged is left as it is. Invalid files are refused, all of them
// together, with every problem.
func (s *Server) PushDags(ctx context.Context, sources []DagSource) ([]DagOutcome, error) {
	if len(sources) == 0 {
		return nil, &badRequest{errors.New("no DAG files given")}
	}
	if err := s.cluster.ConsistentRead(ctx); err != nil {
		return nil, err
	}
	files, err := ParseDags(s.cluster.FSM().State(), sources)
	if err != nil {
		return nil, &badRequest{err}
	}
	// The DAGs go in commands of at most valid.MaxBatchBytes each, so a
	// command forwarded to the leader fits in one message (a DAG is at
	// most valid.MaxDagBytes). Should a later command fail, the earlier
	// ones stay applied: pushing again stores the rest.
	now := s.now().UnixNano()
	var commands []*daguhav1.PutDagsCommand
	batchBytes := 0
	fileOf := map[string]string{}
	for _, file := range files {
		stored := file.Stored()
		size := proto.Size(stored)
		if len(commands) == 0 || batchBytes > 0 && batchBytes+size > valid.MaxBatchBytes {
			commands = append(commands, &daguhav1.PutDagsCommand{NowUnixNano: now})
			batchBytes = 0
		}
		cmd := commands[len(commands)-1]
		cmd.Dags = append(cmd.Dags, stored)
		batchBytes += size
		fileOf[file.Dags[0].GetName()] = file.Path
	}
	var outcomes []DagOutcome
	for _, cmd := range commands {
		result, _, err := s.cluster.Apply(ctx, fsm.PutDagsType, cmd)
		if err != nil {
			return nil, err
		}
		for _, o := range result.(*daguhav1.PutDagsResult).GetOutcomes() {
			outcomes = append(outcomes, DagOutcome{Name: o.GetName(), File: fileOf[o.GetName()], Result: o.GetResult()})
		}
	}
	return outcomes, nil
}

// badRequest marks an error that is the caller's input.
type badRequest struct{ err error }

func (e *badRequest) Error() string { return e.err.Error() }
func (e *badRequest) Unwrap() error { return e.err }

func (s *Server) pushDags(w http.ResponseWriter, r *http.Request) {
	var req pushRequest
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxDagPushBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
		return
	}
	outcomes, err := s.PushDags(r.Context(), req.Files)
	var bad *badRequest
	switch {
	case errors.As(err, &bad):
		writeError(w, http.StatusBadRequest, bad.err)
	case err != nil:
		writeClusterError(w, err)
	default:
		writeJSON(w, http.StatusOK, pushResponse{Dags: outcomes})
	}
}

// The API's views of stored DAGs are the wire types (ops/wire).
type (
	DagView     = wire.Dag
	DagStepView = wire.DagStep
)

func viewDag(state *store.StateStore, dag *daguhav1.StoredDag, withSource bool) DagView {
	spec := dag.GetSpec()
	view := DagView{
		Name: spec.GetName(), Description: spec.GetDescription(), Schedule: spec.GetSchedule(),
		WorkerSelector: spec.GetWorkerSelector(), Params: dagfile.FormatParams(spec.GetParams()),
		Steps: []DagStepView{}, LocalDags: []string{}, File: spec.GetSourceFile(),
		ContentHash: dag.GetContentHash(), UpdatedAt: timestamp(dag.GetUpdatedAtUnixNano()),
		CreateIndex: dag.GetCreateIndex(), ModifyIndex: dag.GetModifyIndex(),
	}
	if view.Schedule == nil {
		view.Schedule = []string{}
	}
	if view.WorkerSelector == nil {
		view.WorkerSelector = map[string]string{}
	}
	for _, step := range spec.GetSteps() {
		depends := step.GetDepends()
		if depends == nil {
			depends = []string{}
		}
		view.Steps = append(view.Steps, DagStepView{Name: step.GetName(), Command: step.GetCommand(), Script: step.GetScript(), Depends: depends, ChildDag: step.GetChildDag()})
	}
	for _, local := range dag.GetLocalDags() {
		view.LocalDags = append(view.LocalDags, local.GetName())
	}
	if record, err := state.Schedule(spec.GetName()); err == nil && record != nil {
		view.LastScheduledSlot = timestamp(record.GetLastSlotUnix() * 1e9)
		view.LastScheduledRunID = record.GetLastRunId()
	}
	if withSource {
		view.Source = dag.GetSource()
	}
	return view
}

func (s *Server) listDags(w http.ResponseWriter, r *http.Request) {
	if !s.readBarrier(w, r) {
		return
	}
	state := s.cluster.FSM().State()
	body := wire.DagList{Dags: []DagView{}}
	_ = state.EachDag(func(dag *daguhav1.StoredDag) bool {
		body.Dags = append(body.Dags, viewDag(state, dag, false))
		return true
	})
	sort.Slice(body.Dags, func(i, j int) bool { return body.Dags[i].Name < body.Dags[j].Name })
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) getDag(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !s.readBarrier(w, r) {
		return
	}
	state := s.cluster.FSM().State()
	dag, err := state.Dag(name)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if dag == nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("no DAG named %q is stored", name))
		return
	}
	writeJSON(w, http.StatusOK, viewDag(state, dag, true))
}

// DeleteDagsIf deletes each named DAG while its stored content hash is
// the one given (a hex SHA-256 of its file, as pushed), and returns the
// names it deleted: a DAG stored again since, from other content, stays.
func (s *Server) DeleteDagsIf(ctx context.Context, hashes map[string]string) ([]string, error) {
	if len(hashes) == 0 {
		return nil, nil
	}
	cmd := &daguhav1.DeleteDagsCommand{IfContentHash: hashes}
	for name := range hashes {
		cmd.Names = append(cmd.Names, name)
	}
	sort.Strings(cmd.Names)
	result, _, err := s.cluster.Apply(ctx, fsm.DeleteDagsType, cmd)
	if err != nil {
		return nil, err
	}
	return result.(*daguhav1.DeleteDagsResult).GetDeleted(), nil
}

func (s *Server) deleteDag(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !utf8.ValidString(name) {
		// No DAG has such a name, and no command can carry it.
		writeError(w, http.StatusNotFound, fmt.Errorf("no DAG named %q is stored (not UTF-8)", name))
		return
	}
	result, _, err := s.cluster.Apply(r.Context(), fsm.DeleteDagsType, &daguhav1.DeleteDagsCommand{Names: []string{name}})
	if err != nil {
		writeClusterError(w, err)
		return
	}
	if len(result.(*daguhav1.DeleteDagsResult).GetDeleted()) == 0 {
		writeError(w, http.StatusNotFound, fmt.Errorf("no DAG named %q is stored", name))
		return
	}
	writeJSON(w, http.StatusOK, wire.DagDeleted{Name: name, Result: "deleted"})
}
