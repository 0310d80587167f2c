// Command daguha is the one binary of daguha: servers, workers and the
// client commands. This package parses flags and wires packages together;
// behaviour lives in the packages it calls.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/cluster/buildinfo"
	"github.com/daguha/daguha/ops/initproc"
)

func main() {
	// As a container's first process, be its init (see ops/initproc).
	if code, ran := initproc.Run(); ran {
		os.Exit(code)
	}
	cli.VersionPrinter = func(c *cli.Context) { printVersion(c.App.Writer) }
	app := &cli.App{
		Name:    "daguha",
		Usage:   "a highly available coordinator for Dagu-style distributed workflows",
		Version: buildinfo.Version(),
		Commands: []*cli.Command{
			agentCommand(),
			seedServerCommand("start-all", "run a server with the API (Dagu's start-all); alone it is its own cluster"),
			seedServerCommand("coordinator", "run a coordinator server (Dagu's coordinator); alone it is its own cluster"),
			workerCommand(),
			enqueueCommand(),
			startCommand(),
			stopCommand(),
			restartCommand(),
			retryCommand(),
			dequeueCommand(),
			dryCommand(),
			validateCommand(),
			statusCommand(),
			cancelCommand(),
			logsCommand(),
			dagCommand(),
			workersCommand(),
			keygenCommand(),
			tlsCommand(),
			operatorCommand(),
			snapshotCommand(),
			configCommand(),
			healthCommand(),
			versionCommand(),
		},
	}
	annotateConfigKeys(app.Commands)
	if err := app.Run(flagsFirst(app.Commands, os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "daguha:", err)
		os.Exit(1)
	}
}
