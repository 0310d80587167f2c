package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/cluster/buildinfo"
	"github.com/daguha/daguha/fsm"
)

// printVersion writes what daguha version and daguha --version print: one
// "key: value" line each, for people and scripts alike.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "version: %s\n", buildinfo.Version())
	fmt.Fprintf(w, "commit: %s\n", buildinfo.Commit())
	fmt.Fprintf(w, "go: %s\n", runtime.Version())
	fmt.Fprintf(w, "state schema: %d\n", fsm.SchemaVersion)
	fmt.Fprintf(w, "wire protocol: %d\n", buildinfo.ProtocolVersion)
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, commit, Go version, replicated-state schema and wire protocol versions",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("version takes no arguments, got %q", c.Args().First())
			}
			printVersion(c.App.Writer)
			return nil
		},
	}
}
