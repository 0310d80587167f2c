package cluster

import (
	"fmt"
	"slices"
)

// signingKeysConflict says why two servers' signing keys cannot work
// together, or "" when they can: each server's signing key must be among
// the other's keys (so tokens verify whoever leads), or both must use the
// cluster's own key.
func signingKeysConflict(mine, theirs []string) string {
	switch {
	case len(mine) == 0 && len(theirs) == 0:
		return ""
	case len(mine) == 0:
		return "it has a signing key configured and this server has none"
	case len(theirs) == 0:
		return "this server has a signing key configured and it has none"
	case !slices.Contains(mine, theirs[0]):
		return fmt.Sprintf("it signs with key %s, which this server does not have (this server has %v)", theirs[0], mine)
	case !slices.Contains(theirs, mine[0]):
		return fmt.Sprintf("this server signs with key %s, which it does not have (it has %v)", mine[0], theirs)
	}
	return ""
}

// keyConflict returns the first live server whose signing keys conflict
// with this server's, as an error naming it, or nil.
func (s *Server) keyConflict() error {
	for _, m := range s.members.list(RoleServer) {
		if m.Status != MemberAlive || m.Name == s.config.NodeName {
			continue
		}
		if why := signingKeysConflict(s.config.SigningKeyIDs, m.Meta.SigningKeys); why != "" {
			return fmt.Errorf("signing key mismatch with server %s: %s; give every server the same coordinator.signingKey", m.Name, why)
		}
	}
	return nil
}

// watchKeyConflicts stops a server that has never been part of a cluster
// (no Raft state at start) when its signing keys do not match the other
// servers': it must not join and make every worker's lease unverifiable
// after the next failover. A server with state only reports the mismatch.
func (s *Server) watchKeyConflicts() {
	changed := s.members.subscribe()
	reported := ""
	for {
		if err := s.keyConflict(); err != nil {
			if !s.hadStateAtStart {
				s.logger.Error("refusing to start", "error", err)
				select {
				case s.fatal <- err:
				default:
				}
				return
			}
			if err.Error() != reported {
				s.logger.Error("servers disagree on the signing key", "error", err)
				reported = err.Error()
			}
		}
		select {
		case <-changed:
		case <-s.shutdownCh:
			return
		}
	}
}

// Fatal receives an error when the server must stop (it cannot safely be
// part of the cluster it found).
func (s *Server) Fatal() <-chan error { return s.fatal }
