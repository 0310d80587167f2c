package dispatch

import "github.com/daguha/daguha/dispatch/logticket"

// The leader's side of log tickets (package logticket says what one is):
// it grants one with each task, and a server computes them again to
// fetch a run's step logs from its worker.

// LogTicket is the ticket the signer grants with a task: under its first
// key, the one it signs lease tokens with.
func (s *Signer) LogTicket(runID string, attempt uint32, workerID string) string {
	return logticket.Sign(s.keys[0], runID, attempt, workerID)
}

// LogTickets are the tickets of an attempt under every signing key this
// server knows: the configured ones and the one the cluster made and
// keeps in its state (used before keys were configured), so logs of runs
// granted before a key rotation stay readable. Empty when it knows none.
func (d *Dispatcher) LogTickets(runID string, attempt uint32, workerID string) []string {
	keys := append([][]byte(nil), d.config.SigningKeys...)
	if d.backend != nil {
		if meta := d.backend.State().ClusterMeta(); meta != nil {
			keys = append(keys, meta.GetSigningKey())
		}
	}
	var tickets []string
	seen := map[string]bool{}
	for _, key := range keys {
		if len(key) == 0 {
			continue
		}
		ticket := logticket.Sign(key, runID, attempt, workerID)
		if !seen[ticket] && len(tickets) < logticket.MaxPerRequest {
			seen[ticket] = true
			tickets = append(tickets, ticket)
		}
	}
	return tickets
}
