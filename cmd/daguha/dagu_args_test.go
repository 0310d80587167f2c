package main

import (
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

// Dagu's verbs read their flags wherever they are, as Dagu's command line
// does; params after -- and every other command are left as they are.
func TestFlagsMayFollowTheArgumentsOfDagusVerbs(t *testing.T) {
	commands := []*cli.Command{stopCommand(), startCommand(), workersCommand()}
	cases := []struct{ in, want []string }{
		{[]string{"daguha", "stop", "etl", "--run-id=r1"}, []string{"daguha", "stop", "--run-id=r1", "etl"}},
		{[]string{"daguha", "stop", "etl", "-r", "r1"}, []string{"daguha", "stop", "-r", "r1", "etl"}},
		{[]string{"daguha", "start", "etl.yaml", "-q", "--run-id", "x", "--", "--not-a-flag", "A=1"},
			[]string{"daguha", "start", "-q", "--run-id", "x", "etl.yaml", "--", "--not-a-flag", "A=1"}},
		{[]string{"daguha", "start", "--params=A=1", "etl.yaml"}, []string{"daguha", "start", "--params=A=1", "etl.yaml"}},
		{[]string{"daguha", "workers", "x", "--json"}, []string{"daguha", "workers", "x", "--json"}},
		{[]string{"daguha"}, []string{"daguha"}},
	}
	for _, tc := range cases {
		if got := flagsFirst(commands, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("flagsFirst(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
