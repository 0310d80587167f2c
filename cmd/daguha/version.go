package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/daguha/daguha/fsm"
	"github.com/daguha/daguha/rpc"
)

// fallbackVersion is the version of a build the Makefile did not stamp
// (go run, go build, the tests' builds): the VERSION file's, marked -dev.
// TestVersionFallbackMatchesVERSIONFile keeps the two equal.
const fallbackVersion = "0.1.0-dev"

// version and commit are stamped by the Makefile (make build, release,
// image) with -ldflags "-X main.version=... -X main.commit=...".
var (
	version string
	commit  string
)

// buildVersion is the version this binary reports.
func buildVersion() string {
	if version != "" {
		return version
	}
	return fallbackVersion
}

// buildCommit is the commit this binary was built from: the stamped one,
// else the one Go recorded from the checkout (with -dirty when it had
// uncommitted changes), else "unknown".
func buildCommit() string {
	if commit != "" {
		return commit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var revision string
	var modified bool
	for _, setting := range info.Settings {
		switch setting.Key {
		case "vcs.revision":
			revision = setting.Value
		case "vcs.modified":
			modified = setting.Value == "true"
		}
	}
	if revision == "" {
		return "unknown"
	}
	if modified {
		revision += "-dirty"
	}
	return revision
}

// printVersion writes what daguha version and daguha --version print: one
// "key: value" line each, for people and scripts alike.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "version: %s\n", buildVersion())
	fmt.Fprintf(w, "commit: %s\n", buildCommit())
	fmt.Fprintf(w, "go: %s\n", runtime.Version())
	fmt.Fprintf(w, "state schema: %d\n", fsm.SchemaVersion)
	fmt.Fprintf(w, "wire protocol: %d\n", rpc.ProtocolVersion)
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
