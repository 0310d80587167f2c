package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/daguha/daguha/dispatch/worker"
)

// A server or worker in a container aims its Go heap at 90 % of the
// container's memory limit; outside one, or with GOMEMLIMIT set, it
// leaves the runtime alone.
func TestMemoryLimitFollowsTheContainer(t *testing.T) {
	root := t.TempDir()
	write := func(path, text string) {
		t.Helper()
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("proc/meminfo", "MemTotal:       16777216 kB\n") // 16 GiB
	probe := worker.Probe{Root: root}
	if got := memoryLimitFor(probe, ""); got != 0 {
		t.Fatalf("no cgroup limit: %d, want none", got)
	}
	write("sys/fs/cgroup/memory.max", "max\n")
	if got := memoryLimitFor(probe, ""); got != 0 {
		t.Fatalf("cgroup v2 without a limit: %d, want none", got)
	}
	write("sys/fs/cgroup/memory.max", "1073741824\n") // 1 GiB
	gib := 1073741824.0
	if got, want := memoryLimitFor(probe, ""), int64(gib*memoryLimitShare); got != want || want != 966367641 {
		t.Fatalf("a 1 GiB container: %d, want %d", got, want)
	}
	if got := memoryLimitFor(probe, "512MiB"); got != 0 {
		t.Fatalf("with GOMEMLIMIT set: %d, want none (the runtime reads it)", got)
	}
	write("sys/fs/cgroup/memory.max", "34359738368\n") // 32 GiB, above the machine's
	if got := memoryLimitFor(probe, ""); got != 0 {
		t.Fatalf("a limit above the machine's memory: %d, want none", got)
	}
}
