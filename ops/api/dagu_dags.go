package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/daguha/daguha/ops/service"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's calls on DAGs, its health and its workers.

// daguHealth is Dagu's health call under /api/v1: "healthy" (200) once
// this server knows a leader, "unhealthy" (503) before. It needs no token.
func (s *Server) daguHealth(w http.ResponseWriter, _ *http.Request) {
	leader, _ := s.cluster.Leader()
	body := wire.DaguHealth{Status: "healthy", Version: s.version, Uptime: int64(time.Since(s.started).Seconds()), Timestamp: time.Now().UTC().Format(time.RFC3339)}
	if leader == "" {
		body.Status = "unhealthy"
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// daguHealthStatus is a worker's health as Dagu words it: Dagu has no
// offline worker (it forgets them), so an offline one is unhealthy.
func daguHealthStatus(health string) string {
	if health == "OFFLINE" {
		return "unhealthy"
	}
	return strings.ToLower(health)
}

// daguWorkers is Dagu's worker list: the leader's view, as GET
// /api/v2/workers.
func (s *Server) daguWorkers(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		view := func() any {
			body := wire.DaguWorkers{Workers: []wire.DaguWorker{}, Errors: []string{}}
			for _, worker := range s.service.Workers() {
				view := wire.DaguWorker{
					ID: worker.Worker.GetId(), Labels: worker.Worker.GetLabels(), TotalPollers: int(worker.Worker.GetMaxActiveRuns()),
					BusyPollers: len(worker.Running), RunningTasks: []wire.DaguRunningTask{},
					LastHeartbeatAt: daguTimeOf(worker.LastHeartbeat), HealthStatus: daguHealthStatus(worker.Health),
				}
				if view.Labels == nil {
					view.Labels = map[string]string{}
				}
				for _, run := range worker.Running {
					view.RunningTasks = append(view.RunningTasks, wire.DaguRunningTask{
						DagRunID: run.GetId(), DagName: run.GetDagName(), StartedAt: daguTime(run.GetStartedAtUnixNano()),
						RootDagRunName: run.GetRootDagRunName(), RootDagRunID: run.GetRootDagRunId(),
						ParentDagRunName: run.GetParentDagRunName(), ParentDagRunID: run.GetParentDagRunId(),
					})
				}
				sort.Slice(view.RunningTasks, func(i, j int) bool { return view.RunningTasks[i].StartedAt < view.RunningTasks[j].StartedAt })
				body.Workers = append(body.Workers, view)
			}
			return body
		}
		if !stale(r) && !s.cluster.IsLeader() {
			return s.forwardToLeader(w, r, view)
		}
		writeJSON(w, http.StatusOK, view())
		return nil
	}
}

func daguTimeOf(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return daguTime(t.UnixNano())
}

// readBody reads a request body of at most limit bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		return nil, invalid(fmt.Errorf("request body: %w", err))
	}
	return data, nil
}

// decodeStrict decodes a JSON body as decodeJSON does: unknown fields and
// trailing data are errors.
func decodeStrict(data []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return invalid(fmt.Errorf("request body: %w", err))
	}
	if dec.More() {
		return invalid(errors.New("request body: more than one JSON value"))
	}
	return nil
}

// bodyKeys are the top-level keys of a JSON object body (none for
// anything else: the strict decode that follows says what is wrong).
func bodyKeys(data []byte) map[string]bool {
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(data, &fields)
	keys := map[string]bool{}
	for key := range fields {
		keys[key] = true
	}
	return keys
}

// anyKey says whether keys has one of names.
func anyKey(keys map[string]bool, names ...string) bool {
	for _, name := range names {
		if keys[name] {
			return true
		}
	}
	return false
}

// decodeDagu reads a body of Dagu's of at most limit bytes.
func decodeDagu(r *http.Request, limit int64, out any) error {
	data, err := readBody(r, limit)
	if err != nil {
		return err
	}
	return decodeStrict(data, out)
}

// dagParam is the DAG named in the path: Dagu's {fileName} (daguha keeps
// DAGs by name, the name a file without a name: key gets from its file).
func dagParam(r *http.Request) string {
	if name := r.PathValue("fileName"); name != "" {
		return name
	}
	return r.PathValue("name")
}

// intParam reads an integer query parameter from low to high; absent is
// fallback.
func intParam(r *http.Request, name string, low, high, fallback int) (int, error) {
	text := r.URL.Query().Get(name)
	if text == "" {
		return fallback, nil
	}
	n, err := strconv.Atoi(text)
	if err != nil || n < low || n > high {
		return 0, invalid(fmt.Errorf("%s %q: want a number from %d to %d", name, text, low, high))
	}
	return n, nil
}

// dagListQuery is how Dagu's DAG list is filtered, sorted and paged.
type dagListQuery struct {
	name          string
	labels        []string
	byNextRun     bool
	descending    bool
	page, perPage int
	// all: one page with every DAG (daguha's list under /api/v2 when no
	// page is asked for).
	all bool
}

func parseDagListQuery(d dialect, r *http.Request) (dagListQuery, error) {
	query := r.URL.Query()
	q := dagListQuery{name: query.Get("name"), all: d.shared && query.Get("page") == "" && query.Get("perPage") == ""}
	var err error
	if q.page, err = intParam(r, "page", 1, 1_000_000, 1); err != nil {
		return q, err
	}
	if q.perPage, err = intParam(r, "perPage", 1, 1000, 50); err != nil {
		return q, err
	}
	labels, tags := query.Get("labels"), query.Get("tags")
	if labels != "" && tags != "" {
		return q, invalid(errors.New("labels and tags: send one (tags is the old name of labels)"))
	}
	for _, label := range strings.Split(labels+tags, ",") {
		if label = strings.TrimSpace(label); label != "" {
			q.labels = append(q.labels, label)
		}
	}
	switch sortBy := query.Get("sort"); sortBy {
	case "", "name":
	case "nextRun":
		q.byNextRun = true
	default:
		return q, invalid(fmt.Errorf("sort %q: want name or nextRun", sortBy))
	}
	switch order := query.Get("order"); order {
	case "", "asc":
	case "desc":
		q.descending = true
	default:
		return q, invalid(fmt.Errorf("order %q: want asc or desc", order))
	}
	if len(q.name) > 1024 || len(q.labels) > 64 {
		return q, invalid(errors.New("name or labels: too long"))
	}
	return q, nil
}

// hasLabels says whether a DAG has every label asked for: "key=value"
// matches that label, "key" any label of that key.
func hasLabels(spec *daguhav1.DagSpec, wanted []string) bool {
	for _, want := range wanted {
		found := false
		for _, label := range spec.GetLabels() {
			key, _, _ := strings.Cut(label, "=")
			if label == want || key == want {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// pagedDags are the stored DAGs Dagu's list shows, with their newest runs
// and the page they make.
func (s *Server) pagedDags(d dialect, r *http.Request) ([]service.Dag, map[string]*daguhav1.Run, wire.DaguPagination, error) {
	q, err := parseDagListQuery(d, r)
	if err != nil {
		return nil, nil, wire.DaguPagination{}, err
	}
	dags, err := s.service.Dags(r.Context(), stale(r))
	if err != nil {
		return nil, nil, wire.DaguPagination{}, err
	}
	newest, err := s.service.NewestRuns(r.Context(), true)
	if err != nil {
		return nil, nil, wire.DaguPagination{}, err
	}
	kept := dags[:0]
	for _, dag := range dags {
		spec := dag.Stored.GetSpec()
		if (q.name == "" || strings.Contains(strings.ToLower(spec.GetName()), strings.ToLower(q.name))) && hasLabels(spec, q.labels) {
			kept = append(kept, dag)
		}
	}
	now := time.Now()
	sort.SliceStable(kept, func(i, j int) bool {
		a, b := kept[i].Stored.GetSpec(), kept[j].Stored.GetSpec()
		if q.byNextRun {
			// No schedule sorts last, whatever the order.
			na, nb := daguNextRun(a, now), daguNextRun(b, now)
			if (na == "") != (nb == "") {
				return nb == ""
			}
			if na != nb {
				return (na < nb) != q.descending
			}
		}
		return (strings.ToLower(a.GetName()) < strings.ToLower(b.GetName())) != q.descending
	})
	total := len(kept)
	if q.all {
		q.page, q.perPage = 1, max(total, 1)
	}
	pages := max((total+q.perPage-1)/q.perPage, 1)
	from := min((q.page-1)*q.perPage, total)
	to := min(from+q.perPage, total)
	pagination := wire.DaguPagination{TotalRecords: total, CurrentPage: q.page, TotalPages: pages, NextPage: q.page, PrevPage: q.page}
	if q.page < pages {
		pagination.NextPage = q.page + 1
	}
	if q.page > 1 {
		pagination.PrevPage = q.page - 1
	}
	return kept[from:to], newest, pagination, nil
}

// listDagsDagu is Dagu's DAG list under /api/v1.
func (s *Server) listDagsDagu(d dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		dags, newest, pagination, err := s.pagedDags(d, r)
		if err != nil {
			return err
		}
		body := wire.DaguDagList{Dags: []wire.DaguDagFile{}, Errors: []string{}, Pagination: pagination}
		now := time.Now()
		for _, dag := range dags {
			body.Dags = append(body.Dags, daguDagFile(d.prefix, dag, newest[dag.Stored.GetSpec().GetName()], now))
		}
		writeJSON(w, http.StatusOK, body)
		return nil
	}
}

// newestRunOf is the newest run of a DAG, nil if it has none.
func (s *Server) newestRunOf(r *http.Request, dagName string) (*daguhav1.Run, error) {
	page, err := s.service.ListRuns(r.Context(), service.RunFilter{DagName: dagName, Limit: 1, Stale: true})
	if err != nil || len(page.Runs) == 0 {
		return nil, err
	}
	return page.Runs[0], nil
}

// getDagDagu is Dagu's DAG detail under /api/v1.
func (s *Server) getDagDagu(d dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		dag, err := s.service.GetDag(r.Context(), dagParam(r), stale(r))
		if err != nil {
			return err
		}
		newest, err := s.newestRunOf(r, dagParam(r))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, daguDagDetail(d.prefix, dag, newest, time.Now()))
		return nil
	}
}

// deleteDagDagu is Dagu's delete under /api/v1: 204, no body.
func (s *Server) deleteDagDagu(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := s.service.DeleteDag(r.Context(), dagParam(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// createDag is Dagu's create: a new DAG of that name, from its spec.
func (s *Server) createDag(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req wire.DaguCreateDag
		if err := decodeDagu(r, maxDagPushBytes, &req); err != nil {
			return err
		}
		return s.writeDagCreated(w, r, req)
	}
}

func (s *Server) writeDagCreated(w http.ResponseWriter, r *http.Request, req wire.DaguCreateDag) error {
	if req.Name == "" {
		return invalid(errors.New("name is required"))
	}
	if _, err := s.service.CreateDag(r.Context(), req.Name, req.Spec); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, wire.DaguDagCreated{Name: req.Name})
	return nil
}

// validateDag checks a DAG file as a push would, storing nothing.
func (s *Server) validateDag(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req wire.DaguValidate
		if err := decodeDagu(r, maxDagPushBytes, &req); err != nil {
			return err
		}
		name := req.Name
		if name == "" {
			name = "validated-dag"
		}
		file, err := service.DagFileName("name", name)
		if err != nil {
			return err
		}
		files, err := s.service.CheckDags(r.Context(), []service.DagSource{{Name: file, Content: req.Spec}})
		if service.KindOf(err) == service.Invalid {
			writeJSON(w, http.StatusOK, wire.DaguValidated{Errors: service.Problems(err)})
			return nil
		}
		if err != nil {
			return err
		}
		details := daguDagDetails(files[0].Dags[0], time.Now())
		writeJSON(w, http.StatusOK, wire.DaguValidated{Valid: true, Dag: &details, Errors: []string{}})
		return nil
	}
}

// getDagSpec is a stored DAG's file, as pushed (secrets masked).
func (s *Server) getDagSpec(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		dag, err := s.service.GetDag(r.Context(), dagParam(r), stale(r))
		if err != nil {
			return err
		}
		details := daguDagDetails(dag.Stored.GetSpec(), time.Now())
		writeJSON(w, http.StatusOK, wire.DaguSpec{Dag: &details, Spec: dag.Source(), Errors: []string{}})
		return nil
	}
}

// putDagSpec replaces a stored DAG's file. As Dagu, a file with problems
// is answered 200 with them in errors; it is not stored.
func (s *Server) putDagSpec(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req wire.DaguSpecUpdate
		if err := decodeDagu(r, maxDagPushBytes, &req); err != nil {
			return err
		}
		_, err := s.service.ReplaceDag(r.Context(), dagParam(r), req.Spec)
		if service.KindOf(err) == service.Invalid {
			writeJSON(w, http.StatusOK, wire.DaguErrors{Errors: service.Problems(err)})
			return nil
		}
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, wire.DaguErrors{Errors: []string{}})
		return nil
	}
}

// noRunLabels refuses labels on a run: daguha keeps none (a DAG's own
// labels: key is kept with the DAG).
func noRunLabels(labels, tags []string) error {
	if len(labels) > 0 || len(tags) > 0 {
		return invalid(errors.New("labels: daguha keeps no labels on a run; give the DAG its labels in its file"))
	}
	return nil
}

// startOf is the enqueue a start, start-sync or enqueue of a stored DAG
// asks for.
func startOf(r *http.Request, singleton service.Singleton) (service.EnqueueRequest, wire.DaguStart, error) {
	var req wire.DaguStart
	if err := decodeDagu(r, maxBodyBytes, &req); err != nil {
		return service.EnqueueRequest{}, req, err
	}
	name := dagParam(r)
	if req.DagName != "" && req.DagName != name {
		return service.EnqueueRequest{}, req, invalid(fmt.Errorf("dagName %q: daguha runs DAG %q under its own name", req.DagName, name))
	}
	if err := noRunLabels(req.Labels, req.Tags); err != nil {
		return service.EnqueueRequest{}, req, err
	}
	params, err := daguParams(req.Params)
	if err != nil {
		return service.EnqueueRequest{}, req, err
	}
	out := service.EnqueueRequest{DagName: name, DagRunID: req.DagRunID, Params: params, Queue: req.Queue}
	if req.Singleton {
		out.Singleton = singleton
	}
	return out, req, nil
}

// startDag runs a stored DAG: daguha queues every run, and the leader
// gives it to a worker at once when one is free, so start is enqueue
// (with singleton refusing only while a run is running).
func (s *Server) startDag(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		req, body, err := startOf(r, service.SingletonRunning)
		if err != nil {
			return err
		}
		if body.Queue != "" {
			return invalid(errors.New("queue: start takes no queue (enqueue does)"))
		}
		enqueued, err := s.service.Enqueue(r.Context(), req)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, wire.DaguRunStarted{DagRunID: enqueued.RunID})
		return nil
	}
}

// enqueueDag queues a run of a stored DAG (singleton refuses while one is
// queued or running).
func (s *Server) enqueueDag(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		req, _, err := startOf(r, service.SingletonActive)
		if err != nil {
			return err
		}
		enqueued, err := s.service.Enqueue(r.Context(), req)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, wire.DaguRunStarted{DagRunID: enqueued.RunID})
		return nil
	}
}

// maxSyncTimeout is the longest start-sync waits (Dagu's bound).
const maxSyncTimeout = 86400

// startDagSync starts a run and waits for it to end, timeout seconds at
// most: 408 with the run's id when it goes on.
func (s *Server) startDagSync(d dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		req, body, err := startOf(r, service.SingletonRunning)
		if err != nil {
			return err
		}
		if body.Timeout < 1 || body.Timeout > maxSyncTimeout {
			return invalid(fmt.Errorf("timeout %d: want seconds from 1 to %d", body.Timeout, maxSyncTimeout))
		}
		if body.Queue != "" {
			return invalid(errors.New("queue: start-sync takes no queue (enqueue does)"))
		}
		enqueued, err := s.service.Enqueue(r.Context(), req)
		if err != nil {
			return err
		}
		run, err := s.service.AwaitRun(r.Context(), enqueued.RunID, time.Duration(body.Timeout)*time.Second)
		if service.KindOf(err) == service.Timeout {
			writeJSON(w, http.StatusRequestTimeout, wire.DaguTimeout{Code: "timeout", Message: err.Error(), DagRunID: enqueued.RunID})
			return nil
		}
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, wire.DaguDagRun{DagRun: daguRunDetails(d.prefix, run)})
		return nil
	}
}

// stopAll stops every running run of a stored DAG.
func (s *Server) stopAll(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		problems, err := s.service.StopAll(r.Context(), dagParam(r))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, wire.DaguErrors{Errors: problems})
		return nil
	}
}

// historyRuns is how many recent runs a DAG's history shows (Dagu's
// default).
const historyRuns = 30

// dagHistory is a stored DAG's recent runs, newest first, and each step's
// statuses over them, oldest first.
func (s *Server) dagHistory(d dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		dag, err := s.service.GetDag(r.Context(), dagParam(r), stale(r))
		if err != nil {
			return err
		}
		page, err := s.service.ListRuns(r.Context(), service.RunFilter{DagName: dagParam(r), Limit: historyRuns, Stale: true})
		if err != nil {
			return err
		}
		body := wire.DaguDagRuns{DagRuns: []wire.DaguRunDetails{}, GridData: []wire.DaguGridItem{}}
		for _, run := range page.Runs {
			body.DagRuns = append(body.DagRuns, daguRunDetails(d.prefix, run))
		}
		for _, step := range dag.Stored.GetSpec().GetSteps() {
			item := wire.DaguGridItem{Name: step.GetName(), History: []int{}}
			for i := len(page.Runs) - 1; i >= 0; i-- {
				var state *daguhav1.StepState
				for _, st := range page.Runs[i].GetSteps() {
					if st.GetName() == step.GetName() {
						state = st
					}
				}
				number, _ := daguNodeStatus(state.GetStatus())
				item.History = append(item.History, number)
			}
			body.GridData = append(body.GridData, item)
		}
		writeJSON(w, http.StatusOK, body)
		return nil
	}
}

// dagHistoryRun is one run of a stored DAG (or its latest).
func (s *Server) dagHistoryRun(d dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		detail, err := s.runOfDag(r, dagParam(r), r.PathValue("dagRunId"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, wire.DaguDagRun{DagRun: daguRunDetails(d.prefix, detail.Run)})
		return nil
	}
}
