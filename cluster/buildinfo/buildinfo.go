// Package buildinfo is the one home of what a daguha binary says it is:
// its version and commit (stamped by the Makefile), and the version of the
// wire protocol it speaks. Gossip, the API's health answers and daguha
// version all read them here, so they cannot disagree. It imports nothing
// of daguha; the replicated state's schema version is fsm.SchemaVersion.
package buildinfo

import "runtime/debug"

// FallbackVersion is the version of a build the Makefile did not stamp
// (go run, go build, the tests' builds): the VERSION file's, marked -dev.
// cmd/daguha's TestVersionFallbackMatchesVERSIONFile keeps the two equal.
const FallbackVersion = "0.1.0-dev"

// ProtocolVersion is the version of daguha's wire protocol: the gRPC
// services and messages of proto/daguha/v1 that servers and workers speak
// to each other, and the Raft transport between servers. Bump it when a
// service, method or field is added or changes meaning, so that a mixed
// cluster's parts can tell what the others understand (docs/upgrades.md).
// daguha 0.1.0 is 1.
const ProtocolVersion = 1

// version and commit are stamped by the Makefile (make build, release,
// image) with -ldflags "-X github.com/daguha/daguha/cluster/buildinfo.version=...
// -X github.com/daguha/daguha/cluster/buildinfo.commit=...".
var (
	version string
	commit  string
)

// Version is the version this binary reports.
func Version() string {
	if version != "" {
		return version
	}
	return FallbackVersion
}

// Commit is the commit this binary was built from: the stamped one, else
// the one Go recorded from the checkout (with -dirty when it had
// uncommitted changes), else "unknown".
func Commit() string {
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
