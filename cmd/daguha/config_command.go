package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

// secretFlags are masked by `config show`.
var secretFlags = map[string]bool{"coordinator.signing-key": true, "encrypt": true, "api-token": true, "api-read-token": true, "cluster-token": true, "smtp.password": true}

// commandFlags are the flags of the command a configuration is for.
func commandFlags(name string) ([]cli.Flag, error) {
	switch name {
	case "agent":
		return agentFlags(), nil
	case "start-all", "coordinator":
		return seedServerCommand(name, "").Flags, nil
	case "worker":
		return workerCommand().Flags, nil
	}
	return nil, fmt.Errorf("--for %q: want agent, start-all, coordinator or worker", name)
}

// effective runs a command's flag set over args (and the environment and
// config file) and calls fn with the result, without running the command.
func effective(name string, args []string, fn func(c *cli.Context, from sources, unknown []string) error) error {
	flags, err := commandFlags(name)
	if err != nil {
		return err
	}
	probe := &cli.Command{Name: name, Flags: flags, Action: func(c *cli.Context) error {
		from, unknown, err := applyConfig(c)
		if err != nil {
			return err
		}
		return fn(c, from, unknown)
	}}
	app := &cli.App{Name: "daguha", Commands: []*cli.Command{probe}, ExitErrHandler: func(*cli.Context, error) {}}
	return app.Run(append([]string{"daguha", name}, args...))
}

func showValue(c *cli.Context, name string) string {
	switch v := c.Value(name).(type) {
	case cli.StringSlice:
		return strings.Join(v.Value(), ",")
	case *cli.StringSlice:
		return strings.Join(v.Value(), ",")
	default:
		return fmt.Sprint(v)
	}
}

func configCommand() *cli.Command {
	forFlag := &cli.StringFlag{Name: "for", Value: "agent", Usage: "the command whose settings to use: agent, start-all, coordinator or worker"}
	return &cli.Command{
		Name:  "config",
		Usage: "show or check the configuration",
		Subcommands: []*cli.Command{
			{
				Name:      "show",
				Usage:     "print the effective settings of a command and where each came from (secrets masked)",
				ArgsUsage: "[FLAGS OF THAT COMMAND...]",
				Flags:     []cli.Flag{forFlag},
				Action: func(c *cli.Context) error {
					return effective(c.String("for"), c.Args().Slice(), func(cc *cli.Context, from sources, unknown []string) error {
						w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
						fmt.Fprintln(w, "SETTING\tVALUE\tFROM")
						var names []string
						for _, f := range cc.Command.Flags {
							names = append(names, f.Names()[0])
						}
						sort.Strings(names)
						for _, name := range names {
							value := showValue(cc, name)
							if secretFlags[name] && value != "" {
								value = "(set, hidden)"
							}
							fmt.Fprintf(w, "%s\t%s\t%s\n", name, value, from.where(name))
						}
						for _, key := range unknown {
							fmt.Fprintf(w, "%s\t\tunknown key in the config file, ignored\n", key)
						}
						return w.Flush()
					})
				},
			},
			{
				Name:      "validate",
				Usage:     "check a config file for every command that reads it",
				ArgsUsage: "FILE",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return errors.New("config validate takes one file")
					}
					var problems []string
					for _, name := range []string{"start-all", "worker"} {
						err := effective(name, []string{"--config=" + c.Args().First()}, func(cc *cli.Context, from sources, unknown []string) error {
							for _, key := range unknown {
								problems = append(problems, "unknown key "+key)
							}
							return checkSettings(cc, from)
						})
						if err != nil {
							problems = append(problems, err.Error())
						}
					}
					if len(problems) > 0 {
						return fmt.Errorf("%s: %s", c.Args().First(), strings.Join(dedupe(problems), "; "))
					}
					fmt.Printf("%s: ok\n", c.Args().First())
					return nil
				},
			},
		},
	}
}

func dedupe(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
