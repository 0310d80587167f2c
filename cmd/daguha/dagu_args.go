package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed are the commands whose flags may follow their arguments,
// as on Dagu's command line (`dagu stop etl --run-id=r1`): Dagu's verbs.
var interspersed = []string{"start", "stop", "restart", "retry", "dequeue", "dry", "validate", "status", "enqueue"}

// flagsFirst moves the flags that follow a command's arguments, up to
// `--`, in front of them: urfave/cli stops reading flags at the first
// argument, Dagu's command line does not. What follows `--` (params) is
// left as it is, and so are the arguments' order and every other command.
func flagsFirst(commands []*cli.Command, args []string) []string {
	if len(args) < 3 || !slices.Contains(interspersed, args[1]) {
		return args
	}
	var command *cli.Command
	for _, c := range commands {
		if c.Name == args[1] {
			command = c
		}
	}
	if command == nil {
		return args
	}
	// Which flags take a value (the next word, when not given with =).
	takesValue := map[string]bool{}
	for _, f := range command.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, name := range f.Names() {
			takesValue[name] = !isBool
		}
	}
	var flags, rest []string
	words := args[2:]
	for i := 0; i < len(words); i++ {
		word := words[i]
		if word == "--" {
			rest = append(rest, words[i:]...)
			break
		}
		if !strings.HasPrefix(word, "-") || word == "-" {
			rest = append(rest, word)
			continue
		}
		flags = append(flags, word)
		name, _, withValue := strings.Cut(strings.TrimLeft(word, "-"), "=")
		if !withValue && takesValue[name] && i+1 < len(words) {
			i++
			flags = append(flags, words[i])
		}
	}
	out := append([]string{}, args[:2]...)
	out = append(out, flags...)
	return append(out, rest...)
}
