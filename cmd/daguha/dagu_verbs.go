package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/ops/client"
	"github.com/daguha/daguha/ops/wire"
)

// Dagu's command-line verbs (start, stop, restart, retry, dequeue, dry,
// validate; status is in workflows.go) with Dagu's flags and exit codes:
// 0 when the command did what it was asked, 1 otherwise, and, for the
// verbs that follow a run to its end (start, restart, retry), 1 when the
// run did not succeed. See docs/cli.md.

// exitNotSucceeded is Dagu's exit code for a run that did not succeed,
// failed or cancelled alike.
const exitNotSucceeded = 1

func runIDFlag(usage string) *cli.StringFlag {
	return &cli.StringFlag{Name: "run-id", Aliases: []string{"r"}, Usage: usage}
}

func paramsFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "params", Aliases: []string{"p"}, Usage: "the run's params as one string, e.g. \"P1=foo P2=bar\" (or give them after --)"}
}

func quietFlag() *cli.BoolFlag {
	return &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print no step progress, only the result"}
}

// follow is followRun with Dagu's exit codes, its progress on stderr
// unless --quiet.
func follow(c *cli.Context, apiClient *client.Client, id string) error {
	var out io.Writer = os.Stderr
	if c.Bool("quiet") {
		out = io.Discard
	}
	return followRun(c.Context, apiClient, id, out, exitNotSucceeded)
}

// dagNameOf is the name of the DAG an argument names: a DAG file's first
// DAG (its name, else the file's name), or the argument itself.
func dagNameOf(arg string) (string, error) {
	if !isDagFile(arg) {
		return arg, nil
	}
	data, err := os.ReadFile(arg)
	if err != nil {
		return "", err
	}
	f, err := dagfile.Parse(arg, data)
	if err != nil {
		return "", err
	}
	return f.Dags[0].GetName(), nil
}

// runOfDag reads a run and checks that it is a run of the DAG named; Dagu
// finds a run by the DAG's name and the run's id, so another DAG's run
// is not found.
func runOfDag(ctx context.Context, apiClient *client.Client, name, id string) (wire.Run, error) {
	run, err := apiClient.Run(ctx, id)
	if err != nil {
		return wire.Run{}, err
	}
	if run.DagName != name {
		return wire.Run{}, fmt.Errorf("run %s is a run of DAG %s, not of %s", id, run.DagName, name)
	}
	return run, nil
}

// latestRun is the newest run of a DAG.
func latestRun(ctx context.Context, apiClient *client.Client, name string) (wire.Run, bool, error) {
	page, err := apiClient.Runs(ctx, client.RunQuery{DagName: name, Limit: 1})
	if err != nil || len(page.Runs) == 0 {
		return wire.Run{}, false, err
	}
	return page.Runs[0], true, nil
}

func ended(status string) bool {
	return status == "succeeded" || status == "failed" || status == "cancelled"
}

// waitEnded waits, with blocking queries, until a run has ended.
func waitEnded(ctx context.Context, apiClient *client.Client, id string) (wire.Run, error) {
	var index uint64
	for {
		run, err := apiClient.WaitRun(ctx, id, index, 30*time.Second)
		if err != nil {
			return wire.Run{}, err
		}
		if ended(run.Status) {
			return run, nil
		}
		index = run.ModifyIndex
	}
}

func startCommand() *cli.Command {
	return &cli.Command{
		Name:  "start",
		Usage: "run a DAG file or a stored DAG now and follow it to its end (Dagu's start)",
		Description: "The run is enqueued in the cluster and runs on a worker that its selector allows; the\n" +
			"command prints the run id, then each step's progress on stderr, and exits 0 when the run\n" +
			"succeeds and 1 when it fails or is cancelled, as Dagu's start does. Params follow `--`\n" +
			"or come in --params:\n" +
			"   daguha start etl.yaml -- 2026-01-01 REGION=eu\n" +
			"A --run-id that a run has already is refused, as in Dagu (enqueue takes it as a retry).",
		ArgsUsage: "FILE.yaml|NAME [-- PARAMS...]",
		Flags: append(clientFlags(),
			paramsFlag(),
			runIDFlag("the run's id (default: the server makes one up)"),
			quietFlag(),
			&cli.BoolFlag{Name: "no-queue", Aliases: []string{"n"}, Usage: "accepted for Dagu's scripts; every run goes through the cluster's queue"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 {
				return errors.New("start takes a DAG file or a stored DAG's name, then optional params after --")
			}
			req, err := enqueueRequestOf(c)
			if err != nil {
				return err
			}
			apiClient, err := newAPIClient(c)
			if err != nil {
				return err
			}
			if req.DagRunID != "" {
				run, err := apiClient.Run(c.Context, req.DagRunID)
				if err == nil {
					return fmt.Errorf("run id %s already exists for DAG %s", req.DagRunID, run.DagName)
				}
				if client.StatusCode(err) != http.StatusNotFound {
					return err
				}
			}
			resp, err := apiClient.Enqueue(c.Context, req)
			if err != nil {
				return err
			}
			fmt.Println(resp.DagRunID)
			return follow(c, apiClient, resp.DagRunID)
		},
	}
}

func stopCommand() *cli.Command {
	return &cli.Command{
		Name:  "stop",
		Usage: "stop a running run of a DAG, or all of them (Dagu's stop)",
		Description: "With --run-id, that run (and its child runs) is asked to stop; without, every running run\n" +
			"of the DAG, root or child, is. Queued runs are left queued (daguha dequeue removes them). The\n" +
			"command waits until the runs have stopped. A run that has already ended needs no stop: that\n" +
			"is said, and the exit code is 0.",
		ArgsUsage: "FILE.yaml|NAME",
		Flags:     append(clientFlags(), runIDFlag("the run to stop (default: every running run of the DAG)")),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("stop takes one DAG file or DAG name (and --run-id for one run)")
			}
			name, err := dagNameOf(c.Args().First())
			if err != nil {
				return err
			}
			apiClient, err := newAPIClient(c)
			if err != nil {
				return err
			}
			var ids []string
			if id := c.String("run-id"); id != "" {
				if _, err := runOfDag(c.Context, apiClient, name, id); err != nil {
					return err
				}
				err := apiClient.Cancel(c.Context, id)
				switch {
				case client.StatusCode(err) == http.StatusConflict:
					fmt.Printf("run %s of DAG %s is not running: %v\n", id, name, err)
					return nil
				case err != nil:
					return err
				}
				ids = []string{id}
			} else if ids, err = apiClient.CancelRunning(c.Context, name); err != nil {
				return err
			}
			if len(ids) == 0 {
				fmt.Printf("no run of DAG %s is running\n", name)
				return nil
			}
			for _, id := range ids {
				fmt.Printf("stopping run %s of DAG %s\n", id, name)
			}
			for _, id := range ids {
				run, err := waitEnded(c.Context, apiClient, id)
				if err != nil {
					return err
				}
				fmt.Printf("run %s %s\n", id, run.Status)
			}
			return nil
		},
	}
}

func restartCommand() *cli.Command {
	return &cli.Command{
		Name:  "restart",
		Usage: "stop a running run and start it again with the same DAG and params (Dagu's restart)",
		Description: "The run (--run-id, else the DAG's newest run) must be running, as in Dagu. It is stopped,\n" +
			"and once it has ended a new run (a new run id) starts with the DAG and params it had;\n" +
			"the command prints the new run's id and follows it to its end, exiting as start does.",
		ArgsUsage: "FILE.yaml|NAME",
		Flags:     append(clientFlags(), runIDFlag("the run to restart (default: the DAG's newest run)"), quietFlag()),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("restart takes one DAG file or DAG name (and --run-id for one run)")
			}
			name, err := dagNameOf(c.Args().First())
			if err != nil {
				return err
			}
			apiClient, err := newAPIClient(c)
			if err != nil {
				return err
			}
			var run wire.Run
			if id := c.String("run-id"); id != "" {
				if run, err = runOfDag(c.Context, apiClient, name, id); err != nil {
					return err
				}
			} else {
				var found bool
				if run, found, err = latestRun(c.Context, apiClient, name); err != nil {
					return err
				} else if !found {
					return fmt.Errorf("DAG %s has no run to restart", name)
				}
			}
			if run.Status != "running" {
				return fmt.Errorf("DAG %s is not running, current status: %s (run %s)", name, run.Status, run.DagRunID)
			}
			if err := apiClient.Cancel(c.Context, run.DagRunID); err != nil && client.StatusCode(err) != http.StatusConflict {
				return err
			}
			fmt.Fprintf(os.Stderr, "stopping run %s of DAG %s\n", run.DagRunID, name)
			if _, err := waitEnded(c.Context, apiClient, run.DagRunID); err != nil {
				return err
			}
			restarted, err := apiClient.Restart(c.Context, run.DagRunID, "")
			if err != nil {
				return err
			}
			fmt.Println(restarted.DagRunID)
			return follow(c, apiClient, restarted.DagRunID)
		},
	}
}

func retryCommand() *cli.Command {
	return &cli.Command{
		Name:  "retry",
		Usage: "run a finished run again under its run id, as a new attempt (Dagu's retry)",
		Description: "The run must have ended (succeeded, failed or cancelled). Its steps that did not succeed\n" +
			"run again, with every step after them; the others keep their results. With --step, that\n" +
			"step and every step after it run again and the others keep theirs. The run's earlier\n" +
			"attempts stay in its record. The command follows the new attempt to its end and exits as\n" +
			"start does.",
		ArgsUsage: "FILE.yaml|NAME",
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "run-id", Aliases: []string{"r"}, Required: true, Usage: "the run to retry"},
			&cli.StringFlag{Name: "step", Usage: "run again from this step (it and every step after it)"},
			quietFlag(),
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("retry takes one DAG file or DAG name, and --run-id")
			}
			name, err := dagNameOf(c.Args().First())
			if err != nil {
				return err
			}
			apiClient, err := newAPIClient(c)
			if err != nil {
				return err
			}
			id := c.String("run-id")
			if _, err := runOfDag(c.Context, apiClient, name, id); err != nil {
				return err
			}
			if _, err := apiClient.Retry(c.Context, id, c.String("step")); err != nil {
				return err
			}
			fmt.Println(id)
			return follow(c, apiClient, id)
		},
	}
}

func dequeueCommand() *cli.Command {
	return &cli.Command{
		Name:  "dequeue",
		Usage: "remove a queued run from its queue; it ends cancelled (Dagu's dequeue)",
		Description: "The run is named as in Dagu, --dag-run=DAG-NAME:RUN-ID, or by --run-id alone. Current\n" +
			"Dagu names the queue first: with a run named the queue is not needed (the run's own is\n" +
			"used); with no run named, the oldest queued run of that queue is dequeued:\n" +
			"   daguha dequeue --dag-run=etl:run-1\n" +
			"   daguha dequeue default --dag-run=etl:run-1\n" +
			"   daguha dequeue batch\n" +
			"A run that is not queued is refused, naming its status.",
		ArgsUsage: "[QUEUE]",
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "dag-run", Aliases: []string{"d"}, Usage: "the run, as DAG-NAME:RUN-ID"},
			runIDFlag("the run, by its id alone"),
		),
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return errors.New("dequeue takes at most a queue's name, and --dag-run=DAG-NAME:RUN-ID or --run-id")
			}
			apiClient, err := newAPIClient(c)
			if err != nil {
				return err
			}
			name, id := "", c.String("run-id")
			if ref := c.String("dag-run"); ref != "" {
				if id != "" {
					return errors.New("give the run either with --dag-run or with --run-id, not both")
				}
				var ok bool
				if name, id, ok = strings.Cut(ref, ":"); !ok || name == "" || id == "" {
					return fmt.Errorf("--dag-run=%s: want DAG-NAME:RUN-ID", ref)
				}
			}
			if id == "" {
				queue := c.Args().First()
				if queue == "" {
					return errors.New("dequeue needs --dag-run=DAG-NAME:RUN-ID, --run-id, or a queue's name")
				}
				run, found, err := oldestQueued(c.Context, apiClient, queue)
				if err != nil {
					return err
				}
				if !found {
					return fmt.Errorf("no run is queued in queue %s", queue)
				}
				name, id = run.DagName, run.DagRunID
			}
			if name != "" {
				if _, err := runOfDag(c.Context, apiClient, name, id); err != nil {
					return err
				}
			}
			dequeued, err := apiClient.Dequeue(c.Context, id)
			if err != nil {
				return err
			}
			fmt.Printf("dequeued run %s: %s\n", id, dequeued.Status)
			return nil
		},
	}
}

// maxQueuePages bounds the pages of queued runs dequeue reads to find a
// queue's oldest.
const maxQueuePages = 100

// oldestQueued finds the queued run of a queue that was enqueued first.
func oldestQueued(ctx context.Context, apiClient *client.Client, queue string) (wire.Run, bool, error) {
	var (
		oldest wire.Run
		found  bool
		after  string
	)
	for range maxQueuePages {
		page, err := apiClient.Runs(ctx, client.RunQuery{Status: "queued", Limit: 1000, After: after})
		if err != nil {
			return wire.Run{}, false, err
		}
		for _, run := range page.Runs {
			if run.Queue == queue && (!found || run.CreateIndex < oldest.CreateIndex) {
				oldest, found = run, true
			}
		}
		if !page.Truncated {
			return oldest, found, nil
		}
		after = page.Next
	}
	return wire.Run{}, false, fmt.Errorf("more than %d queued runs: name the run with --dag-run", maxQueuePages*1000)
}

func validateCommand() *cli.Command {
	return &cli.Command{
		Name:  "validate",
		Usage: "check DAG files without running them (Dagu's validate)",
		Description: "Every problem of every file is printed on stderr as FILE:LINE: KEY: MESSAGE; the exit code\n" +
			"is 1 when there is any. The files are checked here, with the rules a server applies when\n" +
			"they are pushed or run (a child DAG the files do not define may be a stored one: dry and\n" +
			"dag push look it up).",
		ArgsUsage: "FILE.yaml...",
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return errors.New("validate takes one or more DAG files")
			}
			problems, bad := 0, 0
			for _, path := range c.Args().Slice() {
				found := validateFile(path)
				if len(found) == 0 {
					continue
				}
				bad++
				problems += len(found)
				for _, p := range found {
					fmt.Fprintln(os.Stderr, p)
				}
			}
			if problems > 0 {
				return cli.Exit(fmt.Sprintf("%d %s in %d of %d files", problems, plural(problems, "problem", "problems"), bad, c.NArg()), 1)
			}
			return nil
		},
	}
}

// validateFile prints what a valid file holds and returns the problems
// of an invalid one, each with its file and line.
func validateFile(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", path, err)}
	}
	f, err := dagfile.Parse(path, data)
	var problems dagfile.Problems
	switch {
	case errors.As(err, &problems):
		lines := make([]string, len(problems))
		for i, p := range problems {
			lines[i] = p.Error()
		}
		return lines
	case err != nil:
		return []string{fmt.Sprintf("%s: %v", path, err)}
	}
	main := f.Dags[0]
	line := fmt.Sprintf("%s: valid: DAG %s, %d %s", path, main.GetName(), len(main.GetSteps()), plural(len(main.GetSteps()), "step", "steps"))
	if locals := len(f.Dags) - 1; locals > 0 {
		line += fmt.Sprintf(", %d local %s", locals, plural(locals, "DAG", "DAGs"))
	}
	fmt.Println(line)
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
