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
	// runs is how many runs the clients had been told were enqueued:
	// the servers keep every run, so their memory grows with it.
	runs float64
}

// ResourceTrend says whether a process's memory and goroutines stayed
// flat over its longest-lived incarnation: the mean of the last third of
// the samples against the mean of the first third (after warm-up).
// Servers keep every run they were given (finished runs are not pruned),
// so their memory is judged per run added: RSSPerRunKiB.
type ResourceTrend struct {
	Process         string  `json:"process"`
	Samples         int     `json:"samples"`
	Span            string  `json:"span"`
	RSSFirstMiB     float64 `json:"rss_first_mib"`
	RSSLastMiB      float64 `json:"rss_last_mib"`
	GoroutinesFirst float64 `json:"goroutines_first"`
	GoroutinesLast  float64 `json:"goroutines_last"`
	RunsAdded       float64 `json:"runs_added,omitempty"`
	RSSPerRunKiB    float64 `json:"rss_growth_kib_per_run_added,omitempty"`
	Flat            bool    `json:"flat"`
}

// maxServerKiBPerRun is the memory growth per stored run a server may
// show and still count as flat: a run's record (DAG, steps, outputs,
// attempts) is a few KiB, and Go's heap target doubles what is live.
const maxServerKiBPerRun = 32

// Sampler reads /metrics of every process at an interval.
type Sampler struct {
	mu      sync.Mutex
	samples map[string][]resourceSample
	servers map[string]bool
	stop    chan struct{}
	done    chan struct{}
}

// metricsTarget is a process whose /metrics the sampler reads.
type metricsTarget struct {
	server bool
	name   string
	url    string
	pid    func() int
	up     func() bool
}

// StartSampler samples every server (HTTP port) and worker (its metrics
// address) every interval until Stop.
func StartSampler(h *Harness, hist *History, interval time.Duration) *Sampler {
	s := &Sampler{samples: map[string][]resourceSample{}, servers: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	var targets []metricsTarget
	for _, srv := range h.Servers {
		targets = append(targets, metricsTarget{true, srv.Name, srv.HTTPAddr() + "/metrics", srv.Pid, srv.Running})
	}
	for _, w := range h.Workers {
		targets = append(targets, metricsTarget{false, w.ID, "http://" + w.Node.IP + ":" + strconv.Itoa(workerMetricsPort) + "/metrics", w.Pid, w.Running})
	}
	for _, target := range targets {
		s.servers[target.name] = target.server
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
					sample.pid, sample.at, sample.runs = target.pid(), time.Now(), float64(hist.Acked())
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
// waiting) from the first third to the last; a worker's memory grew less
// than 50%; a server's memory grew less than maxServerKiBPerRun per run
// added between the two thirds.
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
		runs := func(x resourceSample) float64 { return x.runs }
		t := ResourceTrend{
			Process: name, Samples: len(longest),
			Span:        longest[len(longest)-1].at.Sub(longest[0].at).Round(time.Second).String(),
			RSSFirstMiB: mean(first, rss), RSSLastMiB: mean(last, rss),
			GoroutinesFirst: mean(first, gor), GoroutinesLast: mean(last, gor),
		}
		t.Flat = t.GoroutinesLast < 1.5*t.GoroutinesFirst+50
		if s.servers[name] {
			t.RunsAdded = mean(last, runs) - mean(first, runs)
			growth := (t.RSSLastMiB - t.RSSFirstMiB) * 1024
			if t.RunsAdded > 0 {
				t.RSSPerRunKiB = growth / t.RunsAdded
			}
			t.Flat = t.Flat && (growth <= 0 || t.RunsAdded > 0 && t.RSSPerRunKiB < maxServerKiBPerRun)
		} else {
			t.Flat = t.Flat && t.RSSLastMiB < 1.5*t.RSSFirstMiB
		}
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
