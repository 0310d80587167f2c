package dispatch

import (
	"testing"
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

func TestHealthFromHeartbeatAge(t *testing.T) {
	custom := Thresholds{Warning: time.Second, Unhealthy: 2 * time.Second, Offline: 3 * time.Second}
	cases := []struct {
		thresholds Thresholds
		age        time.Duration
		want       string
	}{
		{DefaultThresholds, 0, Healthy},
		{DefaultThresholds, 4900 * time.Millisecond, Healthy},
		{DefaultThresholds, 5100 * time.Millisecond, Warning},
		{DefaultThresholds, 15 * time.Second, Warning},
		{DefaultThresholds, 15100 * time.Millisecond, Unhealthy},
		{DefaultThresholds, 30 * time.Second, Unhealthy},
		{DefaultThresholds, 30100 * time.Millisecond, Offline},
		{custom, 900 * time.Millisecond, Healthy},
		{custom, 1100 * time.Millisecond, Warning},
		{custom, 2100 * time.Millisecond, Unhealthy},
		{custom, 3100 * time.Millisecond, Offline},
	}
	for _, tc := range cases {
		clock := &fakeClock{now: time.Date(2026, 2, 11, 12, 0, 0, 0, time.UTC)}
		table := NewHeartbeats(clock.Now)
		table.Seen("w")
		clock.Advance(tc.age)
		got, last := table.Health("w", tc.thresholds)
		if got != tc.want {
			t.Errorf("age %s with %+v: %s, want %s", tc.age, tc.thresholds, got, tc.want)
		}
		if !last.Equal(time.Date(2026, 2, 11, 12, 0, 0, 0, time.UTC)) {
			t.Errorf("last heartbeat reported as %s", last)
		}
	}
}

func TestHeartbeatTable(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 2, 11, 12, 0, 0, 0, time.UTC)}
	table := NewHeartbeats(clock.Now)
	if got, _ := table.Health("never", DefaultThresholds); got != Offline {
		t.Fatalf("a worker never heard from is %s, want OFFLINE", got)
	}
	table.Seen("w")
	clock.Advance(time.Second)
	table.SeenAt("w", clock.now.Add(-10*time.Second)) // an older report must not move it back
	if last, _ := table.Last("w"); !last.Equal(clock.now.Add(-time.Second)) {
		t.Fatalf("an older heartbeat moved the last one back to %s", last)
	}
	table.Left("w")
	if got, _ := table.Health("w", DefaultThresholds); got != Offline {
		t.Fatalf("a worker that left is %s, want OFFLINE at once", got)
	}
	table.SeenAt("w", clock.now.Add(-time.Millisecond)) // a heartbeat older than the leave
	if got, _ := table.Health("w", DefaultThresholds); got != Offline {
		t.Fatalf("a heartbeat sent before the leave brought the worker back: %s", got)
	}
	clock.Advance(time.Millisecond)
	table.Seen("w")
	if got, _ := table.Health("w", DefaultThresholds); got != Healthy {
		t.Fatalf("a worker heard from again after leaving is %s, want HEALTHY", got)
	}
	if err := (Thresholds{Warning: 5, Unhealthy: 5, Offline: 10}).Validate(); err == nil {
		t.Fatal("thresholds that do not grow were accepted")
	}
}

// A worker the registry marks offline is OFFLINE on every page and count,
// even while its heartbeats still arrive here (it was declared offline and
// lost its runs; a fresh heartbeat does not undo that until it registers
// again); one not marked goes by its heartbeats.
func TestWorkerHealthHonoursTheRegistry(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	h := NewHeartbeats(clock.Now)
	h.Seen("w1")
	h.Seen("w2")
	clock.Advance(6 * time.Second)
	if got, _ := h.WorkerHealth(&daguhav1.Worker{Id: "w1"}, DefaultThresholds); got != Warning {
		t.Fatalf("w1 by its heartbeats: %s, want %s", got, Warning)
	}
	got, last := h.WorkerHealth(&daguhav1.Worker{Id: "w2", Offline: true}, DefaultThresholds)
	if got != Offline || last.IsZero() {
		t.Fatalf("w2 marked offline with a heartbeat 6 s old: %s (last %v), want %s with its heartbeat's time", got, last, Offline)
	}
	if got, _ := h.WorkerHealth(&daguhav1.Worker{Id: "never"}, DefaultThresholds); got != Offline {
		t.Fatalf("a worker never heard from: %s, want %s", got, Offline)
	}
}
