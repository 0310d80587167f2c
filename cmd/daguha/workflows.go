package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/ops/client"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Exit codes of `enqueue --wait`: the run's result.
const (
	exitFailed    = 1
	exitCancelled = 2
)

// isDagFile tells a DAG file argument from a stored DAG's name.
func isDagFile(arg string) bool {
	if strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml") || strings.ContainsRune(arg, os.PathSeparator) {
		return true
	}
	info, err := os.Stat(arg)
	return err == nil && !info.IsDir()
}

// joinParams turns the words after `--` back into Dagu's params string,
// quoting the ones a split on spaces would break.
func joinParams(words []string) string {
	params := make([]*daguhav1.Param, len(words))
	for i, w := range words {
		params[i] = &daguhav1.Param{Value: w}
		if name, value, named := strings.Cut(w, "="); named && name != "" && !strings.ContainsAny(name, " \t") {
			params[i] = &daguhav1.Param{Name: name, Value: value}
		}
	}
	return dagfile.FormatParams(params)
}

func enqueueCommand() *cli.Command {
	return &cli.Command{
		Name:  "enqueue",
		Usage: "enqueue a run of a DAG file or of a stored DAG",
		Description: "The first argument is a DAG file (Dagu's YAML; its first document runs, the others are\n" +
			"its local DAGs) or the name of a stored DAG (daguha dag push). Params follow `--`:\n" +
			"   daguha enqueue etl.yaml -- 2026-01-01 REGION=eu\n" +
			"With --wait the command prints each step's progress on stderr and exits with the run's\n" +
			"result: 0 succeeded, 1 failed, 2 cancelled. The run id is printed on stdout.",
		ArgsUsage: "FILE.yaml|NAME [-- PARAMS...]",
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "run-id", Usage: "the run's id (default: the server makes one up); the same id twice is one run"},
			&cli.StringFlag{Name: "params", Usage: "the run's params as one string (or give them after --)"},
			&cli.BoolFlag{Name: "wait", Usage: "follow the run until it ends, printing step progress; exit with its result"},
			&cli.StringFlag{Name: "params-file", Usage: "enqueue one run per line of this file, each line its params (empty lines and lines starting with # skipped), in bulk requests; prints the run ids in order"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 {
				return errors.New("enqueue takes a DAG file or a stored DAG's name, then optional params after --")
			}
			if c.String("params-file") != "" {
				return enqueueFromParamsFile(c)
			}
			req, err := enqueueRequestOf(c)
			if err != nil {
				return err
			}
			apiClient, err := newAPIClient(c)
			if err != nil {
				return err
			}
			resp, err := apiClient.Enqueue(c.Context, req)
			if err != nil {
				return err
			}
			fmt.Println(resp.DagRunID)
			if !c.Bool("wait") {
				return nil
			}
			return followRun(c.Context, apiClient, resp.DagRunID, c.App.ErrWriter, exitCancelled)
		},
	}
}

// maxParamsFileBytes bounds the file enqueue --params-file reads.
const maxParamsFileBytes = 64 << 20

// enqueueFromParamsFile is enqueue --params-file: one run of the DAG per
// line, each line its params, sent wire.MaxEnqueueBatch at a time. The
// run ids are made here (UUIDv7, in line order), so a batch sent twice is
// the same runs; they are printed in line order, and a run refused is
// named by its line on stderr (exit 1).
func enqueueFromParamsFile(c *cli.Context) error {
	if c.String("run-id") != "" || c.String("params") != "" || c.Bool("wait") || len(c.Args().Tail()) > 0 {
		return errors.New("--params-file gives each run its params and its own id: drop --run-id, --params, --wait and params after --")
	}
	name := c.String("params-file")
	info, err := os.Stat(name)
	if err != nil {
		return err
	}
	if info.Size() > maxParamsFileBytes {
		return fmt.Errorf("%s: %d bytes, more than the %d a params file may have", name, info.Size(), maxParamsFileBytes)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	base, err := enqueueRequestOf(c)
	if err != nil {
		return err
	}
	var runs []wire.EnqueueRequest
	var lines []int
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		req := base
		req.Params, req.DagRunID = line, id.String()
		runs = append(runs, req)
		lines = append(lines, i+1)
	}
	if len(runs) == 0 {
		return fmt.Errorf("%s: no params lines", name)
	}
	apiClient, err := newAPIClient(c)
	if err != nil {
		return err
	}
	failed := 0
	for start := 0; start < len(runs); start += wire.MaxEnqueueBatch {
		end := min(start+wire.MaxEnqueueBatch, len(runs))
		answer, err := apiClient.EnqueueBatch(c.Context, runs[start:end])
		if err != nil {
			return fmt.Errorf("enqueue of lines %d to %d (%d runs before them enqueued): %w", lines[start], lines[end-1], start, err)
		}
		if len(answer.Runs) != end-start {
			return fmt.Errorf("the server answered %d outcomes for %d runs", len(answer.Runs), end-start)
		}
		for i, out := range answer.Runs {
			if out.Error != "" {
				failed++
				fmt.Fprintf(c.App.ErrWriter, "%s:%d: %s\n", name, lines[start+i], out.Error)
				continue
			}
			fmt.Println(out.DagRunID)
		}
	}
	if failed > 0 {
		return cli.Exit(fmt.Sprintf("%d of %d runs were not enqueued", failed, len(runs)), 1)
	}
	return nil
}

// enqueueRequestOf is the run that the arguments of enqueue or start ask
// for: a DAG file or a stored DAG's name, then params after `--` (or in
// --params), and --run-id.
func enqueueRequestOf(c *cli.Context) (wire.EnqueueRequest, error) {
	target := c.Args().First()
	params := c.String("params")
	rest := c.Args().Tail()
	// The flag parser leaves the `--` that ends the flags in place.
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	if len(rest) > 0 {
		if params != "" {
			return wire.EnqueueRequest{}, errors.New("give params either with --params or after --, not both")
		}
		params = joinParams(rest)
	}
	req := wire.EnqueueRequest{DagRunID: c.String("run-id"), Params: params}
	if isDagFile(target) {
		data, err := os.ReadFile(target)
		if err != nil {
			return wire.EnqueueRequest{}, err
		}
		req.Yaml, req.File = string(data), filepath.Base(target)
	} else {
		req.DagName = target
	}
	return req, nil
}

// followRun prints a run's step progress as it changes, with blocking
// queries, and returns the run's result as an exit code: 0 succeeded,
// 1 failed, cancelled for a cancelled run (enqueue --wait tells the two
// apart with 2; Dagu's start exits 1 for both).
func followRun(ctx context.Context, apiClient *client.Client, id string, out io.Writer, cancelled int) error {
	if out == nil {
		out = os.Stderr
	}
	var (
		index   uint64
		printed = map[string]string{}
		status  string
	)
	for {
		run, err := apiClient.WaitRun(ctx, id, index, 30*time.Second)
		if err != nil {
			return err
		}
		index = run.ModifyIndex
		if run.Status != status {
			switch run.Status {
			case "queued":
				reason := ""
				if run.Reason != "" {
					reason = " (" + run.Reason + ")"
				}
				fmt.Fprintf(out, "run %s of %s queued%s\n", id, run.DagName, reason)
			case "running":
				fmt.Fprintf(out, "run %s running on %s (attempt %d)\n", id, run.WorkerID, run.Attempt)
			}
			status = run.Status
		}
		for _, step := range run.Steps {
			key := step.Status + "/" + fmt.Sprint(step.Retry) + "/" + fmt.Sprint(step.Repeat) + "/" + step.ChildRunID + "/" + parallelCounts(step)
			if printed[step.Name] == key {
				continue
			}
			printed[step.Name] = key
			fmt.Fprintf(out, "  %s\n", stepLine(step))
		}
		switch run.Status {
		case "succeeded":
			fmt.Fprintf(out, "run %s succeeded in %s\n", id, elapsed(run.StartedAt, run.FinishedAt))
			return nil
		case "failed":
			return cli.Exit(fmt.Sprintf("run %s failed: %s", id, run.Error), exitFailed)
		case "cancelled":
			return cli.Exit(fmt.Sprintf("run %s cancelled", id), cancelled)
		}
	}
}

// stepLine is one line about a step: its status, and how it ended.
func stepLine(step wire.Step) string {
	name := step.Name
	if step.Handler != "" {
		name += " (" + step.Handler + " handler)"
	}
	line := fmt.Sprintf("%-24s %-10s", name, step.Status)
	if step.Repeat > 1 {
		line += fmt.Sprintf(" repeat %d", step.Repeat)
	}
	if step.Retry > 1 {
		line += fmt.Sprintf(" retry %d", step.Retry-1)
	}
	switch step.Status {
	case "succeeded", "failed", "cancelled":
		line += fmt.Sprintf(" exit %d, %s", step.ExitCode, elapsed(step.StartedAt, step.FinishedAt))
	}
	if step.ChildRunID != "" {
		line += " child run " + step.ChildRunID
	}
	if len(step.ParallelChildren) > 0 {
		line += " " + parallelCounts(step)
	}
	if step.Error != "" && step.Status != "succeeded" {
		line += ": " + step.Error
	}
	return line
}

// parallelCounts sums up a parallel step's children: how many started,
// and how many of them ended how.
func parallelCounts(step wire.Step) string {
	if len(step.ParallelChildren) == 0 {
		return ""
	}
	counts := map[string]int{}
	for _, child := range step.ParallelChildren {
		counts[child.Status]++
	}
	line := fmt.Sprintf("%d child runs", len(step.ParallelChildren))
	var parts []string
	for _, status := range []string{"running", "succeeded", "failed", "cancelled"} {
		if counts[status] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[status], status))
		}
	}
	if len(parts) > 0 {
		line += " (" + strings.Join(parts, ", ") + ")"
	}
	return line
}

func elapsed(from, to string) string {
	start, err1 := time.Parse(time.RFC3339Nano, from)
	end, err2 := time.Parse(time.RFC3339Nano, to)
	if err1 != nil || err2 != nil {
		return "-"
	}
	return end.Sub(start).Round(time.Millisecond).String()
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show a DAG run: its steps, output tails and hierarchy",
		Description: "daguha's form names a run by its id; Dagu's names a DAG file or a DAG's name, with\n" +
			"--run-id for one of its runs (without it, the DAG's newest run):\n" +
			"   daguha status RUN_ID\n" +
			"   daguha status etl.yaml --run-id=RUN_ID\n" +
			"   daguha status etl\n" +
			"One argument that is not a DAG file is a run id when a run has it, else a DAG's name.",
		ArgsUsage: "RUN_ID | FILE.yaml|NAME [--run-id=RUN_ID]",
		Flags: append(clientFlags(),
			runIDFlag("a run of the DAG named (Dagu's form)"),
			&cli.IntFlag{Name: "tail", Value: 5, Usage: "lines of each step's output to show (0: none)"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("status takes a run id, or a DAG file or DAG name (with --run-id for one of its runs)")
			}
			apiClient, err := newAPIClient(c)
			if err != nil {
				return err
			}
			run, err := statusRun(c.Context, apiClient, c.Args().First(), c.String("run-id"))
			if err != nil {
				return err
			}
			printRun(os.Stdout, run, c.Int("tail"))
			return nil
		},
	}
}

// statusRun is the run status shows: the run of a DAG with id (Dagu's
// form), the newest run of a DAG file's DAG, or the run whose id arg is,
// else the newest run of the DAG named arg.
func statusRun(ctx context.Context, apiClient *client.Client, arg, id string) (wire.Run, error) {
	if id != "" || isDagFile(arg) {
		name, err := dagNameOf(arg)
		if err != nil {
			return wire.Run{}, err
		}
		if id != "" {
			return runOfDag(ctx, apiClient, name, id)
		}
		run, found, err := latestRun(ctx, apiClient, name)
		if err == nil && !found {
			err = fmt.Errorf("DAG %s has no run", name)
		}
		return run, err
	}
	run, err := apiClient.Run(ctx, arg)
	if client.StatusCode(err) != http.StatusNotFound {
		return run, err
	}
	latest, found, listErr := latestRun(ctx, apiClient, arg)
	switch {
	case listErr != nil:
		return wire.Run{}, err
	case !found:
		return wire.Run{}, fmt.Errorf("%w, and no DAG named %q has a run", err, arg)
	}
	return latest, nil
}

func printRun(out io.Writer, run wire.Run, tail int) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s\t%s\n", k, v)
		}
	}
	row("run", run.DagRunID)
	row("dag", run.DagName)
	row("status", run.Status)
	row("waiting", run.Reason)
	row("params", run.Params)
	if run.WorkerID != "" {
		row("worker", fmt.Sprintf("%s (attempt %d)", run.WorkerID, run.Attempt))
	}
	if run.RootDagRunID != "" && run.RootDagRunID != run.DagRunID {
		row("root", fmt.Sprintf("%s %s", run.RootDagRunName, run.RootDagRunID))
	}
	if run.ParentDagRunID != "" {
		row("parent", fmt.Sprintf("%s %s (step %s)", run.ParentDagRunName, run.ParentDagRunID, run.ParentStepName))
	}
	row("scheduled", run.ScheduledSlot)
	row("enqueued", run.EnqueuedAt)
	row("started", run.StartedAt)
	row("finished", run.FinishedAt)
	row("error", run.Error)
	keys := make([]string, 0, len(run.Outputs))
	for k := range run.Outputs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row("output", k+"="+run.Outputs[k])
	}
	_ = w.Flush()
	if len(run.Steps) > 0 {
		fmt.Fprintln(out, "\nsteps:")
		for _, step := range run.Steps {
			fmt.Fprintf(out, "  %s\n", stepLine(step))
			if tail > 0 && step.OutputTail != "" {
				lines := strings.Split(strings.TrimRight(step.OutputTail, "\n"), "\n")
				if len(lines) > tail {
					lines = lines[len(lines)-tail:]
				}
				for _, l := range lines {
					fmt.Fprintf(out, "      | %s\n", l)
				}
			}
		}
	}
	if len(run.Children) > 0 {
		fmt.Fprintln(out, "\nchildren:")
		for _, child := range run.Children {
			fmt.Fprintf(out, "  %-24s %-10s %s (step %s, worker %s)\n", child.DagName, child.Status, child.DagRunID, child.StepName, child.WorkerID)
		}
	}
}

func cancelCommand() *cli.Command {
	return &cli.Command{
		Name:      "cancel",
		Usage:     "cancel a DAG run and all its descendants",
		ArgsUsage: "RUN_ID",
		Flags:     clientFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("cancel takes one run id")
			}
			apiClient, err := newAPIClient(c)
			if err != nil {
				return err
			}
			id := c.Args().First()
			if err := apiClient.Cancel(c.Context, id); err != nil {
				return err
			}
			fmt.Printf("cancellation of %s and its descendants requested\n", id)
			return nil
		},
	}
}

// dagFiles expands the arguments of `dag push`: files, and the *.yaml and
// *.yml files of directories.
func dagFiles(args []string) ([]wire.DagSource, error) {
	var sources []wire.DagSource
	add := func(path string) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sources = append(sources, wire.DagSource{Name: path, Content: string(data)})
		return nil
	}
	for _, arg := range args {
		info, err := os.Stat(arg)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			if err := add(arg); err != nil {
				return nil, err
			}
			continue
		}
		entries, err := os.ReadDir(arg)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
				if err := add(filepath.Join(arg, e.Name())); err != nil {
					return nil, err
				}
			}
		}
	}
	if len(sources) == 0 {
		return nil, errors.New("no DAG files found")
	}
	return sources, nil
}

func dagCommand() *cli.Command {
	return &cli.Command{
		Name:  "dag",
		Usage: "store, list and show DAG definitions in the cluster",
		Subcommands: []*cli.Command{
			{
				Name:      "push",
				Usage:     "validate DAG files and store them in the cluster (unchanged ones are left alone)",
				ArgsUsage: "FILE.yaml|DIR...",
				Flags:     clientFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return errors.New("dag push takes DAG files or directories")
					}
					sources, err := dagFiles(c.Args().Slice())
					if err != nil {
						return err
					}
					apiClient, err := newAPIClient(c)
					if err != nil {
						return err
					}
					outcomes, err := apiClient.PushDags(c.Context, sources)
					if err != nil {
						return err
					}
					for _, d := range outcomes {
						fmt.Printf("%-10s %s (%s)\n", d.Result, d.Name, d.File)
					}
					return nil
				},
			},
			{
				Name:  "list",
				Usage: "list the stored DAGs",
				Flags: clientFlags(),
				Action: func(c *cli.Context) error {
					apiClient, err := newAPIClient(c)
					if err != nil {
						return err
					}
					dags, err := apiClient.Dags(c.Context)
					if err != nil {
						return err
					}
					w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
					fmt.Fprintln(w, "NAME\tSTEPS\tSCHEDULE\tSELECTOR\tUPDATED")
					for _, d := range dags {
						fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", d.Name, len(d.Steps), orDash(strings.Join(d.Schedule, "; ")), orDash(formatSelector(d.WorkerSelector)), d.UpdatedAt)
					}
					return w.Flush()
				},
			},
			{
				Name:      "show",
				Usage:     "print a stored DAG's YAML as pushed",
				ArgsUsage: "NAME",
				Flags:     clientFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("dag show takes one DAG name")
					}
					apiClient, err := newAPIClient(c)
					if err != nil {
						return err
					}
					dag, err := apiClient.Dag(c.Context, c.Args().First())
					if err != nil {
						return err
					}
					fmt.Print(dag.Source)
					return nil
				},
			},
			{
				Name:      "delete",
				Usage:     "forget a stored DAG (its runs are kept)",
				ArgsUsage: "NAME",
				Flags:     clientFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("dag delete takes one DAG name")
					}
					apiClient, err := newAPIClient(c)
					if err != nil {
						return err
					}
					return apiClient.DeleteDag(c.Context, c.Args().First())
				},
			},
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatSelector(selector map[string]string) string {
	keys := make([]string, 0, len(selector))
	for k := range selector {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + selector[k]
	}
	return strings.Join(parts, ",")
}

func logsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "print the full log of a step, from the worker that ran it",
		ArgsUsage: "RUN_ID STEP",
		Flags: append(clientFlags(),
			&cli.UintFlag{Name: "attempt", Usage: "the attempt whose log to print (default: the latest)"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return errors.New("logs takes a run id and a step name")
			}
			apiClient, err := newAPIClient(c)
			if err != nil {
				return err
			}
			log, err := apiClient.StepLog(c.Context, c.Args().Get(0), c.Args().Get(1), uint32(c.Uint("attempt")))
			if err != nil {
				return err
			}
			defer log.Close()
			_, err = io.Copy(os.Stdout, log)
			return err
		},
	}
}
