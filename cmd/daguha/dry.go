package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/ops/client"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// maxPlanDepth bounds how deep dry follows child DAGs into child DAGs.
const maxPlanDepth = 8

func dryCommand() *cli.Command {
	return &cli.Command{
		Name:  "dry",
		Usage: "show what a run of a DAG file would do, without running anything (Dagu's dry)",
		Description: "The file is parsed and checked, the params resolved against its defaults and rules, and\n" +
			"the plan printed: the steps in an order they may start, with what each depends on, what it\n" +
			"runs, and the worker selector of the worker it would run on (a child run's own selector for\n" +
			"a run/call step); the executors each run needs, and the workers that could take it now.\n" +
			"Child DAGs are followed into the file's other documents, then into the stored DAGs (asked\n" +
			"of the server at --address; when it cannot be asked, the plan says so). Nothing is\n" +
			"enqueued. Problems with the file, its params or its child DAGs are printed on stderr and\n" +
			"the exit code is 1.\n" +
			"   daguha dry etl.yaml -- 2026-01-01 REGION=eu",
		ArgsUsage: "FILE.yaml [-- PARAMS...]",
		Flags:     append(clientFlags(), paramsFlag()),
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 {
				return errors.New("dry takes a DAG file, then optional params after --")
			}
			req, err := enqueueRequestOf(c)
			if err != nil {
				return err
			}
			path := c.Args().First()
			if req.Yaml == "" {
				return fmt.Errorf("%s: not a DAG file (dry plans a file; a stored DAG is shown by daguha dag show)", path)
			}
			f, err := dagfile.Parse(path, []byte(req.Yaml))
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			apiClient, err := newAPIClient(c)
			if err != nil {
				return err
			}
			p := &planner{ctx: c.Context, api: apiClient.WithTimeout(5 * time.Second), out: os.Stdout}
			p.plan(f.Dags[0], f.Dags[1:], req.Params, path, 0, nil)
			if len(p.problems) > 0 {
				return cli.Exit(strings.Join(p.problems, "\n"), 1)
			}
			fmt.Fprintln(p.out, "\nnothing was run (dry run)")
			return nil
		},
	}
}

// planner prints the plan of a run and of the child runs it would start.
type planner struct {
	ctx context.Context
	api *client.Client
	out io.Writer

	// workers are the cluster's workers, asked once; askErr why they could
	// not be.
	workers     []wire.Worker
	asked       bool
	askErr      error
	askErrShown bool

	problems []string
}

func (p *planner) problem(format string, args ...any) {
	p.problems = append(p.problems, fmt.Sprintf(format, args...))
}

// plan prints the plan of a run of dag with params; locals are the DAGs
// its run/call steps look at first. where says where the DAG came from.
func (p *planner) plan(dag *daguhav1.DagSpec, locals []*daguhav1.DagSpec, params, where string, depth int, path []string) {
	indent := strings.Repeat("    ", depth)
	line := func(format string, args ...any) { fmt.Fprintf(p.out, indent+format+"\n", args...) }
	line("DAG %s (%s)", dag.GetName(), where)
	resolved, err := dagfile.ResolveParams(dag, params)
	if err != nil {
		p.problem("DAG %s: params %q: %v", dag.GetName(), params, err)
	} else if len(resolved) > 0 {
		line("  params:      %s", formatResolved(resolved))
	}
	line("  runs on:     %s", selectorText(dag.GetWorkerSelector()))
	if needs := dispatch.NeededExecutors(dag); len(needs) > 0 {
		line("  executors:   %s (the worker must run them)", strings.Join(needs, ", "))
	}
	line("  workers now: %s", p.workersFor(dag))

	type child struct {
		step  *daguhav1.StepSpec
		spec  *daguhav1.DagSpec
		local []*daguhav1.DagSpec
		where string
	}
	var children []child
	fmt.Fprintln(p.out)
	w := tabwriter.NewWriter(p.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "%s  STEP\tAFTER\tRUNS\tWORKER SELECTOR\n", indent)
	for _, step := range stepOrder(dag.GetSteps()) {
		runs, selector := stepRuns(step), selectorText(dag.GetWorkerSelector())
		if name := step.GetChildDag(); name != "" {
			spec, childLocals, from := p.resolveChild(name, locals)
			switch {
			case spec == nil && from == "":
				p.problem("DAG %s: step %s calls DAG %s, which is neither in the file nor stored", dag.GetName(), step.GetName(), name)
				selector = "? (DAG " + name + " not found)"
			case spec == nil:
				selector = "? (" + from + ")"
			default:
				selector = selectorText(spec.GetWorkerSelector()) + " (DAG " + name + "'s)"
				children = append(children, child{step: step, spec: spec, local: childLocals, where: from})
			}
			if len(step.GetWorkerSelector()) > 0 {
				selector = selectorText(step.GetWorkerSelector()) + " (the step's workerSelector)"
			}
		}
		fmt.Fprintf(w, "%s  %s\t%s\t%s\t%s\n", indent, step.GetName(), orDash(strings.Join(step.GetDepends(), ", ")), runs, selector)
	}
	_ = w.Flush()
	if handlers := dagfile.HandlerSteps(dag); len(handlers) > 0 {
		names := make([]string, len(handlers))
		for i, h := range handlers {
			names[i] = h.GetName()
		}
		line("  handlers:    %s (after the steps, on the same worker)", strings.Join(names, ", "))
	}
	for _, c := range children {
		fmt.Fprintln(p.out)
		if slices.Contains(path, c.spec.GetName()) || depth+1 >= maxPlanDepth {
			line("  step %s: child DAG %s is not followed further (it is above it, or too deep)", c.step.GetName(), c.spec.GetName())
			continue
		}
		spec := c.spec
		if len(c.step.GetWorkerSelector()) > 0 {
			spec = cloneWithSelector(spec, c.step.GetWorkerSelector())
		}
		params := withParams(c.step.GetChildParams(), resolved)
		p.plan(spec, c.local, params, fmt.Sprintf("child of step %s, %s", c.step.GetName(), c.where), depth+1, append(path, dag.GetName()))
	}
}

// withParams puts the values of a run's named params into a child's
// params, as the worker will ($NAME, ${NAME}); what else they name (steps'
// outputs, the worker's environment) is known only when the run runs and
// is left as written.
func withParams(text string, params []*daguhav1.Param) string {
	values := map[string]string{}
	for _, p := range params {
		if p.GetName() != "" {
			values[p.GetName()] = p.GetValue()
		}
	}
	return os.Expand(text, func(name string) string {
		if value, ok := values[name]; ok {
			return value
		}
		return "${" + name + "}"
	})
}

// cloneWithSelector is spec routed by another selector, as a run/call
// step's workerSelector routes its child.
func cloneWithSelector(spec *daguhav1.DagSpec, selector map[string]string) *daguhav1.DagSpec {
	copied := proto.Clone(spec).(*daguhav1.DagSpec)
	copied.WorkerSelector = selector
	return copied
}

// resolveChild finds a child DAG as the cluster would: in the local DAGs,
// then among the stored ones. With spec nil, from says why it is not
// known ("" when the server says there is no such DAG).
func (p *planner) resolveChild(name string, locals []*daguhav1.DagSpec) (spec *daguhav1.DagSpec, childLocals []*daguhav1.DagSpec, from string) {
	for _, local := range locals {
		if local.GetName() == name {
			return local, locals, "a DAG of the same file"
		}
	}
	stored, err := p.api.Dag(p.ctx, name)
	if client.StatusCode(err) == 404 {
		return nil, nil, ""
	}
	if err != nil {
		return nil, nil, fmt.Sprintf("stored DAG %s not looked up: %v", name, err)
	}
	f, err := dagfile.Parse(stored.File, []byte(stored.Source))
	if err != nil {
		return nil, nil, fmt.Sprintf("stored DAG %s does not parse here: %v", name, err)
	}
	return f.Dags[0], f.Dags[1:], "the stored DAG"
}

// workersFor says which registered workers could take a run of dag now:
// those its selector matches that run its executors and are not offline.
func (p *planner) workersFor(dag *daguhav1.DagSpec) string {
	if !p.asked {
		p.asked = true
		answer, err := p.api.Workers(p.ctx, false)
		p.workers, p.askErr = answer.Workers, err
	}
	if p.askErr != nil {
		if p.askErrShown {
			return "not asked (see above)"
		}
		p.askErrShown = true
		return "not asked: " + p.askErr.Error()
	}
	var names []string
	for _, w := range p.workers {
		if w.HealthStatus != "OFFLINE" && dispatch.Matches(dag.GetWorkerSelector(), w.Labels) && dispatch.HasExecutors(w.Executors, dag) {
			names = append(names, w.ID)
		}
	}
	if len(names) == 0 {
		return fmt.Sprintf("none of the %d registered workers (the run would wait in its queue)", len(p.workers))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// stepOrder is the steps in an order they may start: each after the
// steps it depends on, of those ready the first in the file first.
func stepOrder(steps []*daguhav1.StepSpec) []*daguhav1.StepSpec {
	index := make(map[string]int, len(steps))
	for i, s := range steps {
		index[s.GetName()] = i
	}
	waiting := make([]int, len(steps))
	dependants := make([][]int, len(steps))
	for i, s := range steps {
		for _, d := range s.GetDepends() {
			if j, ok := index[d]; ok {
				waiting[i]++
				dependants[j] = append(dependants[j], i)
			}
		}
	}
	var ready []int
	for i := range steps {
		if waiting[i] == 0 {
			ready = append(ready, i)
		}
	}
	placed := make([]bool, len(steps))
	var order []*daguhav1.StepSpec
	for len(ready) > 0 {
		slices.Sort(ready)
		i := ready[0]
		ready = ready[1:]
		placed[i] = true
		order = append(order, steps[i])
		for _, j := range dependants[i] {
			if waiting[j]--; waiting[j] == 0 {
				ready = append(ready, j)
			}
		}
	}
	// A cycle (the parser refuses them): the rest as written.
	for i, s := range steps {
		if !placed[i] {
			order = append(order, s)
		}
	}
	return order
}

// stepRuns says what a step runs, in a few words.
func stepRuns(step *daguhav1.StepSpec) string {
	switch {
	case step.GetChildDag() != "" && step.GetParallel() != nil:
		items := fmt.Sprintf("%d items", len(step.GetParallel().GetItems()))
		if from := step.GetParallel().GetItemsFrom(); from != "" {
			items = "items of " + from
		}
		return fmt.Sprintf("child runs of DAG %s, one per item (%s, %d at once)", step.GetChildDag(), items, step.GetParallel().GetMaxConcurrent())
	case step.GetChildDag() != "":
		return "a child run of DAG " + step.GetChildDag()
	case step.GetExecutor() != "":
		return step.GetExecutor() + " executor"
	case step.GetScript() != "":
		return "a script"
	}
	return "command: " + shorten(step.GetCommand(), 40)
}

func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// selectorText is a selector as the plan shows it.
func selectorText(selector map[string]string) string {
	if len(selector) == 0 {
		return "any worker (no workerSelector)"
	}
	return formatSelector(selector)
}

// formatResolved is resolved params, named ones as NAME=VALUE and
// positional ones as $N=VALUE.
func formatResolved(params []*daguhav1.Param) string {
	parts := make([]string, len(params))
	position := 0
	for i, param := range params {
		name := param.GetName()
		if name == "" {
			position++
			name = fmt.Sprintf("$%d", position)
		}
		parts[i] = name + "=" + param.GetValue()
	}
	return strings.Join(parts, " ")
}
