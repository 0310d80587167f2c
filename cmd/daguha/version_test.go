package main

import (
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/daguha/daguha/cluster/buildinfo"
	"github.com/daguha/daguha/fsm"
)

// semver is MAJOR.MINOR.PATCH with no leading zeros (semver.org, without
// pre-release or build parts: VERSION names releases).
var semver = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)

func TestVersionFallbackMatchesVERSIONFile(t *testing.T) {
	raw, err := os.ReadFile("../../VERSION")
	if err != nil {
		t.Fatalf("read the repository's VERSION file: %v", err)
	}
	release := strings.TrimSpace(string(raw))
	if !semver.MatchString(release) {
		t.Fatalf("VERSION holds %q, want a semantic version MAJOR.MINOR.PATCH", release)
	}
	if want := release + "-dev"; buildinfo.FallbackVersion != want {
		t.Fatalf("buildinfo.FallbackVersion is %q, VERSION is %q: set buildinfo.FallbackVersion to %q", buildinfo.FallbackVersion, release, want)
	}
}

// TestVersionCommand runs the binary as the tests build it (no -ldflags):
// daguha version and daguha --version print the same five fields, with
// the fallback version and the commit Go recorded.
func TestVersionCommand(t *testing.T) {
	want := map[string]string{
		"version":       buildinfo.FallbackVersion,
		"go":            runtime.Version(),
		"state schema":  strconv.Itoa(fsm.SchemaVersion),
		"wire protocol": strconv.Itoa(buildinfo.ProtocolVersion),
	}
	var first string
	for _, args := range [][]string{{"version"}, {"--version"}} {
		stdout, stderr, code := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("daguha %v: exit %d, stderr %q", args, code, stderr)
		}
		fields := map[string]string{}
		var keys []string
		for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
			key, value, ok := strings.Cut(line, ": ")
			if !ok {
				t.Fatalf("daguha %v: line %q is not \"key: value\"; output:\n%s", args, line, stdout)
			}
			fields[key] = value
			keys = append(keys, key)
		}
		if got := strings.Join(keys, ","); got != "version,commit,go,state schema,wire protocol" {
			t.Fatalf("daguha %v printed the fields %s; output:\n%s", args, got, stdout)
		}
		for key, value := range want {
			if fields[key] != value {
				t.Errorf("daguha %v: %s is %q, want %q", args, key, fields[key], value)
			}
		}
		// Unstamped, the commit is the one Go recorded from the checkout,
		// or "unknown" where it recorded none (GOFLAGS=-buildvcs=false, or
		// no git).
		if !regexp.MustCompile(`^([0-9a-f]{40}(-dirty)?|unknown)$`).MatchString(fields["commit"]) {
			t.Errorf("daguha %v: commit is %q, want a 40-hex revision or unknown", args, fields["commit"])
		}
		if first == "" {
			first = stdout
		} else if stdout != first {
			t.Errorf("daguha --version printed\n%s\ndaguha version printed\n%s", stdout, first)
		}
	}
}
