package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/dispatch/valid"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// kindParallel is a run/call step with parallel (Dagu's parallel): one
// child run per item.
const kindParallel = "parallel"

// parallelExecutor runs a parallel step. It reads the items (written in
// the file, or from a variable: a JSON array, else lines, else words),
// makes each item's params for the child, and starts the children through
// the cluster, at most max_concurrent of them active at once: the next is
// asked for only when one has ended. The cluster derives each child's id
// from the parent, the step, the retry and the params, so an attempt that
// runs the step again (after a failover) finds the children the last one
// started, running or ended, and starts only the ones that never were.
// Items with the same params are one child, as in Dagu.
//
// The step succeeds when every child succeeded. Its output, and its
// output tail, is Dagu's summary as JSON: the count of children that
// succeeded and failed, each child's id, params, status, outputs (when it
// succeeded) and error, and the outputs of those that succeeded. The
// step's state records each started item's child run (parallel_children),
// reported as they start (at most every progressEvery) and at the end.
type parallelExecutor struct{}

func init() { registerExecutor(kindParallel, parallelExecutor{}) }

// progressEvery bounds how often a parallel step reports the children it
// started, so that a step of a thousand items is not a thousand writes of
// a growing list.
const progressEvery = 500 * time.Millisecond

// parallelRun is one item's child run: its params, and the item as
// ${ITEM} sees it.
type parallelRun struct {
	item   string
	params string
}

// parallelEvent is a child starting (ended false) or ending.
type parallelEvent struct {
	i     int
	id    string
	ended bool
	run   *daguhav1.Run
	err   string
}

func (parallelExecutor) execute(ctx context.Context, t *stepTry) *daguhav1.StepState {
	x, spec := t.x, t.spec()
	runs, err := parallelRuns(spec, t.scope())
	if err != nil {
		return &daguhav1.StepState{Status: daguhav1.StepStatus_STEP_STATUS_FAILED, ExitCode: 1, Error: "parallel: " + err.Error()}
	}
	limit := int(spec.GetParallel().GetMaxConcurrent())
	if limit <= 0 {
		limit = dagfile.DefaultMaxConcurrent
	}
	children := make([]*daguhav1.ParallelChild, len(runs))
	errs := make([]string, len(runs))
	ended := make([]*daguhav1.Run, len(runs))
	stops := make([]context.CancelFunc, len(runs))
	owner := map[string]int{} // child run id -> the item that has it
	events := make(chan parallelEvent, 2*len(runs))

	var lastReport time.Time
	dirty := false
	progress := func() {
		if !dirty || x.now().Sub(lastReport) < progressEvery {
			return
		}
		dirty, lastReport = false, x.now()
		// A refused report gives the attempt up: ctx ends and the
		// children's waits with it.
		_ = x.report(&daguhav1.StepState{Name: spec.GetName(), Status: daguhav1.StepStatus_STEP_STATUS_RUNNING,
			StartedAtUnixNano: t.started, Retry: t.retry, ParallelChildren: startedChildren(children)})
	}

	next, active := 0, 0
	for {
		for active < limit && next < len(runs) && ctx.Err() == nil {
			i := next
			next++
			active++
			var itemCtx context.Context
			itemCtx, stops[i] = context.WithCancel(ctx)
			go x.parallelChild(itemCtx, spec.GetName(), t.retry, i, runs[i].params, events)
		}
		if active == 0 {
			break
		}
		var tick <-chan time.Time
		var timer *time.Timer
		if dirty {
			timer = time.NewTimer(max(progressEvery-x.now().Sub(lastReport), time.Millisecond))
			tick = timer.C
		}
		select {
		case ev := <-events:
			switch {
			case !ev.ended:
				if first, dup := owner[ev.id]; dup && first != ev.i {
					// A leader that does not know parallel steps gives
					// every item the step's one child.
					errs[ev.i] = fmt.Sprintf("the cluster answered with child run %s for items %d and %d: its leader does not run parallel steps", ev.id, first+1, ev.i+1)
					stops[ev.i]()
					continue
				}
				owner[ev.id] = ev.i
				children[ev.i] = &daguhav1.ParallelChild{ChildRunId: ev.id, Params: valid.ClipParallelParams(runs[ev.i].params),
					Status: daguhav1.RunStatus_RUN_STATUS_RUNNING}
				dirty = true
			default:
				active--
				stops[ev.i]()
				if errs[ev.i] == "" {
					errs[ev.i], ended[ev.i] = ev.err, ev.run
				}
				if c := children[ev.i]; c != nil && ev.run != nil {
					c.Status = ev.run.GetStatus()
					dirty = true
				}
			}
		case <-tick:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() == nil {
			progress()
		}
	}

	summary, failed, first := parallelSummary(runs, children, ended, errs)
	st := &daguhav1.StepState{OutputTail: valid.ClipTail(string(summary)), ParallelChildren: startedChildren(children)}
	switch {
	case ctx.Err() != nil:
		stopped := stoppedState(ctx)
		st.Status, st.Error = stopped.Status, stopped.Error
		return st
	case spec.GetOutput() != "" && len(summary) > maxOutputValueBytes:
		st.Status, st.ExitCode = daguhav1.StepStatus_STEP_STATUS_FAILED, 1
		st.Error = fmt.Sprintf("output %s: the summary of the child runs is more than %d bytes", spec.GetOutput(), maxOutputValueBytes)
		return st
	case failed > 0:
		st.Status, st.ExitCode = daguhav1.StepStatus_STEP_STATUS_FAILED, 1
		st.Error = fmt.Sprintf("%d of %d child runs failed; first: %s", failed, len(runs), first)
	default:
		st.Status = daguhav1.StepStatus_STEP_STATUS_SUCCEEDED
	}
	x.setOutput(t.i, strings.TrimRight(string(summary), "\n"))
	return st
}

// parallelChild starts one item's child and waits for its end.
func (x *execution) parallelChild(ctx context.Context, step string, retry uint32, i int, params string, events chan<- parallelEvent) {
	id, err := x.host.StartChild(ctx, step, retry, params)
	if err != nil {
		events <- parallelEvent{i: i, ended: true, err: "starting child run: " + err.Error()}
		return
	}
	events <- parallelEvent{i: i, id: id}
	run, err := x.host.WaitChild(ctx, id)
	ev := parallelEvent{i: i, id: id, ended: true, run: run}
	switch {
	case err != nil:
		ev.run, ev.err = nil, fmt.Sprintf("waiting for child run %s: %v", id, err)
	case run.GetStatus() == daguhav1.RunStatus_RUN_STATUS_SUCCEEDED:
	case run.GetStatus() == daguhav1.RunStatus_RUN_STATUS_CANCELLED:
		ev.err = fmt.Sprintf("child run %s was cancelled", id)
	default:
		ev.err = fmt.Sprintf("child run %s failed: %s", id, run.GetError())
	}
	events <- ev
}

// startedChildren is the record of the items whose child started, in the
// items' order.
func startedChildren(children []*daguhav1.ParallelChild) []*daguhav1.ParallelChild {
	var out []*daguhav1.ParallelChild
	for _, c := range children {
		if c != nil {
			out = append(out, &daguhav1.ParallelChild{ChildRunId: c.GetChildRunId(), Params: c.GetParams(), Status: c.GetStatus()})
		}
	}
	return out
}

// parallelResult is one child in the summary, with Dagu's field names.
type parallelResult struct {
	RunID    string            `json:"runId"`
	Params   string            `json:"params"`
	Status   string            `json:"status"`
	Output   map[string]string `json:"output,omitempty"`
	Error    string            `json:"error,omitempty"`
	ExitCode int               `json:"exitCode"`
}

// parallelSummary is Dagu's summary of a parallel step as indented JSON,
// the count of children that failed, and the first failure.
func parallelSummary(runs []parallelRun, children []*daguhav1.ParallelChild, ended []*daguhav1.Run, errs []string) ([]byte, int, string) {
	var out struct {
		Summary struct {
			Total     int `json:"total"`
			Succeeded int `json:"succeeded"`
			Failed    int `json:"failed"`
			Errors    int `json:"errors"`
		} `json:"summary"`
		Results []parallelResult    `json:"results"`
		Outputs []map[string]string `json:"outputs"`
	}
	out.Summary.Total = len(runs)
	out.Results, out.Outputs = []parallelResult{}, []map[string]string{}
	first := ""
	for i, run := range runs {
		if ended[i] == nil && errs[i] == "" {
			continue // never ended: the step was stopped
		}
		result := parallelResult{Params: run.params, Status: "success"}
		if c := children[i]; c != nil {
			result.RunID = c.GetChildRunId()
		}
		if errs[i] != "" {
			result.Status, result.Error, result.ExitCode = "failed", errs[i], 1
			out.Summary.Failed++
			out.Summary.Errors++
			if first == "" {
				first = errs[i]
			}
		} else {
			out.Summary.Succeeded++
			result.Output = ended[i].GetOutputs()
			outputs := ended[i].GetOutputs()
			if outputs == nil {
				outputs = map[string]string{}
			}
			out.Outputs = append(out.Outputs, outputs)
		}
		out.Results = append(out.Results, result)
	}
	data, _ := json.MarshalIndent(out, "", "  ") // strings and maps only: cannot fail
	return append(data, '\n'), out.Summary.Failed, first
}

// rawItem is one item before it becomes a child's params: its text (what
// ${ITEM} is: a map as JSON) and, for a map, its entries as named params.
type rawItem struct {
	text  string
	named []*daguhav1.Param
	isMap bool
}

// parallelRuns reads a parallel step's items and makes their child runs,
// one per distinct params, in the items' order.
func parallelRuns(spec *daguhav1.StepSpec, scope resolver) ([]parallelRun, error) {
	items, err := parallelItems(spec.GetParallel(), scope)
	if err != nil {
		return nil, err
	}
	if err := valid.ParallelItems(len(items)); err != nil {
		return nil, err
	}
	var runs []parallelRun
	seen := map[string]bool{}
	for _, item := range items {
		params, err := itemParams(spec.GetChildParams(), item, scope)
		if err != nil {
			return nil, err
		}
		if err := valid.Params(params); err != nil {
			return nil, fmt.Errorf("the child params of item %s: %v", valid.Quote(item.text), err)
		}
		if seen[params] {
			continue // the same child as an item before
		}
		seen[params] = true
		runs = append(runs, parallelRun{item: item.text, params: params})
	}
	return runs, nil
}

// itemsVarPattern finds the variables an items reference names ($NAME,
// ${NAME}, ${NAME.path}).
var itemsVarPattern = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

// parallelItems reads the items written in the file (their variables
// substituted), or those the variable of items_from holds.
func parallelItems(p *daguhav1.ParallelSpec, scope resolver) ([]rawItem, error) {
	if from := p.GetItemsFrom(); from != "" {
		for _, m := range itemsVarPattern.FindAllStringSubmatch(from, -1) {
			if _, ok := scope.variable(m[1]); !ok {
				return nil, fmt.Errorf("items %s: %s is not set", from, m[1])
			}
		}
		return splitItems(expandVars(from, scope))
	}
	var items []rawItem
	for _, item := range p.GetItems() {
		if !item.GetIsMap() {
			if item.GetValue() == "" {
				continue // Dagu skips an empty item
			}
			items = append(items, rawItem{text: expandVars(item.GetValue(), scope)})
			continue
		}
		if len(item.GetParams()) == 0 {
			continue // and an empty map
		}
		m := rawItem{isMap: true}
		for _, param := range item.GetParams() {
			m.named = append(m.named, &daguhav1.Param{Name: param.GetName(), Value: expandVars(param.GetValue(), scope)})
		}
		m.text = namedJSON(m.named)
		items = append(items, m)
	}
	return items, nil
}

// splitItems reads the items a variable holds: a JSON array (its strings,
// numbers as written, maps as named params, anything else as JSON), a
// single JSON object (one map item), else one item per non-empty line when
// there are several lines, else one per word.
func splitItems(text string) ([]rawItem, error) {
	trimmed := strings.TrimSpace(text)
	switch {
	case strings.HasPrefix(trimmed, "[") && strings.HasSuffix(trimmed, "]"):
		var values []json.RawMessage
		if err := json.Unmarshal([]byte(trimmed), &values); err != nil {
			return nil, fmt.Errorf("items are not a JSON array: %v", err)
		}
		items := make([]rawItem, 0, len(values))
		for i, raw := range values {
			item, err := jsonItem(raw)
			if err != nil {
				return nil, fmt.Errorf("item %d: %v", i+1, err)
			}
			items = append(items, item)
		}
		return items, nil
	case strings.HasPrefix(trimmed, "{") && json.Valid([]byte(trimmed)):
		item, err := jsonItem(json.RawMessage(trimmed))
		if err != nil {
			return nil, err
		}
		return []rawItem{item}, nil
	case strings.Contains(trimmed, "\n"):
		var items []rawItem
		for _, line := range strings.Split(trimmed, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				items = append(items, rawItem{text: line})
			}
		}
		return items, nil
	}
	var items []rawItem
	for _, word := range strings.Fields(trimmed) {
		items = append(items, rawItem{text: word})
	}
	return items, nil
}

// jsonItem reads one element of a JSON array of items.
func jsonItem(raw json.RawMessage) (rawItem, error) {
	decoder := json.NewDecoder(bytes.NewReader(raw))
	decoder.UseNumber()
	var value any
	if err := decoder.Decode(&value); err != nil {
		return rawItem{}, err
	}
	switch v := value.(type) {
	case string:
		return rawItem{text: v}, nil
	case map[string]any:
		item := rawItem{isMap: true}
		for _, name := range slices.Sorted(maps.Keys(v)) {
			if !validParamName(name) {
				return rawItem{}, fmt.Errorf("%s is not a param name (letters, digits and underscores, not starting with a digit)", valid.Quote(name))
			}
			item.named = append(item.named, &daguhav1.Param{Name: name, Value: jsonText(v[name])})
		}
		item.text = namedJSON(item.named)
		return item, nil
	default:
		return rawItem{text: jsonText(v)}, nil
	}
}

// jsonText is a JSON value as an item or a param holds it: a string as
// it is, a number as written, anything else as compact JSON.
func jsonText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	data, _ := json.Marshal(v) // decoded JSON: cannot fail
	return string(data)
}

// namedJSON is a map item as ${ITEM} sees it: a JSON object with its keys
// sorted, as Dagu writes it.
func namedJSON(named []*daguhav1.Param) string {
	m := make(map[string]string, len(named))
	for _, p := range named {
		m[p.GetName()] = p.GetValue()
	}
	data, _ := json.Marshal(m) // strings only: cannot fail
	return string(data)
}

func validParamName(name string) bool {
	params, err := dagfile.ParseParams(name + "=x")
	return err == nil && len(params) == 1 && params[0].GetName() == name
}

// itemParams makes the child's params for one item. Without params on the
// step, the item is the child's params: a string as written (Dagu's params
// string: "a.csv" is $1, "A=1 B=2" sets A and B), a map as its named
// params. With params, those are the child's, ${ITEM} standing for the
// item: a named param's value stays one value whatever the item holds,
// and a positional param that is just ${ITEM} is the item's own params.
func itemParams(template string, item rawItem, scope resolver) (string, error) {
	own := item.text
	if item.isMap {
		own = dagfile.FormatParams(item.named)
	}
	if strings.TrimSpace(template) == "" {
		return own, nil
	}
	withItem := scope
	withItem.vars = append(append([]envVar(nil), scope.vars...), envVar{name: "ITEM", value: item.text})
	params, err := dagfile.ParseParams(template)
	if err != nil {
		// Checked when the DAG was pushed: cannot happen.
		return "", fmt.Errorf("step params: %v", err)
	}
	var out []*daguhav1.Param
	for _, p := range params {
		if p.GetName() == "" && (p.GetValue() == "${ITEM}" || p.GetValue() == "$ITEM") {
			if parsed, err := dagfile.ParseParams(own); err == nil {
				out = append(out, parsed...)
			} else {
				out = append(out, &daguhav1.Param{Value: item.text})
			}
			continue
		}
		out = append(out, &daguhav1.Param{Name: p.GetName(), Value: expandVars(p.GetValue(), withItem)})
	}
	return dagfile.FormatParams(out), nil
}
