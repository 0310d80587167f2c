package service

import (
	"sync"
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// GlanceSample is the cluster at one moment as this server saw it: the
// web UI's Cluster page draws the last minutes of them.
type GlanceSample struct {
	At time.Time
	// QueueDepth is the runs queued, RunsRunning those running.
	QueueDepth  int
	RunsRunning int
	// RunsStarted counts the runs this server started (first grants, as
	// leader) since the sample before.
	RunsStarted uint64
	// Workers counts the workers by health (HEALTHY, WARNING, ...).
	Workers map[string]int
	// Leader is the leader's name then ("" when none was known).
	Leader string
}

// Glance keeps the last samples in a ring of a fixed size: the memory it
// takes is bounded whatever the uptime.
type Glance struct {
	mu      sync.Mutex
	samples []GlanceSample
	next    int
	full    bool
	// started is the counter's reading at the sample before.
	started uint64
}

// NewGlance returns a ring of size samples (at least 1).
func NewGlance(size int) *Glance {
	if size < 1 {
		size = 1
	}
	return &Glance{samples: make([]GlanceSample, size)}
}

// Add records a sample, dropping the oldest when the ring is full.
func (g *Glance) Add(sample GlanceSample) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.samples[g.next] = sample
	g.next = (g.next + 1) % len(g.samples)
	if g.next == 0 {
		g.full = true
	}
}

// Samples returns the samples kept, oldest first.
func (g *Glance) Samples() []GlanceSample {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.full {
		return append([]GlanceSample(nil), g.samples[:g.next]...)
	}
	return append(append([]GlanceSample(nil), g.samples[g.next:]...), g.samples[:g.next]...)
}

// GlanceOptions configures the sampling of the cluster at a glance.
type GlanceOptions struct {
	// Every is the time between samples (default 5 s); Keep how many are
	// kept (default 360: half an hour at 5 s).
	Every time.Duration
	Keep  int
	// Started reads a count of the runs this server started; nil: none.
	Started func() uint64
}

// StartGlance samples the cluster every so often into a ring that Glance
// reads, until Close. Call it once.
func (s *Service) StartGlance(options GlanceOptions) {
	if options.Every <= 0 {
		options.Every = 5 * time.Second
	}
	if options.Keep <= 0 {
		options.Keep = 360
	}
	if options.Started == nil {
		options.Started = func() uint64 { return 0 }
	}
	s.glance = NewGlance(options.Keep)
	s.glance.started = options.Started()
	s.glanceStop = make(chan struct{})
	s.glanceDone = make(chan struct{})
	go func() {
		defer close(s.glanceDone)
		ticker := time.NewTicker(options.Every)
		defer ticker.Stop()
		s.glance.Add(s.sampleGlance(options.Started))
		for {
			select {
			case <-s.glanceStop:
				return
			case <-ticker.C:
				s.glance.Add(s.sampleGlance(options.Started))
			}
		}
	}()
}

// Glance returns the samples kept, oldest first (none before
// StartGlance).
func (s *Service) Glance() []GlanceSample {
	if s.glance == nil {
		return []GlanceSample{}
	}
	return s.glance.Samples()
}

func (s *Service) stopGlance() {
	if s.glanceStop != nil {
		close(s.glanceStop)
		<-s.glanceDone
		s.glanceStop = nil
	}
}

// sampleGlance reads one sample from the replicated state and this
// server's heartbeat table. Only the sampling goroutine calls it.
func (s *Service) sampleGlance(started func() uint64) GlanceSample {
	sample := GlanceSample{At: s.now(), Workers: map[string]int{}}
	state := s.cluster.FSM().State()
	if selectors, _, err := state.PendingSelectors(); err == nil {
		for _, selector := range selectors {
			sample.QueueDepth += int(selector.Pending)
		}
	}
	_ = state.EachRunning("", func(*daguhav1.Run) bool {
		sample.RunsRunning++
		return true
	})
	for _, worker := range s.Workers() {
		sample.Workers[worker.Health]++
	}
	sample.Leader, _ = s.cluster.Leader()
	count := started()
	if count >= s.glance.started {
		sample.RunsStarted = count - s.glance.started
	}
	s.glance.started = count
	return sample
}
