package chaos

import (
	"bufio"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// resourceSample is one reading of a process's /metrics.
type resourceSample struct {
	pid        int
	at         time.Time
	rss        float64
	goroutines float64
	// heap is the garbage collector's heap target (go_memstats_next_gc_bytes),
	// twice the heap that was live at the last collection: unlike the
	// resident size it does not count the pages of the Raft log's
	// memory-mapped file, so it shows what the process holds.
	heap float64
}

// ResourceTrend says whether a process's memory and goroutines stayed
// flat over the run: the mean of the samples of the last third of the
// measured time against the mean of the first third, over every
// incarnation of the process (the nemesis restarts servers every few
// minutes, so one incarnation is too short to judge). Left out as warm-up:
// the start of the run (until the stored runs reach what the run retention
// keeps) and each incarnation's first minute (a restarted server rebuilds
// its state and its heap). The soak runs the servers with a short run
// retention, so what they hold is bounded and their memory must stay flat
// like the workers'.
type ResourceTrend struct {
	Process         string  `json:"process"`
	Samples         int     `json:"samples"`
	Incarnations    int     `json:"incarnations"`
	Span            string  `json:"span"`
	RSSFirstMiB     float64 `json:"rss_first_mib"`
	RSSLastMiB      float64 `json:"rss_last_mib"`
	RSSMaxMiB       float64 `json:"rss_max_mib"`
	HeapFirstMiB    float64 `json:"heap_target_first_mib"`
	HeapLastMiB     float64 `json:"heap_target_last_mib"`
	GoroutinesFirst float64 `json:"goroutines_first"`
	GoroutinesLast  float64 `json:"goroutines_last"`
	Flat            bool    `json:"flat"`
}

// incarnationWarmUp is how long after its start a process's samples are
// left out.
const incarnationWarmUp = time.Minute

// Sampler reads /metrics of every process at an interval.
type Sampler struct {
	mu      sync.Mutex
	samples map[string][]resourceSample
	stop    chan struct{}
	done    chan struct{}
}

// metricsTarget is a process whose /metrics the sampler reads.
type metricsTarget struct {
	name string
	url  string
	pid  func() int
	up   func() bool
}

// StartSampler samples every server (HTTP port) and worker (its metrics
// address) every interval until Stop.
func StartSampler(h *Harness, interval time.Duration) *Sampler {
	s := &Sampler{samples: map[string][]resourceSample{}, stop: make(chan struct{}), done: make(chan struct{})}
	var targets []metricsTarget
	for _, srv := range h.Servers {
		targets = append(targets, metricsTarget{srv.Name, srv.HTTPAddr() + "/metrics", srv.Pid, srv.Running})
	}
	for _, w := range h.Workers {
		targets = append(targets, metricsTarget{w.ID, "http://" + w.Node.IP + ":" + strconv.Itoa(workerMetricsPort) + "/metrics", w.Pid, w.Running})
	}
	go func() {
		defer close(s.done)
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-ticker.C:
			}
			for _, target := range targets {
				if !target.up() {
					continue
				}
				if sample, err := readMetrics(target.url); err == nil {
					sample.pid, sample.at = target.pid(), time.Now()
					s.mu.Lock()
					s.samples[target.name] = append(s.samples[target.name], sample)
					s.mu.Unlock()
				}
			}
		}
	}()
	return s
}

// Stop ends the sampling.
func (s *Sampler) Stop() {
	close(s.stop)
	<-s.done
}

func readMetrics(url string) (resourceSample, error) {
	client := http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return resourceSample{}, err
	}
	defer resp.Body.Close()
	var sample resourceSample
	found := 0
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 1<<16), 1<<22)
	for scanner.Scan() {
		line := scanner.Text()
		for _, m := range []struct {
			name string
			into *float64
		}{{"process_resident_memory_bytes ", &sample.rss}, {"go_goroutines ", &sample.goroutines}, {"go_memstats_next_gc_bytes ", &sample.heap}} {
			if strings.HasPrefix(line, m.name) {
				if v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, m.name)), 64); err == nil {
					*m.into = v
					found++
				}
			}
		}
	}
	if found < 3 {
		return sample, fmt.Errorf("%s: no process_resident_memory_bytes, go_goroutines or go_memstats_next_gc_bytes", url)
	}
	return sample, scanner.Err()
}

// Trends returns each process's trend, leaving out the samples taken
// before warmUp from the start of the run and those of each incarnation's
// first minute. Flat: goroutines grew less than 50% (plus 50, for calls a
// fault left waiting) from the first third of the measured time to the
// last, and memory (resident and heap target) less than 50%.
func (s *Sampler) Trends(began time.Time, warmUp time.Duration) []ResourceTrend {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ResourceTrend
	for _, name := range sortedKeys(s.samples) {
		firstOf := map[int]time.Time{}
		for _, sample := range s.samples[name] {
			if _, ok := firstOf[sample.pid]; !ok {
				firstOf[sample.pid] = sample.at
			}
		}
		var kept []resourceSample
		for _, sample := range s.samples[name] {
			if sample.at.Sub(began) >= warmUp && sample.at.Sub(firstOf[sample.pid]) >= incarnationWarmUp {
				kept = append(kept, sample)
			}
		}
		if len(kept) < 6 {
			continue
		}
		from, to := kept[0].at, kept[len(kept)-1].at
		third := to.Sub(from) / 3
		var first, last []resourceSample
		pids := map[int]bool{}
		for _, x := range kept {
			pids[x.pid] = true
			switch {
			case x.at.Before(from.Add(third)):
				first = append(first, x)
			case !x.at.Before(to.Add(-third)):
				last = append(last, x)
			}
		}
		if len(first) == 0 || len(last) == 0 {
			continue
		}
		mean := func(samples []resourceSample, f func(resourceSample) float64) float64 {
			sum := 0.0
			for _, x := range samples {
				sum += f(x)
			}
			return sum / float64(len(samples))
		}
		rss := func(x resourceSample) float64 { return x.rss / (1 << 20) }
		heap := func(x resourceSample) float64 { return x.heap / (1 << 20) }
		gor := func(x resourceSample) float64 { return x.goroutines }
		t := ResourceTrend{
			Process: name, Samples: len(kept), Incarnations: len(pids),
			Span:        to.Sub(from).Round(time.Second).String(),
			RSSFirstMiB: mean(first, rss), RSSLastMiB: mean(last, rss),
			HeapFirstMiB: mean(first, heap), HeapLastMiB: mean(last, heap),
			GoroutinesFirst: mean(first, gor), GoroutinesLast: mean(last, gor),
		}
		for _, x := range kept {
			t.RSSMaxMiB = max(t.RSSMaxMiB, rss(x))
		}
		t.Flat = t.GoroutinesLast < 1.5*t.GoroutinesFirst+50 && t.RSSLastMiB < 1.5*t.RSSFirstMiB && t.HeapLastMiB < 1.5*t.HeapFirstMiB
		out = append(out, t)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
