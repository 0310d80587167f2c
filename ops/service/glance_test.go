package service_test

import (
	"testing"
	"time"

	"github.com/daguha/daguha/ops/service"
)

// The ring keeps the last samples, oldest first, and never more than its
// size.
func TestGlanceRingKeepsTheLastSamplesOldestFirst(t *testing.T) {
	ring := service.NewGlance(3)
	if got := ring.Samples(); len(got) != 0 {
		t.Fatalf("an empty ring has %d samples", len(got))
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 7; i++ {
		ring.Add(service.GlanceSample{At: start.Add(time.Duration(i) * time.Second), QueueDepth: i})
		got := ring.Samples()
		want := min(i+1, 3)
		if len(got) != want {
			t.Fatalf("after %d samples: %d kept, want %d", i+1, len(got), want)
		}
		for j, sample := range got {
			if sample.QueueDepth != i+1-want+j {
				t.Fatalf("after %d samples: sample %d is #%d, want #%d", i+1, j, sample.QueueDepth, i+1-want+j)
			}
		}
	}
}
