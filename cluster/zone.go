package cluster

import (
	"fmt"
	"sort"
	"strings"
)

// zoneConflict names the live servers whose schedule zone differs from
// this server's, or "" when every server that says one says the same.
func (s *Server) zoneConflict() string {
	mine := s.config.ScheduleZone
	if mine == "" {
		return ""
	}
	var others []string
	for _, m := range s.members.list(RoleServer) {
		if m.Status != MemberAlive || m.Name == s.config.NodeName || m.Meta.Zone == "" || m.Meta.Zone == mine {
			continue
		}
		others = append(others, fmt.Sprintf("%s reads them in %s", m.Name, m.Meta.Zone))
	}
	if len(others) == 0 {
		return ""
	}
	sort.Strings(others)
	return fmt.Sprintf("this server reads schedules without CRON_TZ= in %s, %s: a DAG fires at another hour after a failover; give every server the same -tz", mine, strings.Join(others, ", "))
}

// watchZoneConflicts warns, once per difference, while servers read
// schedules in different zones. Only a warning: the cluster works, its
// schedules shift with the leader.
func (s *Server) watchZoneConflicts() {
	changed := s.members.subscribe()
	reported := ""
	for {
		if why := s.zoneConflict(); why != reported {
			if why != "" {
				s.logger.Warn("servers disagree on the schedule zone", "problem", why)
			}
			reported = why
		}
		select {
		case <-changed:
		case <-s.shutdownCh:
			return
		}
	}
}
