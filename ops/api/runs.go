package api

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

var (
	// dagNamePattern is the names Dagu accepts for DAGs (file-name safe).
	dagNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
	// runIDPattern keeps caller-chosen ids safe in URLs and file names.
	runIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)
)

type enqueueRequest struct {
	DagName  string `json:"dag_name"`
	DagRunID string `json:"dag_run_id"`
	Params   string `json:"params"`
}

type enqueueResponse struct {
	DagRunID string `json:"dag_run_id"`
	// Created is false when the run already existed (a retried request).
	Created bool `json:"created"`
}

func (req *enqueueRequest) validate() error {
	var problems []string
	if req.DagName == "" {
		problems = append(problems, "dag_name is required")
	} else if !dagNamePattern.MatchString(req.DagName) {
		problems = append(problems, fmt.Sprintf("dag_name %q must be 1-128 letters, digits, '_', '.' or '-'", req.DagName))
	}
	if req.DagRunID != "" && !runIDPattern.MatchString(req.DagRunID) {
		problems = append(problems, fmt.Sprintf("dag_run_id %q must be 1-128 letters, digits, '_', '.', ':' or '-'", req.DagRunID))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// enqueueRun records a new run. The server that accepts the request picks
// the run id (when the caller did not) and the enqueue time before the
// command goes to the leader, so retries of the command are identical.
func (s *Server) enqueueRun(w http.ResponseWriter, r *http.Request) {
	var req enqueueRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if err := req.validate(); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if req.DagRunID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			writeError(w, http.StatusInternalServerError, fmt.Errorf("make a run id: %w", err))
			return
		}
		req.DagRunID = id.String()
	}
	run := &daguhav1.Run{
		Id:                 req.DagRunID,
		DagName:            req.DagName,
		Params:             req.Params,
		EnqueuedAtUnixNano: s.now().UnixNano(),
	}
	result, _, err := s.cluster.Apply(r.Context(), fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{run}})
	if err != nil {
		writeClusterError(w, err)
		return
	}
	outcomes := result.(*daguhav1.EnqueueRunsResult).GetOutcomes()
	if len(outcomes) != 1 {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("enqueue returned %d outcomes for one run", len(outcomes)))
		return
	}
	outcome := outcomes[0]
	switch {
	case outcome.GetConflict() != "":
		writeError(w, http.StatusConflict, errors.New(outcome.GetConflict()))
	case outcome.GetCreated():
		writeJSON(w, http.StatusCreated, enqueueResponse{DagRunID: run.GetId(), Created: true})
	default:
		writeJSON(w, http.StatusOK, enqueueResponse{DagRunID: run.GetId()})
	}
}

// RunView is a run as the API shows it.
type RunView struct {
	DagName          string `json:"dag_name"`
	DagRunID         string `json:"dag_run_id"`
	Status           string `json:"status"`
	Params           string `json:"params"`
	EnqueuedAt       string `json:"enqueued_at"`
	RootDagRunName   string `json:"root_dag_run_name"`
	RootDagRunID     string `json:"root_dag_run_id"`
	ParentDagRunName string `json:"parent_dag_run_name"`
	ParentDagRunID   string `json:"parent_dag_run_id"`
	CreateIndex      uint64 `json:"create_index"`
	ModifyIndex      uint64 `json:"modify_index"`
}

// statusName is the lower-case status word the API uses.
func statusName(status daguhav1.RunStatus) string {
	name := strings.TrimPrefix(status.String(), "RUN_STATUS_")
	return strings.ToLower(name)
}

func viewRun(run *daguhav1.Run) RunView {
	return RunView{
		DagName:          run.GetDagName(),
		DagRunID:         run.GetId(),
		Status:           statusName(run.GetStatus()),
		Params:           run.GetParams(),
		EnqueuedAt:       time.Unix(0, run.GetEnqueuedAtUnixNano()).UTC().Format(time.RFC3339Nano),
		RootDagRunName:   run.GetRootDagRunName(),
		RootDagRunID:     run.GetRootDagRunId(),
		ParentDagRunName: run.GetParentDagRunName(),
		ParentDagRunID:   run.GetParentDagRunId(),
		CreateIndex:      run.GetCreateIndex(),
		ModifyIndex:      run.GetModifyIndex(),
	}
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("dag_run_id")
	if !stale(r) {
		if err := s.cluster.ConsistentRead(r.Context()); err != nil {
			writeClusterError(w, err)
			return
		}
	}
	run, err := s.cluster.FSM().State().Run(id)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if run == nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("no DAG run with id %q", id))
		return
	}
	writeJSON(w, http.StatusOK, viewRun(run))
}
