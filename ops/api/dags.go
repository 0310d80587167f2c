package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/ops/service"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// maxDagPushBytes bounds one push of DAG files.
const maxDagPushBytes = 8 << 20

// DagSource is one DAG file: its name (for messages and the default DAG
// name) and its YAML text.
type DagSource = wire.DagSource

type pushRequest = wire.DagPush

// DagOutcome says what a push did with one DAG.
type DagOutcome = wire.DagOutcome

type pushResponse = wire.DagPushed

// pushDags stores DAG files (daguha's push: {"files": [...]}). The path
// is Dagu's create too: a body with Dagu's name or spec creates that one
// DAG and is answered as Dagu answers (201 {"name"}).
func (s *Server) pushDags(w http.ResponseWriter, r *http.Request) error {
	data, err := readBody(r, maxDagPushBytes)
	if err != nil {
		return err
	}
	keys := bodyKeys(data)
	if anyKey(keys, "name", "spec") {
		if keys["files"] {
			return invalid(errors.New("request body: send files (daguha's push) or name and spec (Dagu's create), not both"))
		}
		var req wire.DaguCreateDag
		if err := decodeStrict(data, &req); err != nil {
			return err
		}
		return s.writeDagCreated(w, r, req)
	}
	var req pushRequest
	if err := decodeStrict(data, &req); err != nil {
		return err
	}
	sources := make([]service.DagSource, 0, len(req.Files))
	for _, file := range req.Files {
		sources = append(sources, service.DagSource(file))
	}
	outcomes, err := s.service.PushDags(r.Context(), sources)
	if err != nil {
		return err
	}
	var body pushResponse
	for _, o := range outcomes {
		body.Dags = append(body.Dags, DagOutcome(o))
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// DagView is a stored DAG as the API lists it.
type DagView = wire.Dag

// DagStepView is a step of a DAG definition.
type DagStepView = wire.DagStep

// viewDagSteps is a definition's steps as the API shows them.
func viewDagSteps(steps []*daguhav1.StepSpec) []DagStepView {
	views := []DagStepView{}
	for _, step := range steps {
		depends := step.GetDepends()
		if depends == nil {
			depends = []string{}
		}
		command := step.GetCommand()
		if commands := step.GetCommands(); len(commands) > 0 {
			// Dagu's command list: the commands run in turn, one a line.
			command = strings.Join(commands, "\n")
		}
		views = append(views, DagStepView{Name: step.GetName(), Command: command, Script: step.GetScript(), Depends: depends,
			ChildDag: step.GetChildDag(), Parallel: step.GetParallel() != nil})
	}
	return views
}

func viewDag(dag service.Dag, withSource bool) DagView {
	spec := dag.Stored.GetSpec()
	view := DagView{
		Name: spec.GetName(), Description: spec.GetDescription(), Schedule: spec.GetSchedule(),
		WorkerSelector: spec.GetWorkerSelector(), Params: dagfile.FormatParams(spec.GetParams()),
		LocalDags: []string{}, File: spec.GetSourceFile(),
		ContentHash: dag.Stored.GetContentHash(), UpdatedAt: timestamp(dag.Stored.GetUpdatedAtUnixNano()),
		CreateIndex: dag.Stored.GetCreateIndex(), ModifyIndex: dag.Stored.GetModifyIndex(),
	}
	if view.Schedule == nil {
		view.Schedule = []string{}
	}
	if view.WorkerSelector == nil {
		view.WorkerSelector = map[string]string{}
	}
	view.Steps = viewDagSteps(spec.GetSteps())
	for _, local := range dag.Stored.GetLocalDags() {
		view.LocalDags = append(view.LocalDags, local.GetName())
	}
	if record := dag.Schedule; record != nil {
		view.LastScheduledSlot = timestamp(record.GetLastSlotUnix() * 1e9)
		view.LastScheduledRunID = record.GetLastRunId()
	}
	if withSource {
		view.Source = dag.Source()
	}
	return view
}

// listDags lists the stored DAGs by name. The path is Dagu's too: each
// DAG comes with Dagu's fields beside daguha's, and the list with Dagu's
// errors and pagination; Dagu's name, labels, sort, order, page and
// perPage apply (without page or perPage, every DAG is on one page).
func (s *Server) listDags(w http.ResponseWriter, r *http.Request) error {
	dags, newest, pagination, err := s.pagedDags(daguV2, r)
	if err != nil {
		return err
	}
	body := wire.SharedDagList{Dags: []wire.SharedDagItem{}, Errors: []string{}, Pagination: pagination}
	now := time.Now()
	for _, dag := range dags {
		body.Dags = append(body.Dags, wire.SharedDagItem{Dag: viewDag(dag, false), DaguDagFile: daguDagFile(apiV2, dag, newest[dag.Stored.GetSpec().GetName()], now)})
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// getDag is a stored DAG in detail, with Dagu's fields beside daguha's.
func (s *Server) getDag(w http.ResponseWriter, r *http.Request) error {
	dag, err := s.service.GetDag(r.Context(), r.PathValue("name"), stale(r))
	if err != nil {
		return err
	}
	newest, err := s.newestRunOf(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.SharedDagDetail{Dag: viewDag(dag, true), DaguDagDetail: daguDagDetail(apiV2, dag, newest, time.Now())})
	return nil
}

func (s *Server) deleteDag(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := s.service.DeleteDag(r.Context(), name); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.DagDeleted{Name: name, Result: "deleted"})
	return nil
}
