package dispatch

import (
	"fmt"
	"sort"
	"sync"
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Health states of a worker, as the seed names them in the API.
const (
	Healthy   = "HEALTHY"
	Warning   = "WARNING"
	Unhealthy = "UNHEALTHY"
	Offline   = "OFFLINE"
)

// Thresholds turn the age of a worker's last heartbeat into its health:
// HEALTHY under Warning, WARNING up to Unhealthy, UNHEALTHY past it, and
// OFFLINE past Offline (the seed's 5 s, 15 s and 30 s by default).
type Thresholds struct {
	Warning   time.Duration
	Unhealthy time.Duration
	Offline   time.Duration
}

// DefaultThresholds are the seed's.
var DefaultThresholds = Thresholds{Warning: 5 * time.Second, Unhealthy: 15 * time.Second, Offline: 30 * time.Second}

// Validate checks that the thresholds grow.
func (t Thresholds) Validate() error {
	if t.Warning <= 0 || t.Unhealthy <= t.Warning || t.Offline <= t.Unhealthy {
		return fmt.Errorf("health thresholds must grow: warning %s < unhealthy %s < offline %s, all above zero", t.Warning, t.Unhealthy, t.Offline)
	}
	return nil
}

// Status is the health for a heartbeat that is age old.
func (t Thresholds) Status(age time.Duration) string {
	switch {
	case age < t.Warning:
		return Healthy
	case age <= t.Unhealthy:
		return Warning
	case age <= t.Offline:
		return Unhealthy
	}
	return Offline
}

// Heartbeats is one server's memory of when it last heard from each
// worker. It is never replicated: every server fills its own from the
// heartbeats it serves or forwards, from the leader's table, and from
// gossip, so a follower that becomes leader already knows who is alive.
type Heartbeats struct {
	mu   sync.Mutex
	last map[string]time.Time
	left map[string]time.Time
	now  func() time.Time
}

// NewHeartbeats returns an empty table on the given clock.
func NewHeartbeats(now func() time.Time) *Heartbeats {
	if now == nil {
		now = time.Now
	}
	return &Heartbeats{last: map[string]time.Time{}, left: map[string]time.Time{}, now: now}
}

// Seen records a heartbeat from worker id now.
func (h *Heartbeats) Seen(id string) { h.SeenAt(id, h.now()) }

// SeenAt records a heartbeat at a given time, keeping the newest.
func (h *Heartbeats) SeenAt(id string, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if at.After(h.last[id]) {
		h.last[id] = at
	}
	if leftAt, ok := h.left[id]; ok && at.After(leftAt) {
		delete(h.left, id)
	}
}

// Left records that a worker left the gossip pool gracefully: it is
// offline at once, whatever its last heartbeat.
func (h *Heartbeats) Left(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.left[id] = h.now()
}

// Last returns the time of the last heartbeat from id and whether there
// was one.
func (h *Heartbeats) Last(id string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	at, ok := h.last[id]
	return at, ok
}

// Health returns the worker's health by the thresholds, and the time of
// its last heartbeat (zero when none was seen).
func (h *Heartbeats) Health(id string, t Thresholds) (string, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	at, ok := h.last[id]
	if _, left := h.left[id]; left || !ok {
		return Offline, at
	}
	return t.Status(h.now().Sub(at)), at
}

// WorkerHealth is a registered worker's health as this server sees it:
// by the age of its last heartbeat here, except that a worker the
// replicated registry marks offline is OFFLINE whatever its heartbeats
// say. Every place that shows or counts a worker's health asks this.
func (h *Heartbeats) WorkerHealth(w *daguhav1.Worker, t Thresholds) (string, time.Time) {
	health, last := h.Health(w.GetId(), t)
	if w.GetOffline() {
		health = Offline
	}
	return health, last
}

// Ages returns every worker's heartbeat age now, sorted by id, for a
// follower to copy.
func (h *Heartbeats) Ages() (ids []string, ages []time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	for id := range h.last {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		ages = append(ages, now.Sub(h.last[id]))
	}
	return ids, ages
}

// Forget drops a worker (removed from the registry).
func (h *Heartbeats) Forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.last, id)
	delete(h.left, id)
}
