package chaos

import (
	"testing"
	"time"
)

// The memory judge: a process whose memory keeps growing is not flat,
// however often it restarts; one whose memory only jumps while an
// incarnation warms up is.
func TestTrendsTellGrowthFromRestarts(t *testing.T) {
	began := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	series := func(grow bool) *Sampler {
		s := &Sampler{samples: map[string][]resourceSample{}}
		for i := 0; i < 180; i++ { // 30 minutes, a sample every 10 s
			at := began.Add(time.Duration(i) * 10 * time.Second)
			pid := 100 + i/30 // a restart every 5 minutes
			sinceStart := time.Duration(i%30) * 10 * time.Second
			mib := 60.0
			if sinceStart < 40*time.Second {
				mib = 20 // rebuilding its state after the restart
			}
			if grow {
				mib += float64(i) // a megabyte more every sample
			}
			s.samples["server1"] = append(s.samples["server1"], resourceSample{pid: pid, at: at, rss: mib * (1 << 20), heap: mib / 2 * (1 << 20), goroutines: 80})
		}
		return s
	}
	flat := series(false).Trends(began, 6*time.Minute)
	if len(flat) != 1 || !flat[0].Flat || flat[0].Incarnations < 4 {
		t.Fatalf("restarts alone judged as growth: %+v", flat)
	}
	growing := series(true).Trends(began, 6*time.Minute)
	if len(growing) != 1 || growing[0].Flat {
		t.Fatalf("steady growth judged flat: %+v", growing)
	}
}
