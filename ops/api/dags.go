package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/ops/service"
	"github.com/daguha/daguha/ops/wire"
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

func (s *Server) pushDags(w http.ResponseWriter, r *http.Request) error {
	var req pushRequest
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxDagPushBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return invalid(fmt.Errorf("request body: %w", err))
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

func viewDag(dag service.Dag, withSource bool) DagView {
	spec := dag.Stored.GetSpec()
	view := DagView{
		Name: spec.GetName(), Description: spec.GetDescription(), Schedule: spec.GetSchedule(),
		WorkerSelector: spec.GetWorkerSelector(), Params: dagfile.FormatParams(spec.GetParams()),
		Steps: []DagStepView{}, LocalDags: []string{}, File: spec.GetSourceFile(),
		ContentHash: dag.Stored.GetContentHash(), UpdatedAt: timestamp(dag.Stored.GetUpdatedAtUnixNano()),
		CreateIndex: dag.Stored.GetCreateIndex(), ModifyIndex: dag.Stored.GetModifyIndex(),
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
		command := step.GetCommand()
		if commands := step.GetCommands(); len(commands) > 0 {
			// Dagu's command list: the commands run in turn, one a line.
			command = strings.Join(commands, "\n")
		}
		view.Steps = append(view.Steps, DagStepView{Name: step.GetName(), Command: command, Script: step.GetScript(), Depends: depends, ChildDag: step.GetChildDag()})
	}
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

func (s *Server) listDags(w http.ResponseWriter, r *http.Request) error {
	dags, err := s.service.Dags(r.Context(), stale(r))
	if err != nil {
		return err
	}
	body := struct {
		Dags []DagView `json:"dags"`
	}{Dags: []DagView{}}
	for _, dag := range dags {
		body.Dags = append(body.Dags, viewDag(dag, false))
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (s *Server) getDag(w http.ResponseWriter, r *http.Request) error {
	dag, err := s.service.GetDag(r.Context(), r.PathValue("name"), stale(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewDag(dag, true))
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
