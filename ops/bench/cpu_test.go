package bench

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
)

// processCPU is the CPU time (user + system) a process has used; 0 when
// it cannot be read.
func processCPU(pid int) time.Duration {
	seconds, err := cpuSeconds(pid)
	if err != nil {
		return 0
	}
	return time.Duration(seconds * float64(time.Second))
}

// selfCPU is the CPU time this test process (the load generator) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures the CPU time each role of a benchmark's processes
// uses between start and stop: the leader, the followers, the workers and
// the load generator, so a figure can say where the machine's cores went.
type cpuMeter struct {
	leader    int
	followers []int
	workers   []int
	before    map[string]time.Duration
	wall      time.Time
}

func newCPUMeter(c *clustertest.Cluster, leader *clustertest.Agent, workers []*clustertest.Process) *cpuMeter {
	m := &cpuMeter{leader: leader.Pid()}
	for _, a := range c.Agents {
		if a != leader && a.Running() {
			m.followers = append(m.followers, a.Pid())
		}
	}
	for _, w := range workers {
		m.workers = append(m.workers, w.Pid())
	}
	m.before = m.read()
	m.wall = time.Now()
	return m
}

func (m *cpuMeter) read() map[string]time.Duration {
	sum := func(pids []int) time.Duration {
		var d time.Duration
		for _, pid := range pids {
			d += processCPU(pid)
		}
		return d
	}
	return map[string]time.Duration{
		"leader":         processCPU(m.leader),
		"followers":      sum(m.followers),
		"workers":        sum(m.workers),
		"load_generator": selfCPU(),
	}
}

// stop returns, per role, the CPU milliseconds used per run (runs > 0)
// and the cores busy on average over the measured time.
func (m *cpuMeter) stop(runs int) figure {
	after := m.read()
	wall := time.Since(m.wall).Seconds()
	perRun, cores := figure{}, figure{}
	var total time.Duration
	for role, was := range m.before {
		used := after[role] - was
		total += used
		cores[role] = round3(used.Seconds() / wall)
		if runs > 0 {
			perRun[role] = round3(float64(used.Microseconds()) / 1000 / float64(runs))
		}
	}
	cores["total"] = round3(total.Seconds() / wall)
	if runs > 0 {
		perRun["total"] = round3(float64(total.Microseconds()) / 1000 / float64(runs))
	}
	return figure{"cpu_ms_per_run": perRun, "cores_busy": cores}
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// rawFileTimes writes a file of path's size to the same directory with one
// fsync at the end, then reads path back whole: the disk's own time for the
// bytes a snapshot moves, the baseline of its save and restore.
func rawFileTimes(t testing.TB, path string) (write, read time.Duration) {
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	raw := path + ".raw"
	defer os.Remove(raw)
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	start := time.Now()
	for left := info.Size(); left > 0; left -= int64(len(chunk)) {
		if _, err := f.Write(chunk[:min(left, int64(len(chunk)))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	write = time.Since(start)
	f.Close()
	start = time.Now()
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) != info.Size() {
		t.Fatalf("read %s back: %d bytes, %v", path, len(data), err)
	}
	return write, time.Since(start)
}
