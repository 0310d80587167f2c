package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/ops/service"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's calls on DAG runs.

// runFilterOf reads the filters of a run list, Dagu's and daguha's
// alike (under /api/v1 only Dagu's come): none is true when the statuses
// asked for are ones no daguha run has. exactName is the DAG of Dagu's
// /dag-runs/{name}.
func runFilterOf(d dialect, r *http.Request, exactName string) (filter service.RunFilter, none bool, err error) {
	query := r.URL.Query()
	maxLimit := 500 // Dagu's
	if d.shared {
		maxLimit = 10000 // daguha's
	}
	limit, err := intParam(r, "limit", 1, maxLimit, 100)
	if err != nil {
		return filter, false, err
	}
	filter = service.RunFilter{DagName: exactName, NameContains: query.Get("name"), IDContains: query.Get("dagRunId"), Limit: limit, Stale: stale(r)}
	if filter.IDContains == "latest" {
		// Dagu's "latest" asks for a DAG's newest run, not an id.
		filter.IDContains, filter.Limit = "", 1
	}
	filter.After = query.Get("cursor")
	if d.shared {
		filter.RootDagRunID, filter.ParentDagRunID = query.Get("root_dag_run_id"), query.Get("parent_dag_run_id")
		filter.WorkerID = query.Get("worker_id")
		if dagName := query.Get("dag_name"); dagName != "" {
			filter.DagName = dagName
		}
		if after := query.Get("after"); after != "" {
			if filter.After != "" && filter.After != after {
				return filter, false, invalid(errors.New("after and cursor: send one (both are the previous page's cursor)"))
			}
			filter.After = after
		}
	}
	statuses := query["status"]
	for _, text := range statuses {
		word, ok := daguhaStatusOf(text)
		if !ok {
			return filter, false, invalid(fmt.Errorf("status %q: want Dagu's number (0-8) or one of queued, running, succeeded, failed, cancelled", text))
		}
		if word != "" {
			filter.AnyStatus = append(filter.AnyStatus, word)
		}
	}
	none = len(statuses) > 0 && len(filter.AnyStatus) == 0
	for _, bound := range []struct {
		name string
		into *int64
	}{{"fromDate", &filter.EnqueuedFrom}, {"toDate", &filter.EnqueuedTo}} {
		text := query.Get(bound.name)
		if text == "" {
			continue
		}
		seconds, err := strconv.ParseInt(text, 10, 64)
		if err != nil || seconds < 0 || seconds > 1<<33 {
			return filter, false, invalid(fmt.Errorf("%s %q: want Unix seconds", bound.name, text))
		}
		*bound.into = seconds * int64(time.Second)
	}
	if len(filter.NameContains) > 1024 || len(filter.IDContains) > 1024 || len(statuses) > 16 {
		return filter, false, invalid(errors.New("name, dagRunId or status: too long"))
	}
	return filter, none, nil
}

// runPageOf lists the runs a request's filters select.
func (s *Server) runPageOf(d dialect, r *http.Request, exactName string) (service.RunPage, error) {
	filter, none, err := runFilterOf(d, r, exactName)
	if err != nil || none {
		return service.RunPage{}, err
	}
	return s.service.ListRuns(r.Context(), filter)
}

func daguRunsPage(prefix string, page service.RunPage) wire.DaguRunsPage {
	body := wire.DaguRunsPage{DagRuns: []wire.DaguRunSummary{}, NextCursor: page.Next}
	for _, run := range page.Runs {
		body.DagRuns = append(body.DagRuns, daguRunSummary(prefix, run))
	}
	return body
}

// listRunsDagu is Dagu's run list under /api/v1.
func (s *Server) listRunsDagu(d dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		page, err := s.runPageOf(d, r, "")
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, daguRunsPage(d.prefix, page))
		return nil
	}
}

// listRunsOfDag is Dagu's list of one DAG's runs (under /api/v1 only:
// under /api/v2 the path is daguha's run detail).
func (s *Server) listRunsOfDag(d dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		page, err := s.runPageOf(d, r, r.PathValue("name"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, daguRunsPage(d.prefix, page))
		return nil
	}
}

// daguRunKeys are the keys only Dagu's body of POST /dag-runs has: a body
// with one of them is Dagu's (params both have).
var daguRunKeys = []string{"spec", "name", "dagRunId", "singleton", "labels", "tags", "queue"}

// runFromSpec runs a DAG file sent whole (Dagu's POST /dag-runs and
// /dag-runs/enqueue); singleton refuses while a run of the DAG is
// running (for /dag-runs/enqueue: queued or running).
func (s *Server) runFromSpec(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req wire.DaguRunFromSpec
		if err := decodeDagu(r, maxDagPushBytes, &req); err != nil {
			return err
		}
		singleton := service.SingletonRunning
		if strings.HasSuffix(r.URL.Path, "/enqueue") {
			singleton = service.SingletonActive
		}
		return s.writeRunFromSpec(w, r, req, singleton)
	}
}

func (s *Server) writeRunFromSpec(w http.ResponseWriter, r *http.Request, req wire.DaguRunFromSpec, singleton service.Singleton) error {
	if strings.TrimSpace(req.Spec) == "" {
		return invalid(errors.New("spec is required: the DAG file, as YAML"))
	}
	if err := noRunLabels(req.Labels, req.Tags); err != nil {
		return err
	}
	params, err := daguParams(req.Params)
	if err != nil {
		return err
	}
	enqueue := service.EnqueueRequest{Yaml: req.Spec, DagRunID: req.DagRunID, Params: params, Queue: req.Queue}
	if req.Name != "" {
		if enqueue.File, err = service.DagFileName("name", req.Name); err != nil {
			return err
		}
	}
	if req.Singleton {
		enqueue.Singleton = singleton
	}
	enqueued, err := s.service.Enqueue(r.Context(), enqueue)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.DaguRunStarted{DagRunID: enqueued.RunID})
	return nil
}

// paramName is a named param's name, as Dagu's params string has it.
var paramName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// daguParams is a params string as daguha reads it: Dagu's API may send
// params as a JSON object ({"NAME": value, ...}), which becomes NAME="value"
// pairs in the object's order; any other text is taken as it is.
func daguParams(text string) (string, error) {
	trimmed := strings.TrimSpace(text)
	if !strings.HasPrefix(trimmed, "{") {
		return text, nil
	}
	dec := json.NewDecoder(strings.NewReader(trimmed))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return "", invalid(fmt.Errorf("params: %w", err))
	}
	var pairs []string
	for dec.More() {
		token, err := dec.Token()
		if err != nil {
			return "", invalid(fmt.Errorf("params: %w", err))
		}
		key, _ := token.(string)
		if !paramName.MatchString(key) {
			return "", invalid(fmt.Errorf("params: %q: a param's name is letters, digits and '_', not starting with a digit", key))
		}
		var value any
		if err := dec.Decode(&value); err != nil {
			return "", invalid(fmt.Errorf("params %q: %w", key, err))
		}
		var valueText string
		switch v := value.(type) {
		case string:
			valueText = v
		case json.Number, bool:
			valueText = fmt.Sprint(v)
		case nil:
		default:
			data, _ := json.Marshal(v)
			valueText = string(data)
		}
		quoted := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(valueText)
		pairs = append(pairs, fmt.Sprintf(`%s="%s"`, key, quoted))
	}
	if _, err := dec.Token(); err != nil {
		return "", invalid(fmt.Errorf("params: %w", err))
	}
	return strings.Join(pairs, " "), nil
}

// runOfDag is a run of a DAG by its id, or the DAG's newest with
// "latest": a run of another DAG is not found.
func (s *Server) runOfDag(r *http.Request, dagName, id string) (service.RunDetail, error) {
	if id == "latest" {
		newest, err := s.newestRunOfConsistent(r, dagName)
		if err != nil {
			return service.RunDetail{}, err
		}
		if newest == nil {
			return service.RunDetail{}, &service.Error{Kind: service.NotFound, Err: fmt.Errorf("DAG %q has no run", dagName)}
		}
		id = newest.GetId()
	}
	detail, err := s.service.Run(r.Context(), service.RunQuery{ID: id, Stale: stale(r)})
	if err != nil {
		return service.RunDetail{}, err
	}
	if detail.Run.GetDagName() != dagName {
		return service.RunDetail{}, &service.Error{Kind: service.NotFound, Err: fmt.Errorf("run %q is a run of DAG %q, not of %q", id, detail.Run.GetDagName(), dagName)}
	}
	return detail, nil
}

// newestRunOfConsistent is newestRunOf after catching up with the leader
// (unless the caller asks ?stale).
func (s *Server) newestRunOfConsistent(r *http.Request, dagName string) (*daguhav1.Run, error) {
	page, err := s.service.ListRuns(r.Context(), service.RunFilter{DagName: dagName, Limit: 1, Stale: stale(r)})
	if err != nil || len(page.Runs) == 0 {
		return nil, err
	}
	return page.Runs[0], nil
}

// runParams are the run a Dagu run path names.
func (s *Server) runParams(r *http.Request) (service.RunDetail, error) {
	return s.runOfDag(r, r.PathValue("name"), r.PathValue("dagRunId"))
}

// getRunDagu is a run in detail.
func (s *Server) getRunDagu(d dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		detail, err := s.runParams(r)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, wire.DaguRunDetail{DagRunDetails: daguRunDetails(d.prefix, detail.Run)})
		return nil
	}
}

// stopRun cancels a queued run or asks the worker of a running one to
// stop it: 200 with no body, as Dagu answers.
func (s *Server) stopRun(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		detail, err := s.runParams(r)
		if err != nil {
			return err
		}
		if err := s.service.Cancel(r.Context(), detail.Run.GetId()); err != nil {
			if service.KindOf(err) == service.Conflict {
				return withCode("not_running", err)
			}
			return err
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
}

// retryRunDagu is Dagu's retry of a run: the run of the path is queued
// again for its next attempt (service.Retry). The body's dagRunId, which
// Dagu requires, must name that run; stepName runs that step and every
// step after it again (Dagu reruns only the step), the other steps keep
// what they recorded. 200 with no body, as Dagu answers.
func (s *Server) retryRunDagu(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req wire.DaguRetry
		if err := decodeJSON(r, &req); err != nil {
			return invalid(err)
		}
		detail, err := s.runParams(r)
		if err != nil {
			return err
		}
		id := detail.Run.GetId()
		if req.DagRunID == "" {
			return invalid(errors.New("request body: dagRunId is required"))
		}
		if req.DagRunID != id {
			return invalid(fmt.Errorf("request body: dagRunId names another run than the path's %s", id))
		}
		if err := s.service.Retry(r.Context(), id, req.StepName); err != nil {
			if service.KindOf(err) == service.Conflict {
				// Not finished (queued or running): Dagu's bad_request.
				return withCode("bad_request", &service.Error{Kind: service.Invalid, Err: err})
			}
			return err
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
}

// dequeueRunDagu is Dagu's dequeue: a queued run ends cancelled
// (service.Dequeue); a run in any other status is refused with Dagu's
// bad_request. Dagu serves it as a GET, so a read-only token, which
// passes GETs, is refused here: it changes the state.
func (s *Server) dequeueRunDagu(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		if readOnly(r) && identity.Enforced {
			return &service.Error{Kind: service.Forbidden, Err: errors.New("dequeue changes a run: it needs a full API token, not a read-only one")}
		}
		detail, err := s.runParams(r)
		if err != nil {
			return err
		}
		if err := s.service.Dequeue(r.Context(), detail.Run.GetId()); err != nil {
			if service.KindOf(err) == service.Conflict {
				return withCode("bad_request", &service.Error{Kind: service.Invalid, Err: err})
			}
			return err
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
}

// logLines picks the lines Dagu's log parameters ask for: head (the
// first N), tail (the last N), or offset (from line N, 1-based), each cut
// to limit lines.
func logLines(r *http.Request, content string, estimate bool) (wire.DaguLog, error) {
	head, err := intParam(r, "head", 1, 10_000_000, 0)
	if err != nil {
		return wire.DaguLog{}, err
	}
	tail, err := intParam(r, "tail", 1, 10_000_000, 0)
	if err != nil {
		return wire.DaguLog{}, err
	}
	offset, err := intParam(r, "offset", 1, 10_000_000, 0)
	if err != nil {
		return wire.DaguLog{}, err
	}
	limit, err := intParam(r, "limit", 1, 10000, 0)
	if err != nil {
		return wire.DaguLog{}, err
	}
	lines := strings.SplitAfter(content, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	total := len(lines)
	start, end := 0, total
	switch {
	case head > 0:
		end = min(head, total)
	case tail > 0:
		start = max(total-tail, 0)
	case offset > 0:
		start = min(offset-1, total)
	}
	if limit > 0 {
		end = min(end, start+limit)
	}
	return wire.DaguLog{
		Content: strings.Join(lines[start:end], ""), LineCount: end - start, TotalLines: total,
		HasMore: end < total, IsEstimate: estimate,
	}, nil
}

// runLogText is daguha's log of a run: what the cluster recorded of it,
// one event a line, in time order (daguha keeps no scheduler log file;
// each step's own output is its step log).
func runLogText(run *daguhav1.Run) string {
	type event struct {
		at   int64
		text string
	}
	var events []event
	add := func(at int64, format string, args ...any) {
		if at != 0 {
			events = append(events, event{at, fmt.Sprintf(format, args...)})
		}
	}
	add(run.GetEnqueuedAtUnixNano(), "run %s of DAG %s queued (params: %q)", run.GetId(), run.GetDagName(), run.GetParams())
	for _, a := range run.GetAttempts() {
		add(a.GetStartedAtUnixNano(), "attempt %d started on worker %s", a.GetAttempt(), a.GetWorkerId())
		add(a.GetEndedAtUnixNano(), "attempt %d on worker %s ended: %s", a.GetAttempt(), a.GetWorkerId(), a.GetOutcome())
	}
	for _, step := range run.GetSteps() {
		add(step.GetStartedAtUnixNano(), "step %s started", step.GetName())
		_, label := daguNodeStatus(step.GetStatus())
		line := fmt.Sprintf("step %s %s (exit code %d)", step.GetName(), label, step.GetExitCode())
		if step.GetError() != "" {
			line += ": " + step.GetError()
		}
		add(step.GetFinishedAtUnixNano(), "%s", line)
	}
	_, label := daguRunStatus(run.GetStatus())
	ended := "run " + label
	if run.GetError() != "" {
		ended += ": " + run.GetError()
	}
	add(run.GetFinishedAtUnixNano(), "%s", ended)
	sort.SliceStable(events, func(i, j int) bool { return events[i].at < events[j].at })
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "%s %s\n", time.Unix(0, e.at).UTC().Format(time.RFC3339Nano), e.text)
	}
	return b.String()
}

// runLog is a run's log: see runLogText.
func (s *Server) runLog(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		detail, err := s.runParams(r)
		if err != nil {
			return err
		}
		log, err := logLines(r, runLogText(detail.Run), false)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, log)
		return nil
	}
}

// maxStepLogBytes bounds the step log read from a worker for Dagu's log
// call: a longer log keeps its last maxStepLogBytes (the whole stays on
// the worker, for GET /api/v2/dag-runs/{id}/steps/{step}/log).
const maxStepLogBytes = 8 << 20

// readStepLog reads a step's log from its worker, its last
// maxStepLogBytes when longer (cut is then true).
func readStepLog(log *service.StepLog) (content string, cut bool) {
	var buf bytes.Buffer
	for {
		data, err := log.Next()
		if len(data) > 0 {
			buf.Write(data)
			if buf.Len() > 2*maxStepLogBytes {
				kept := append([]byte(nil), buf.Bytes()[buf.Len()-maxStepLogBytes:]...)
				buf.Reset()
				buf.Write(kept)
				cut = true
			}
		}
		if err != nil {
			break
		}
	}
	if buf.Len() > maxStepLogBytes {
		cut = true
		return string(buf.Bytes()[buf.Len()-maxStepLogBytes:]), cut
	}
	return buf.String(), cut
}

// stepLogDagu is a step's log: the worker's (stdout and stderr together:
// daguha keeps them as one log, so stream picks nothing), or, when the
// worker cannot give it, the tail of the output the cluster keeps, marked
// isEstimate.
func (s *Server) stepLogDagu(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		switch stream := r.URL.Query().Get("stream"); stream {
		case "", "stdout", "stderr":
		default:
			return invalid(fmt.Errorf("stream %q: want stdout or stderr", stream))
		}
		detail, err := s.runParams(r)
		if err != nil {
			return err
		}
		stepName := r.PathValue("stepName")
		var state *daguhav1.StepState
		for _, st := range detail.Run.GetSteps() {
			if st.GetName() == stepName {
				state = st
			}
		}
		if state == nil && dagfile.FindStep(detail.Run.GetDag(), stepName) == nil {
			return &service.Error{Kind: service.NotFound, Err: fmt.Errorf("run %q has no step %q", detail.Run.GetId(), stepName)}
		}
		content, estimate := state.GetOutputTail(), true
		log, err := s.service.StepLog(r.Context(), service.StepLogQuery{RunID: detail.Run.GetId(), Step: stepName, Stale: true})
		switch service.KindOf(err) {
		case service.NotFound, service.NotImplemented, service.Upstream:
			// The tail it is.
		default:
			if err != nil {
				return err
			}
			defer log.Close()
			content, estimate = readStepLog(log)
		}
		body, err := logLines(r, content, estimate)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, body)
		return nil
	}
}

// daguOutputName is an output's key as Dagu shows it: a name in
// UPPER_CASE becomes camelCase (TOTAL_COUNT is totalCount); others stay.
func daguOutputName(name string) string {
	for _, c := range name {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return name
		}
	}
	var b strings.Builder
	upper := false
	for _, c := range strings.ToLower(name) {
		switch {
		case c == '_':
			upper = b.Len() > 0
		case upper:
			b.WriteString(strings.ToUpper(string(c)))
			upper = false
		default:
			b.WriteRune(c)
		}
	}
	if b.Len() == 0 {
		return name
	}
	return b.String()
}

// runOutputs are the outputs a run's steps captured.
func (s *Server) runOutputs(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		detail, err := s.runParams(r)
		if err != nil {
			return err
		}
		run := detail.Run
		_, label := daguRunStatus(run.GetStatus())
		body := wire.DaguOutputs{
			Metadata: wire.DaguOutputsMetadata{
				DagName: run.GetDagName(), DagRunID: run.GetId(), AttemptID: strconv.Itoa(int(run.GetAttempt())),
				Status: label, CompletedAt: daguTime(run.GetFinishedAtUnixNano()), Params: run.GetParams(),
			},
			Outputs: map[string]string{},
		}
		for name, value := range run.GetOutputs() {
			body.Outputs[daguOutputName(name)] = value
		}
		writeJSON(w, http.StatusOK, body)
		return nil
	}
}

// subRuns are the child runs of a run, or, with parentSubDAGRunId, of
// that child (of the same root run).
func (s *Server) subRuns(dialect) endpoint {
	return func(w http.ResponseWriter, r *http.Request) error {
		detail, err := s.runParams(r)
		if err != nil {
			return err
		}
		if parent := r.URL.Query().Get("parentSubDAGRunId"); parent != "" {
			sub, err := s.service.Run(r.Context(), service.RunQuery{ID: parent, Stale: true})
			if err != nil {
				return err
			}
			if sub.Run.GetRootDagRunId() != detail.Run.GetRootDagRunId() {
				return &service.Error{Kind: service.NotFound, Err: fmt.Errorf("run %q is not a sub DAG run of %q", parent, detail.Run.GetId())}
			}
			detail = sub
		}
		body := wire.DaguSubRuns{SubRuns: []wire.DaguSubRunDetail{}}
		for _, child := range detail.Children {
			body.SubRuns = append(body.SubRuns, daguSubRun(child))
		}
		writeJSON(w, http.StatusOK, body)
		return nil
	}
}
