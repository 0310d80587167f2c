package cluster

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/daguha/daguha/cluster/identity"
)

// keyCheckInterval is how often members that could not be asked about
// their signing keys yet are asked again.
const keyCheckInterval = 2 * time.Second

// signingKeysConflict says why two servers' signing keys cannot work
// together, or "" when they can: each server's signing key must be among
// the other's keys (so tokens verify whoever leads), or both must use the
// cluster's own key. mine are this server's key fingerprints as operators
// see them (dispatch.KeyID), signing one first; mineComparable the same
// keys in the form theirs has (keyed with the cluster token, or equal to
// mine). Only this server's fingerprints are named: theirs may be keyed.
func signingKeysConflict(mine, mineComparable, theirs []string) string {
	switch {
	case len(mine) == 0 && len(theirs) == 0:
		return ""
	case len(mine) == 0:
		return "it has a signing key configured and this server has none"
	case len(theirs) == 0:
		return "this server has a signing key configured and it has none"
	case !slices.Contains(mineComparable, theirs[0]):
		return fmt.Sprintf("it signs with a key this server does not have (this server has %v)", mine)
	case !slices.Contains(theirs, mineComparable[0]):
		return fmt.Sprintf("this server signs with key %s, which it does not have", mine[0])
	}
	return ""
}

// keyMismatch is the error of a signing key conflict with a server.
func keyMismatch(server, why string) error {
	return fmt.Errorf("signing key mismatch with server %s: %s; give every server the same coordinator.signingKey", server, why)
}

// memberKeysConflict compares this server's signing keys with a proven
// server's. In the daguha_trust_off build it takes gossip's word for the
// member's keys instead, as servers did before gossip stopped carrying
// them.
func (s *Server) memberKeysConflict(proven provenServer) (string, error) {
	if !identity.Enforced {
		return signingKeysConflict(s.config.SigningKeyIDs, s.config.SigningKeyIDs, proven.member.Meta.SigningKeys), nil
	}
	return proven.keysConflict(s.config.SigningKeyIDs)
}

// neverInCluster reports whether this server has never been part of a
// cluster: no Raft state on disk at start and none written since (it did
// not bootstrap, and no leader replicated to it). Only such a server may
// refuse to start over a conflict; one in a cluster reports it. The
// daguha_trust_off build looks only at the state at start, as servers did
// before, which kept a server's whole first run "fresh".
func (s *Server) neverInCluster() bool {
	if !identity.Enforced {
		return !s.hadStateAtStart
	}
	return !s.HasRaftState()
}

// watchKeyConflicts compares this server's signing keys with every other
// live server's, learnt from the server itself (RaftState, after it proved
// it is the server gossip names), never from gossip. A server that has
// never been part of a cluster stops when they conflict: it must not join
// and make every worker's lease unverifiable after the next failover. A
// server in a cluster only reports the mismatch.
func (s *Server) watchKeyConflicts() {
	changed := s.members.subscribe()
	ticker := time.NewTicker(keyCheckInterval)
	defer ticker.Stop()
	// compared holds, by member name, the gossip record whose keys were
	// compared: a member is asked again only when it changes (a restart).
	compared := map[string]string{}
	reported := map[string]bool{}
	for {
		for _, err := range s.keyConflicts(compared) {
			if s.neverInCluster() {
				s.logger.Error("refusing to start", "error", err)
				select {
				case s.fatal <- err:
				default:
				}
				return
			}
			if !reported[err.Error()] {
				s.logger.Error("servers disagree on the signing key", "error", err)
				reported[err.Error()] = true
			}
		}
		select {
		case <-changed:
		case <-ticker.C:
		case <-s.shutdownCh:
			return
		}
	}
}

// keyConflicts asks every live server not compared yet for its signing
// keys and returns the conflicts found. A member that cannot be asked, or
// does not prove it is a server, is skipped (proveServer logs why) and
// asked again later; its gossip record alone never counts.
func (s *Server) keyConflicts(compared map[string]string) []error {
	var conflicts []error
	for _, member := range s.members.list(RoleServer) {
		if member.Status != MemberAlive || member.Name == s.config.NodeName {
			continue
		}
		if !identity.Enforced {
			// The daguha_trust_off build: gossip's word, as before.
			if why := signingKeysConflict(s.config.SigningKeyIDs, s.config.SigningKeyIDs, member.Meta.SigningKeys); why != "" {
				conflicts = append(conflicts, keyMismatch(member.Name, why))
			}
			continue
		}
		record := member.Meta.GRPCAddr + " " + member.Meta.RaftAddr + " " + member.Since.String()
		if compared[member.Name] == record {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		proven, err := s.proveServer(ctx, member)
		cancel()
		if err != nil {
			continue
		}
		compared[member.Name] = record
		why, err := s.memberKeysConflict(proven)
		switch {
		case err != nil:
			s.logger.Warn("cannot compare signing keys with a server", "server", member.Name, "reason", err)
		case why != "":
			conflicts = append(conflicts, keyMismatch(member.Name, why))
		}
	}
	return conflicts
}

// Fatal receives an error when the server must stop (it cannot safely be
// part of the cluster it found).
func (s *Server) Fatal() <-chan error { return s.fatal }
