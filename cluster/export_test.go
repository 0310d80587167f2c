package cluster

import "time"

// AdvertiseVersionsForTest makes s advertise other versions in gossip, as
// a server of an older build would (version "" is one from before 0.1.0).
// It exists only in this package's test builds.
func (s *Server) AdvertiseVersionsForTest(version string, schema, protocol int) error {
	s.meta.mu.Lock()
	s.meta.meta.BuildVersion, s.meta.meta.StateSchema, s.meta.meta.WireProtocol = version, schema, protocol
	s.meta.mu.Unlock()
	return s.gossip.UpdateNode(time.Second)
}
