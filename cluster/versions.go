package cluster

import (
	"fmt"
	"strings"

	"github.com/daguha/daguha/fsm"
)

// UpgradeError is a command the leader refused to write because a server
// of the Raft configuration does not read (or may not read) the state
// schema that introduced the command's type: it would stop on the entry.
// Nothing was written; the same call succeeds once every server runs a
// release that reads the schema. It travels between servers as gRPC's
// FailedPrecondition, marked so that it arrives as an UpgradeError.
type UpgradeError struct{ Msg string }

func (e *UpgradeError) Error() string { return e.Msg }

// checkServersRead is the leader's version check, run before it appends
// a command: every server of the Raft configuration, voters and
// non-voters alike (both apply the log), must advertise in this leader's
// gossip view a state schema at least the one the command's type needs
// (fsm.SchemaOf). A server that is down counts by what it last
// advertised: it comes back on the data directory that version wrote,
// with that build or a newer one (going back to an older build is not
// supported once a newer schema's command is written), so one server's
// outage does not stop retries. A server gossip has never heard of may
// run anything: it counts as lacking the schema. Commands of schema 0, and those carrying fsm.IgnoreUnknown,
// are not checked. It reads the configuration only for commands that
// need a newer schema, so the leader's own frequent commands (leases,
// step reports) cost nothing more.
func (s *Server) checkServersRead(t fsm.MessageType) error {
	if !UpgradeChecked {
		return nil
	}
	name, need := fsm.SchemaOf(t)
	if need == 0 {
		return nil
	}
	servers, err := s.configuration()
	if err != nil {
		return &RetryableError{Err: fmt.Errorf("read the raft configuration for the version check: %w", err)}
	}
	ids := make([]string, 0, len(servers))
	for _, server := range servers {
		ids = append(ids, string(server.ID))
	}
	return schemaGate(name, need, ids, s.members.get)
}

// schemaGate is checkServersRead's rule, over the servers' ids and a
// lookup of their gossip members: nil when every one advertises (or, when
// down, last advertised) schema need, else an UpgradeError that names each server that lacks it
// and what it runs.
func schemaGate(command string, need int, servers []string, member func(string) (Member, bool)) error {
	var lacking []string
	for _, id := range servers {
		m, known := member(id)
		switch {
		case !known:
			lacking = append(lacking, fmt.Sprintf("%s is not known in gossip, so what it runs is unknown", id))
		case m.Meta.StateSchema < need && m.Status != MemberAlive:
			lacking = append(lacking, fmt.Sprintf("%s is %s in gossip and last ran daguha %s (state schema %d)",
				id, m.Status, m.Meta.Versions().Version, m.Meta.StateSchema))
		case m.Meta.StateSchema < need:
			lacking = append(lacking, fmt.Sprintf("%s runs daguha %s (state schema %d)", id, m.Meta.Versions().Version, m.Meta.StateSchema))
		}
	}
	if len(lacking) == 0 {
		return nil
	}
	release := "a later release"
	if need < len(fsm.SchemaReleases) {
		release = "daguha " + fsm.SchemaReleases[need]
	}
	return &UpgradeError{Msg: fmt.Sprintf("%s needs every server at state schema %d or later (%s); %s: finish upgrading the servers first",
		command, need, release, strings.Join(lacking, "; "))}
}
