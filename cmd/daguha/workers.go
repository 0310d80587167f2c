package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/ops/wire"
)

// healthMarks are the seed's indicators; the word is printed too, so the
// colour is not the only carrier of health.
var healthMarks = map[string]string{"HEALTHY": "🟢", "WARNING": "🟡", "UNHEALTHY": "🔴", "OFFLINE": "⚫"}

func workersCommand() *cli.Command {
	return &cli.Command{
		Name:  "workers",
		Usage: "list workers with their health, labels and running tasks",
		Flags: append(clientFlags(),
			&cli.BoolFlag{Name: "json", Usage: "print the API's JSON"},
			&cli.BoolFlag{Name: "stale", Usage: "this server's own view instead of the leader's"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return errors.New("workers takes no arguments")
			}
			apiClient, err := newAPIClient(c)
			if err != nil {
				return err
			}
			raw, err := apiClient.WorkersJSON(c.Context, c.Bool("stale"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				fmt.Println(string(raw))
				return nil
			}
			var answer wire.Workers
			if err := json.Unmarshal(raw, &answer); err != nil {
				return err
			}
			return printWorkers(c.App.Writer, answer, time.Now())
		},
	}
}

// printWorkers writes the workers as a table, with the version each runs
// (from gossip: "unknown" for one the server's gossip does not know).
func printWorkers(out io.Writer, answer wire.Workers, now time.Time) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tVERSION\tHEALTH\tLAST HEARTBEAT\tLABELS\tEXECUTORS\tRUNNING")
	anyAuto := false
	for _, worker := range answer.Workers {
		age := "never"
		if t, err := time.Parse(time.RFC3339Nano, worker.LastHeartbeat); err == nil {
			age = now.Sub(t).Round(100*time.Millisecond).String() + " ago"
		}
		keys := make([]string, 0, len(worker.Labels))
		for k := range worker.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		labels := make([]string, 0, len(keys))
		for _, k := range keys {
			label := k + "=" + worker.Labels[k]
			if slices.Contains(worker.AutoLabels, k) {
				label += "*"
				anyAuto = true
			}
			labels = append(labels, label)
		}
		executors := strings.Join(worker.Executors, ",")
		if executors == "" {
			executors = "-"
		}
		var tasks []string
		for _, task := range worker.RunningTasks {
			name := task.DagName + "/" + task.DagRunID
			if task.ParentDagRunID != "" {
				name += " (root " + task.RootDagRunName + ")"
			}
			tasks = append(tasks, name)
		}
		version := worker.Version
		if version == "" {
			version = "-" // a server older than versions in /api/v2/workers
		}
		fmt.Fprintf(w, "%s\t%s\t%s %s\t%s\t%s\t%s\t%s\n", worker.ID, version, healthMarks[worker.HealthStatus], worker.HealthStatus, age,
			strings.Join(labels, ","), executors, strings.Join(tasks, ", "))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if anyAuto {
		fmt.Fprintln(out, "* fingerprinted by the worker (the others were given by hand)")
	}
	return nil
}
