package main

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/daguha/daguha/dispatch/worker"
)

// memoryLimitShare is the part of a container's memory limit the Go heap
// may aim at: the rest is left to the stacks, the runtime and the
// processes a worker starts.
const memoryLimitShare = 0.9

// memoryLimitFor is the Go memory limit a daguha process sets itself in a
// container: 90 % of the cgroup's memory limit, so the garbage collector
// works harder before the kernel kills the process, instead of letting
// the heap grow to twice the live data. None (0) when the environment
// sets GOMEMLIMIT (the operator's word, which the Go runtime reads itself)
// or no limit below the machine's memory is set. GOMAXPROCS needs no such
// help: the Go runtime follows the cgroup's CPU limit itself since Go 1.25.
func memoryLimitFor(p worker.Probe, gomemlimit string) int64 {
	if gomemlimit != "" {
		return 0
	}
	limit := worker.ContainerMemoryLimit(p)
	if limit == 0 {
		return 0
	}
	return int64(float64(limit) * memoryLimitShare)
}

// setMemoryLimit applies memoryLimitFor to this process and says so.
func setMemoryLimit(logger *slog.Logger) {
	if limit := memoryLimitFor(worker.HostProbe(), os.Getenv("GOMEMLIMIT")); limit > 0 {
		debug.SetMemoryLimit(limit)
		logger.Info("Go memory limit set from the container's", "limit_bytes", limit, "share", memoryLimitShare)
	}
}
