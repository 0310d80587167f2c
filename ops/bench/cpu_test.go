package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
)

// clockTicks is the unit of utime and stime in /proc/PID/stat (USER_HZ,
// 100 on every Linux this runs on).
const clockTicks = 100

// processCPU is the CPU time (user + system) a process has used, from
// /proc/PID/stat; 0 when it cannot be read.
func processCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields from after its closing parenthesis.
	s := string(data)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0
	}
	fields := strings.Fields(s[end+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * time.Second / clockTicks
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
