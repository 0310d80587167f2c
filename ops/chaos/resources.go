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
}

// ResourceTrend says whether a process's memory and goroutines stayed
// flat over its longest-lived incarnation: the mean of the last third of
// the samples against the mean of the first third (after warm-up). The
// soak runs the servers with a short run retention, so what they hold is
// bounded and their memory must stay flat like the workers'.
type ResourceTrend struct {
	Process         string  `json:"process"`
	Samples         int     `json:"samples"`
	Span            string  `json:"span"`
	RSSFirstMiB     float64 `json:"rss_first_mib"`
	RSSLastMiB      float64 `json:"rss_last_mib"`
	GoroutinesFirst float64 `json:"goroutines_first"`
	GoroutinesLast  float64 `json:"goroutines_last"`
	Flat            bool    `json:"flat"`
}

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
		}{{"process_resident_memory_bytes ", &sample.rss}, {"go_goroutines ", &sample.goroutines}} {
			if strings.HasPrefix(line, m.name) {
				if v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, m.name)), 64); err == nil {
					*m.into = v
					found++
				}
			}
		}
	}
	if found < 2 {
		return sample, fmt.Errorf("%s: no process_resident_memory_bytes or go_goroutines", url)
	}
	return sample, scanner.Err()
}

// Trends returns each process's trend over its longest incarnation. The
// first fifth of an incarnation's samples is warm-up and left out.
// Flat: goroutines grew less than 50% (plus 50, for calls a fault left
// waiting) from the first third to the last, and memory less than 50%.
func (s *Sampler) Trends() []ResourceTrend {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ResourceTrend
	for _, name := range sortedKeys(s.samples) {
		byPid := map[int][]resourceSample{}
		for _, sample := range s.samples[name] {
			byPid[sample.pid] = append(byPid[sample.pid], sample)
		}
		var longest []resourceSample
		for _, samples := range byPid {
			if len(samples) > len(longest) {
				longest = samples
			}
		}
		longest = longest[len(longest)/5:]
		if len(longest) < 6 {
			continue
		}
		third := len(longest) / 3
		first, last := longest[:third], longest[len(longest)-third:]
		mean := func(samples []resourceSample, f func(resourceSample) float64) float64 {
			sum := 0.0
			for _, x := range samples {
				sum += f(x)
			}
			return sum / float64(len(samples))
		}
		rss := func(x resourceSample) float64 { return x.rss / (1 << 20) }
		gor := func(x resourceSample) float64 { return x.goroutines }
		t := ResourceTrend{
			Process: name, Samples: len(longest),
			Span:        longest[len(longest)-1].at.Sub(longest[0].at).Round(time.Second).String(),
			RSSFirstMiB: mean(first, rss), RSSLastMiB: mean(last, rss),
			GoroutinesFirst: mean(first, gor), GoroutinesLast: mean(last, gor),
		}
		t.Flat = t.GoroutinesLast < 1.5*t.GoroutinesFirst+50 && t.RSSLastMiB < 1.5*t.RSSFirstMiB
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
