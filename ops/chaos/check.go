package chaos

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/ops/wire"
)

// finalRun is a run as the settled cluster records it.
type finalRun wire.Run

// token is the fencing token of the run's current attempt (0: none).
func (r finalRun) token() uint64 {
	for _, a := range r.Attempts {
		if a.Attempt == r.Attempt {
			return a.FencingToken
		}
	}
	return 0
}

// Report is what the checkers found in one history.
type Report struct {
	Seed     uint64         `json:"seed"`
	Duration string         `json:"duration"`
	Schedule []Fault        `json:"schedule"`
	Faults   map[string]int `json:"faults_by_kind"`
	// Ops counts the client operations; Acked the enqueues answered ok.
	Ops      int `json:"ops"`
	Acked    int `json:"acked_enqueues"`
	Runs     int `json:"runs"`
	Finishes int `json:"finishes"`
	// Pruned counts the runs the cluster removed past its run retention
	// during the test (observed ended, then gone); ObserverReads the
	// complete reads of every run that observed them.
	Pruned        int `json:"runs_pruned"`
	ObserverReads int `json:"observer_reads,omitempty"`
	// Executions counts step executions from the workers' exec files
	// (delivery is at least once: re-executions after reclaims count).
	Executions int `json:"step_executions"`
	CronRuns   int `json:"cron_runs"`
	// The promises: each of these must be 0.
	Lost             int `json:"lost"`
	Twice            int `json:"finished_twice"`
	Stale            int `json:"stale_results"`
	NotEnded         int `json:"not_ended"`
	Vanished         int `json:"vanished"`
	CronTwice        int `json:"cron_slots_fired_twice"`
	NotLinearizable  int `json:"not_linearizable"`
	LinearizableRuns int `json:"linearizable_runs_checked"`
	// Problems say what broke, one line each; Excerpts hold the history
	// of the runs concerned.
	Problems []string            `json:"problems,omitempty"`
	Excerpts map[string][]string `json:"-"`
	// Resources is filled by the soak mode.
	Resources []ResourceTrend `json:"resources,omitempty"`
}

// Failed says whether any promise was broken.
func (r *Report) Failed() bool { return len(r.Problems) > 0 }

func (r *Report) problem(runID, format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	if runID != "" {
		if r.Excerpts == nil {
			r.Excerpts = map[string][]string{}
		}
		if _, ok := r.Excerpts[runID]; !ok {
			r.Excerpts[runID] = nil
		}
	}
}

// listFinal reads every run from the leader, with a linearizable read.
func listFinal(h *Harness) (map[string]finalRun, error) {
	leader, why := h.Leader()
	if leader == nil {
		return nil, fmt.Errorf("no leader: %s", why)
	}
	// Page through every run: a soak enqueues far more than one page.
	runs := map[string]finalRun{}
	after := ""
	for page := 0; ; page++ {
		var body wire.RunList
		path := "/api/v2/dag-runs?limit=10000"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		code, err := call(leader, http.MethodGet, path, nil, &body, 30*time.Second)
		if err != nil || code != http.StatusOK {
			return nil, fmt.Errorf("list runs (page %d): HTTP %d %v", page+1, code, err)
		}
		for _, r := range body.Runs {
			runs[r.DagRunID] = finalRun(r)
		}
		if !body.Truncated {
			return runs, nil
		}
		if body.Next == "" || page > 1000 {
			return nil, fmt.Errorf("list runs: page %d is truncated without a next cursor", page+1)
		}
		after = body.Next
	}
}

// getFinal reads one run; found is false on 404.
func getFinal(h *Harness, id string) (run finalRun, found bool, err error) {
	leader, why := h.Leader()
	if leader == nil {
		return run, false, fmt.Errorf("no leader: %s", why)
	}
	code, err := call(leader, http.MethodGet, "/api/v2/dag-runs/"+id, nil, &run, 30*time.Second)
	switch {
	case err != nil:
		return run, false, err
	case code == http.StatusNotFound:
		return run, false, nil
	case code != http.StatusOK:
		return run, false, fmt.Errorf("read %s: HTTP %d", id, code)
	}
	return run, true, nil
}

// Settle waits until the cluster has a leader and no run is queued or
// running, up to timeout, and returns the runs. Runs that had not ended
// by then are returned as they are (the checkers report them).
func Settle(h *Harness, timeout time.Duration) (map[string]finalRun, error) {
	deadline := time.Now().Add(timeout)
	var (
		runs map[string]finalRun
		err  error
	)
	for {
		runs, err = listFinal(h)
		if err == nil {
			open := 0
			for _, r := range runs {
				if !terminal[r.Status] {
					open++
				}
			}
			if open == 0 {
				return runs, nil
			}
		}
		if time.Now().After(deadline) {
			if runs == nil {
				return nil, err
			}
			return runs, nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// Check holds the history to daguha's promises. runs is the settled
// state (Settle); ops are the clients' operations.
func Check(h *Harness, ops []Op, runs map[string]finalRun) *Report {
	r := &Report{Faults: map[string]int{}, Ops: len(ops), Runs: len(runs)}
	excerpt := map[string][]string{}
	note := func(runID, line string) { excerpt[runID] = append(excerpt[runID], line) }
	for _, op := range ops {
		note(op.RunID, op.String())
	}

	// Every enqueue acknowledged ok exists.
	acked := map[string]bool{}
	for _, op := range ops {
		if op.Kind == OpEnqueue && op.Result == ResultOK {
			acked[op.RunID] = true
		}
	}
	r.Acked = len(acked)
	for id := range acked {
		if _, ok := runs[id]; ok {
			continue
		}
		// Listed after the list was read (a late commit): read it alone.
		run, found, err := getFinal(h, id)
		switch {
		case err != nil:
			r.problem(id, "acknowledged run %s could not be read after the faults: %v", id, err)
		case !found:
			r.Lost++
			r.problem(id, "LOST: run %s was acknowledged to a client and does not exist", id)
		default:
			runs[id] = run
		}
	}

	// Every run ended, exactly once, under its current lease.
	finishes := map[string][]Finish{}
	for _, w := range h.Workers {
		fs, err := workerFinishes(w.ID, w.LogPath())
		if err != nil {
			r.problem("", "read %s's log: %v", w.ID, err)
		}
		for _, f := range fs {
			finishes[f.RunID] = append(finishes[f.RunID], f)
			r.Finishes++
			note(f.RunID, fmt.Sprintf("%s..%s %s finished attempt %d (token %d) as %s",
				time.Unix(0, f.Call).Format("15:04:05.000"), time.Unix(0, f.Return).Format("15:04:05.000"), f.Worker, f.Attempt, f.FencingToken, f.Status))
		}
	}
	for _, w := range h.Workers {
		execs, err := readExecutions(w.ExecFile)
		if err != nil {
			r.problem("", "read %s's executions: %v", w.ID, err)
		}
		r.Executions += len(execs)
		for _, e := range execs {
			note(e.RunID, fmt.Sprintf("%s executed step %s of attempt %d (token %d)", e.Worker, e.Step, e.Attempt, e.FencingToken))
		}
	}
	ids := make([]string, 0, len(runs))
	for id := range runs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		run := runs[id]
		note(id, fmt.Sprintf("recorded: %s at attempt %d (token %d)", run.Status, run.Attempt, run.token()))
		if !terminal[run.Status] {
			r.NotEnded++
			r.problem(id, "NOT ENDED: run %s is still %s after the cluster settled", id, run.Status)
		}
		if fs := finishes[id]; len(fs) > 1 {
			r.Twice++
			r.problem(id, "TWICE: run %s was finished %d times (tokens %v)", id, len(fs), tokens(fs))
		}
		for _, f := range finishes[id] {
			if f.FencingToken != run.token() {
				r.Stale++
				r.problem(id, "STALE: run %s's end was accepted from attempt %d (token %d); the run is at attempt %d (token %d)",
					id, f.Attempt, f.FencingToken, run.Attempt, run.token())
			} else if f.Status != run.Status {
				r.problem(id, "run %s's end was accepted as %s and is recorded as %s", id, f.Status, run.Status)
			}
		}
		for _, step := range run.Steps {
			e, ok := parseExec(step.OutputTail)
			if !ok {
				continue
			}
			if e.FencingToken != run.token() || e.Attempt != run.Attempt {
				r.Stale++
				r.problem(id, "STALE: run %s records step %s's result from attempt %d (token %d); the run is at attempt %d (token %d)",
					id, step.Name, e.Attempt, e.FencingToken, run.Attempt, run.token())
			}
		}
	}

	// Cron: each slot is fired once, as the run its id names.
	slots := map[string][]Firing{}
	for _, s := range h.Servers {
		fs, err := serverFirings(s.Name, s.LogPath())
		if err != nil {
			r.problem("", "read %s's log: %v", s.Name, err)
		}
		for _, f := range fs {
			if f.Dag == cronDagName {
				slots[f.Slot] = append(slots[f.Slot], f)
			}
		}
	}
	for slot, fs := range slots {
		if len(fs) > 1 {
			r.CronTwice++
			r.problem(fs[0].RunID, "CRON: slot %s of %s was fired %d times: %+v", slot, cronDagName, len(fs), fs)
		}
	}
	for _, id := range ids {
		run := runs[id]
		if run.DagName != cronDagName {
			continue
		}
		r.CronRuns++
		slot, err := time.Parse(time.RFC3339Nano, run.ScheduledSlot)
		if err != nil || dispatch.ScheduledRunID(cronDagName, slot) != id {
			r.CronTwice++
			r.problem(id, "CRON: run %s of %s is not the run of its slot %q", id, cronDagName, run.ScheduledSlot)
		}
	}

	// The clients' and workers' operations, run by run, must be
	// linearizable.
	all := append([]Op(nil), ops...)
	for runID, fs := range finishes {
		for _, f := range fs {
			all = append(all, Op{Client: 1000, Kind: OpFinish, RunID: runID, Call: f.Call, Return: f.Return, Result: f.Status, Server: f.Worker})
		}
	}
	// Runs no client asked about (cron runs) have only finishes: their
	// model starts from "enqueued by the cluster itself".
	clientRuns := map[string]bool{}
	for _, op := range ops {
		clientRuns[op.RunID] = true
	}
	var checked []Op
	for _, op := range all {
		if clientRuns[op.RunID] {
			checked = append(checked, op)
		}
	}
	// The settled state closes each history as one last read, after
	// every other operation: a lost run then shows as a read of
	// notfound after an acknowledged enqueue.
	settled := time.Now().UnixNano()
	for id := range clientRuns {
		result := ResultNotFound
		if run, ok := runs[id]; ok {
			result = run.Status
		}
		checked = append(checked, Op{Client: 2000, Kind: OpRead, RunID: id, Call: settled, Return: settled, Result: result, Detail: "settled state"})
	}
	bad, n := CheckLinearizable(checked, 10*time.Second)
	r.LinearizableRuns = n
	for _, v := range bad {
		r.NotLinearizable++
		r.problem(v.RunID, "NOT LINEARIZABLE (%s): the history of run %s", v.Result, v.RunID)
	}

	for id := range r.Excerpts {
		r.Excerpts[id] = excerpt[id]
	}
	return r
}

func tokens(fs []Finish) []uint64 {
	out := make([]uint64, len(fs))
	for i, f := range fs {
		out[i] = f.FencingToken
	}
	return out
}

// Explain writes the report for a failed run: seed, schedule, problems
// and an excerpt of the history of the runs concerned (at most 10).
func (r *Report) Explain() string {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos seed %d (replay with CHAOS_SEED=%d)\n", r.Seed, r.Seed)
	b.WriteString("nemesis schedule:\n")
	for _, f := range r.Schedule {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	b.WriteString("problems:\n")
	for i, p := range r.Problems {
		if i == 50 {
			fmt.Fprintf(&b, "  ... and %d more\n", len(r.Problems)-50)
			break
		}
		fmt.Fprintf(&b, "  %s\n", p)
	}
	ids := make([]string, 0, len(r.Excerpts))
	for id := range r.Excerpts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for i, id := range ids {
		if i == 10 {
			break
		}
		fmt.Fprintf(&b, "history of run %s:\n", id)
		lines := r.Excerpts[id]
		if len(lines) > 40 {
			// The start and the end of a long history are what matter.
			lines = append(append(append([]string(nil), lines[:15]...), fmt.Sprintf("... %d lines ...", len(lines)-40)), lines[len(lines)-25:]...)
		}
		for _, line := range lines {
			fmt.Fprintf(&b, "  %s\n", line)
		}
	}
	return b.String()
}

// JSON is the report's summary as one JSON object.
func (r *Report) JSON() string {
	data, err := json.Marshal(r)
	if err != nil {
		return err.Error()
	}
	return string(data)
}
