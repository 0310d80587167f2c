package service

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/dispatch/valid"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// InlineStep is a step of a DAG sent inline with an enqueue.
type InlineStep struct {
	Name    string
	Command string
}

// InlineDag is a DAG sent inline with an enqueue. Both of Dagu's
// spellings of the selector key come in: at most one may be used.
type InlineDag struct {
	Name        string
	Description string
	// WorkerSelector is the selector as workerSelector,
	// WorkerSelectorEscape as worker_selector.
	WorkerSelector       map[string]string
	WorkerSelectorEscape map[string]string
	Steps                []InlineStep
}

// EnqueueRequest asks for a run of a DAG: a stored one by name, one sent
// inline (Dag), or the first DAG of a whole file (Yaml). Messages name
// the fields as the API spells them.
type EnqueueRequest struct {
	DagName  string
	DagRunID string
	Params   string
	Dag      *InlineDag
	// Yaml is a whole DAG file (Dagu's YAML, several documents allowed):
	// its first DAG runs, the others are its local DAGs. File names it in
	// messages and gives the DAG its default name.
	Yaml string
	File string
	// ParentDagRunID makes this run a child of an existing run: its
	// parent is that run and its root is the parent's root.
	ParentDagRunID string
	// Queue, when set, puts the run in that queue instead of its DAG's
	// (Dagu's enqueue --queue).
	Queue string
	// Singleton refuses the run, as a Conflict, while another run of the
	// DAG is active (Dagu's singleton). The check and the enqueue are two
	// steps: two requests at the same moment may both pass.
	Singleton Singleton
}

// Singleton says which runs of the same DAG refuse an enqueue.
type Singleton int

const (
	// NotSingleton refuses nothing.
	NotSingleton Singleton = iota
	// SingletonRunning refuses while a run of the DAG is running.
	SingletonRunning
	// SingletonActive refuses while a run of the DAG is queued or running.
	SingletonActive
)

// Enqueued is what an enqueue did.
type Enqueued struct {
	RunID string
	// Created is false when the run already existed (a retried request).
	Created bool
}

// EnqueueResult is what became of one request of EnqueueMany.
type EnqueueResult struct {
	Enqueued Enqueued
	Err      error
}

// enqueueManyAtOnce bounds the requests of one EnqueueMany in flight: as
// many as the enqueue batcher takes in one entry, so a bulk enqueue of a
// thousand runs is a few dozen Raft entries.
const enqueueManyAtOnce = enqueueBatchMax

// EnqueueMany enqueues each request as Enqueue does, several at a time so
// the enqueue batcher writes them in few Raft entries, and returns their
// results in the requests' order. Each request stands alone: one refused
// takes nothing from the others.
func (s *Service) EnqueueMany(ctx context.Context, reqs []EnqueueRequest) []EnqueueResult {
	results := make([]EnqueueResult, len(reqs))
	// One read index for the whole batch: every request's reads of stored
	// DAGs and parents then see at least what was acknowledged before the
	// batch came, without a leader round trip each.
	if err := s.cluster.ConsistentRead(ctx); err != nil {
		for i := range results {
			results[i].Err = err
		}
		return results
	}
	ctx = context.WithValue(ctx, readDone{}, true)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(enqueueManyAtOnce, len(reqs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				enqueued, err := s.Enqueue(ctx, reqs[i])
				results[i] = EnqueueResult{Enqueued: enqueued, Err: err}
			}
		}()
	}
	for i := range reqs {
		next <- i
	}
	close(next)
	wg.Wait()
	return results
}

// readDone marks a context whose caller has made a consistent read
// already (EnqueueMany, once for its batch).
type readDone struct{}

// consistentOf is cluster.ConsistentReadOf, unless ctx says the caller
// has read already.
func (s *Service) consistentOf(ctx context.Context, tables ...string) error {
	if done, _ := ctx.Value(readDone{}).(bool); done {
		return nil
	}
	return s.cluster.ConsistentReadOf(ctx, tables...)
}

// checkRunID says what is wrong with a caller's run id, if anything
// ("" is none: the server picks one).
func checkRunID(id string) error {
	if id == "" {
		return nil
	}
	if err := valid.RunID(id); err != nil {
		return fmt.Errorf("dag_run_id: %w", err)
	}
	return nil
}

// validate checks the request and returns the DAG to run; every problem is
// reported, each naming the field. The rules are package valid's, as for
// DAG files and workers' labels.
func (req *EnqueueRequest) validate() (*daguhav1.DagSpec, error) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if req.Dag != nil && req.DagName == "" {
		req.DagName = req.Dag.Name
	}
	if req.DagName == "" {
		add("dag_name is required (or dag.name with an inline dag)")
	} else if err := valid.DagName(req.DagName); err != nil {
		add("dag_name: %v", err)
	}
	if err := checkRunID(req.DagRunID); err != nil {
		add("%v", err)
	}
	if err := checkRequestSizes(req); err != nil {
		add("%v", err)
	}
	if req.Dag == nil {
		if len(problems) > 0 {
			return nil, errors.New(strings.Join(problems, "; "))
		}
		// A stored DAG, looked up by the caller.
		return nil, nil
	}
	dag := req.Dag
	if dag.Name != "" && dag.Name != req.DagName {
		add("dag_name %s and dag.name %s differ", valid.Quote(req.DagName), valid.Quote(dag.Name))
	}
	selector := dag.WorkerSelector
	field := "dag.workerSelector"
	if len(dag.WorkerSelectorEscape) > 0 {
		if len(selector) > 0 {
			add("dag has both workerSelector and worker_selector; use one")
		}
		selector, field = dag.WorkerSelectorEscape, "dag.worker_selector"
	}
	if err := valid.LabelCount(len(selector)); err != nil {
		add("%s: %v", field, err)
	} else {
		keys := make([]string, 0, len(selector))
		for key := range selector {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			// Selectors are queued under "k=v,k=v" and workers give their
			// labels in that form: the rules keep the two in step.
			if err := valid.LabelKey(key); err != nil {
				add("%s: %v", field, err)
			} else if err := valid.LabelValue(key, selector[key]); err != nil {
				add("%s: %v", field, err)
			}
		}
	}
	if err := valid.StepCount(len(dag.Steps)); err != nil {
		add("dag.steps: %v", err)
		// Too many steps are not read one by one.
		return nil, errors.New(strings.Join(problems, "; "))
	}
	spec := &daguhav1.DagSpec{Name: req.DagName, WorkerSelector: selector}
	seen := map[string]bool{}
	for i, step := range dag.Steps {
		switch err := valid.StepName(step.Name); {
		case err != nil:
			add("dag.steps[%d].name: %v", i, err)
		case seen[step.Name]:
			add("dag.steps[%d].name %s is used by an earlier step", i, valid.Quote(step.Name))
		}
		seen[step.Name] = true
		if strings.TrimSpace(step.Command) == "" {
			add("dag.steps[%d] (%s) has no command", i, valid.Quote(step.Name))
		} else if err := valid.Command(step.Command); err != nil {
			add("dag.steps[%d] (%s): %v", i, valid.Quote(step.Name), err)
		}
		// An inline DAG's steps run in the order given, as a chain.
		stepSpec := &daguhav1.StepSpec{Name: step.Name, Command: step.Command}
		if i > 0 {
			stepSpec.Depends = []string{dag.Steps[i-1].Name}
		}
		spec.Steps = append(spec.Steps, stepSpec)
	}
	if len(problems) == 0 {
		if err := valid.DagSize(proto.Size(spec)); err != nil {
			add("dag: %v", err)
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return spec, nil
}

// checkRequestSizes checks the parts of an enqueue that every form of it
// has: params and the parent's run id.
func checkRequestSizes(req *EnqueueRequest) error {
	if err := valid.Params(req.Params); err != nil {
		return err
	}
	if req.ParentDagRunID != "" {
		if err := valid.RunID(req.ParentDagRunID); err != nil {
			return fmt.Errorf("parent_dag_run_id: %w", err)
		}
	}
	return nil
}

// Enqueue records a new run. This server picks the run id (when the
// caller did not) and the enqueue time before the command goes to the
// leader, so retries of the command are identical. The same run id sent
// again with the same input is the same run (Created false); with other
// input it is a Conflict.
func (s *Service) Enqueue(ctx context.Context, req EnqueueRequest) (Enqueued, error) {
	spec, locals, err := s.resolveDag(ctx, &req)
	if err != nil {
		return Enqueued{}, err
	}
	if _, err := dagfile.ResolveParams(spec, req.Params); err != nil {
		return Enqueued{}, errorf(Invalid, "params %q: %w", req.Params, err)
	}
	if req.Queue != "" && req.Queue != spec.GetQueue() {
		if err := valid.QueueName(req.Queue); err != nil {
			return Enqueued{}, errorf(Invalid, "queue: %w", err)
		}
		// The run keeps its own copy of the DAG: the stored one stays.
		spec = proto.CloneOf(spec)
		spec.Queue = req.Queue
	}
	if err := s.checkSingleton(ctx, req); err != nil {
		return Enqueued{}, err
	}
	if req.DagRunID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return Enqueued{}, errorf(Internal, "make a run id: %w", err)
		}
		req.DagRunID = id.String()
	}
	run := &daguhav1.Run{
		Id:                 req.DagRunID,
		DagName:            req.DagName,
		Params:             req.Params,
		EnqueuedAtUnixNano: s.now().UnixNano(),
		Dag:                spec,
		LocalDags:          locals,
		// A root run is its own root, as in the seed's running_tasks.
		RootDagRunName: req.DagName,
		RootDagRunId:   req.DagRunID,
	}
	if req.ParentDagRunID != "" {
		if err := s.consistentOf(ctx); err != nil {
			return Enqueued{}, err
		}
		parent, err := s.cluster.FSM().State().Run(req.ParentDagRunID)
		if err != nil {
			return Enqueued{}, errorOf(Internal, err)
		}
		if parent == nil {
			return Enqueued{}, errorf(Invalid, "parent_dag_run_id %q: no such run", req.ParentDagRunID)
		}
		run.ParentDagRunName, run.ParentDagRunId = parent.GetDagName(), parent.GetId()
		run.RootDagRunName, run.RootDagRunId = dispatch.RootOf(parent)
	}
	if ackBeforeCommit {
		s.enqueueUncommitted(run)
		return Enqueued{RunID: run.GetId(), Created: true}, nil
	}
	return s.enqueueRun(ctx, run)
}

// enqueueRun writes one run and says what became of it: created, there
// already (the same run sent again), or a Conflict naming how it differs.
func (s *Service) enqueueRun(ctx context.Context, run *daguhav1.Run) (Enqueued, error) {
	outcome, err := s.enqueue(ctx, run)
	if err != nil {
		return Enqueued{}, err
	}
	switch {
	case outcome.GetConflict() != "":
		return Enqueued{}, errorOf(Conflict, errors.New(outcome.GetConflict()))
	case outcome.GetCreated():
		s.metrics.RunEnqueued()
		return Enqueued{RunID: run.GetId(), Created: true}, nil
	}
	return Enqueued{RunID: run.GetId()}, nil
}

// resolveDag returns the DAG an enqueue runs, with its local DAGs: the
// file's first DAG, the inline one, or the stored one the request names.
// It checks the request on the way and sets req.DagName.
func (s *Service) resolveDag(ctx context.Context, req *EnqueueRequest) (*daguhav1.DagSpec, []*daguhav1.DagSpec, error) {
	if req.Yaml != "" {
		if req.Dag != nil {
			return nil, nil, errorOf(Invalid, errors.New("send either yaml or dag, not both"))
		}
		if err := checkRunID(req.DagRunID); err != nil {
			return nil, nil, errorOf(Invalid, err)
		}
		if err := checkRequestSizes(req); err != nil {
			return nil, nil, errorOf(Invalid, err)
		}
		// ParseDags reads only stored DAGs (a run/call of one).
		if err := s.consistentOf(ctx, store.TableDags); err != nil {
			return nil, nil, err
		}
		name := req.File
		if name == "" {
			name = "request.yaml"
		}
		files, err := ParseDags(s.cluster.FSM().State(), []DagSource{{Name: name, Content: req.Yaml}})
		if err != nil {
			return nil, nil, errorOf(Invalid, err)
		}
		spec := files[0].Dags[0]
		if req.DagName != "" && req.DagName != spec.GetName() {
			return nil, nil, errorf(Invalid, "dag_name %q and the file's DAG %q differ", req.DagName, spec.GetName())
		}
		req.DagName = spec.GetName()
		return spec, files[0].Dags[1:], nil
	}
	spec, err := req.validate()
	if err != nil {
		return nil, nil, errorOf(Invalid, err)
	}
	if spec != nil {
		return spec, nil, nil
	}
	// A read of the DAG table alone: through a follower it need not wait
	// for the runs written meanwhile (cluster.Server.ConsistentReadOf).
	if err := s.consistentOf(ctx, store.TableDags); err != nil {
		return nil, nil, err
	}
	stored, err := s.cluster.FSM().State().Dag(req.DagName)
	if err != nil {
		return nil, nil, errorOf(Internal, err)
	}
	if stored == nil {
		return nil, nil, errorf(NotFound, "no DAG named %q is stored (push it with daguha dag push, or send the file in \"yaml\")", req.DagName)
	}
	return stored.GetSpec(), stored.GetLocalDags(), nil
}

// enqueueUncommitted is the enqueue of the chaos_broken_ack build (see
// ackBeforeCommit), wrong on purpose: the caller is told "created" at
// once while the command goes to Raft in the background, for two seconds
// at most. The line it logs when the background write ends lets a test
// wait for the write to be given up before it heals a partition.
func (s *Service) enqueueUncommitted(run *daguhav1.Run) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _, err := s.cluster.Apply(ctx, fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{run}})
		s.logger.Warn("chaos_broken_ack: background enqueue ended", "run", run.GetId(), "error", err)
	}()
}
