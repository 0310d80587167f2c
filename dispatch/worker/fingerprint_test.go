package worker

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/daguha/daguha/dispatch/valid"
)

// fakeRoot writes files (path relative to the root: content) under a new
// directory and returns it.
func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for path, content := range files {
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const meminfo64G = "MemTotal:       65842560 kB\nMemFree:        1000 kB\n"

func TestFingerprintCgroups(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		cores string
		mem   string
	}{
		{"no cgroup: host", map[string]string{"proc/meminfo": meminfo64G}, "16", "63G"},
		{"v2 limits", map[string]string{"proc/meminfo": meminfo64G,
			"sys/fs/cgroup/cpu.max": "400000 100000\n", "sys/fs/cgroup/memory.max": "8589934592\n"}, "4", "8G"},
		{"v2 fractional cores round up", map[string]string{"proc/meminfo": meminfo64G,
			"sys/fs/cgroup/cpu.max": "150000 100000\n", "sys/fs/cgroup/memory.max": "268435456\n"}, "2", "256M"},
		{"v2 no limits", map[string]string{"proc/meminfo": meminfo64G,
			"sys/fs/cgroup/cpu.max": "max 100000\n", "sys/fs/cgroup/memory.max": "max\n"}, "16", "63G"},
		{"v2 limit above the host", map[string]string{"proc/meminfo": meminfo64G,
			"sys/fs/cgroup/cpu.max": "6400000 100000\n", "sys/fs/cgroup/memory.max": "137438953472\n"}, "16", "63G"},
		{"v1 limits", map[string]string{"proc/meminfo": meminfo64G,
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "200000\n", "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "34359738368\n"}, "2", "32G"},
		{"v1 no limits", map[string]string{"proc/meminfo": meminfo64G,
			"sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n", "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, "16", "63G"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Fingerprint(Probe{Root: fakeRoot(t, tc.files), NumCPU: 16, GOARCH: "amd64", GOOS: "linux"})
			want := map[string]string{"os": "linux", "cpu-arch": "amd64", "cpu-cores": tc.cores, "memory": tc.mem}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Fingerprint = %v, want %v", got, want)
			}
		})
	}
}

func TestFingerprintWithoutFiles(t *testing.T) {
	got := Fingerprint(Probe{Root: t.TempDir(), NumCPU: 2, GOARCH: "arm64", GOOS: "linux"})
	if want := map[string]string{"os": "linux", "cpu-arch": "arm64", "cpu-cores": "2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Fingerprint = %v, want %v", got, want)
	}
}

func TestModelLabel(t *testing.T) {
	for name, want := range map[string]string{
		"NVIDIA H100 80GB HBM3":         "nvidia-h100-80gb-hbm3",
		"NVIDIA A100-SXM4-40GB":         "nvidia-a100-sxm4-40gb",
		" Tesla T4 ":                    "tesla-t4",
		"NVIDIA GeForce RTX 4090 (=,x)": "nvidia-geforce-rtx-4090-x",
		"NVIDIA H200":                   "nvidia-h200",
	} {
		if got := ModelLabel(name); got != want {
			t.Errorf("ModelLabel(%q) = %q, want %q", name, got, want)
		}
		if err := valid.LabelValue("gpu-model", ModelLabel(name)); err != nil {
			t.Error(err)
		}
	}
}

// standInNvidiaSMI writes an nvidia-smi script into a new directory that
// answers as the real one does for two H100s, and returns the directory.
func standInNvidiaSMI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	script := `#!/bin/sh
if [ "$1" = "--query-gpu=name,memory.total,driver_version" ]; then
  echo "NVIDIA H100 80GB HBM3, 81559, 550.54.15"
  echo "NVIDIA H100 80GB HBM3, 81559, 550.54.15"
  exit 0
fi
cat <<'END'
Mon Dec  7 00:00:00 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
END
`
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestFingerprintStandInNvidiaSMI(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("a shell script stands in for nvidia-smi")
	}
	t.Setenv("PATH", standInNvidiaSMI(t)+string(os.PathListSeparator)+os.Getenv("PATH"))
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	got := Fingerprint(HostProbe())
	want := map[string]string{"gpu": "true", "gpu-count": "2", "gpu-model": "nvidia-h100-80gb-hbm3", "vram": "80G", "cuda": "12.4"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s=%q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if got["os"] != runtime.GOOS || got["cpu-arch"] != runtime.GOARCH || got["cpu-cores"] == "" {
		t.Errorf("host labels: %v", got)
	}
	if err := valid.Labels(got); err != nil {
		t.Fatal(err)
	}
}

func TestFingerprintNvidiaSMIFails(t *testing.T) {
	fails := func(string, ...string) ([]byte, error) { return nil, exec.ErrNotFound }
	got := Fingerprint(Probe{Root: t.TempDir(), Run: fails, NumCPU: 1, GOOS: "linux", GOARCH: "amd64"})
	if _, ok := got["gpu"]; ok {
		t.Fatalf("gpu label without nvidia-smi: %v", got)
	}
	noGPU := func(string, ...string) ([]byte, error) { return []byte("\n"), nil }
	if got := Fingerprint(Probe{Root: t.TempDir(), Run: noGPU, NumCPU: 1}); got["gpu"] != "" {
		t.Fatalf("gpu label with no GPU listed: %v", got)
	}
}

func TestAddFingerprintHandLabelsWin(t *testing.T) {
	config := Config{Labels: map[string]string{"gpu-model": "a100", "region": "eu"}}
	added, err := AddFingerprint(&config, map[string]string{"gpu": "true", "gpu-model": "nvidia-a100-sxm4-40gb", "os": "linux"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(added, []string{"gpu", "os"}) {
		t.Fatalf("added %v", added)
	}
	want := map[string]string{"gpu": "true", "gpu-model": "a100", "os": "linux", "region": "eu"}
	if !reflect.DeepEqual(config.Labels, want) {
		t.Fatalf("labels %v, want %v", config.Labels, want)
	}
}

func TestAddFingerprintOverTheLimit(t *testing.T) {
	hand, err := valid.ParseLabels(manyHandLabels(valid.MaxLabels))
	if err != nil {
		t.Fatal(err)
	}
	config := Config{Labels: hand}
	if _, err := AddFingerprint(&config, map[string]string{"os": "linux"}); err == nil || len(config.Labels) != valid.MaxLabels {
		t.Fatalf("over the limit: err %v, %d labels", err, len(config.Labels))
	}
}

func manyHandLabels(n int) string {
	s := ""
	for i := 0; i < n; i++ {
		if i > 0 {
			s += ","
		}
		s += "k" + string(rune('a'+i/26)) + string(rune('a'+i%26)) + "=v"
	}
	return s
}

func TestRefreshLabels(t *testing.T) {
	root := fakeRoot(t, map[string]string{"proc/meminfo": meminfo64G, "sys/fs/cgroup/cpu.max": "200000 100000\n"})
	probe := Probe{Root: root, NumCPU: 8, GOOS: "linux", GOARCH: "amd64"}
	refresh := RefreshWith(map[string]string{"cpu-cores": "64", "team": "a"}, probe)
	want := map[string]string{"cpu-cores": "64", "team": "a", "os": "linux", "cpu-arch": "amd64", "memory": "63G"}
	got, auto := refresh()
	if !reflect.DeepEqual(got, want) || strings.Join(auto, ",") != "cpu-arch,memory,os" {
		t.Fatalf("refresh = %v (fingerprinted %v), want %v (fingerprinted cpu-arch,memory,os: cpu-cores is the hand's)", got, auto, want)
	}

	w, err := New(nil, Config{ID: "w", Labels: got, AutoLabels: auto, MaxActiveRuns: 1, RefreshLabels: refresh, LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	w.refreshLabels() // nothing changed
	if got := w.info.Load().GetLabels(); !reflect.DeepEqual(got, want) {
		t.Fatalf("labels after an idle refresh %v", got)
	}
	// The container's memory limit changes: the next poll says so.
	if err := os.WriteFile(filepath.Join(root, "proc/meminfo"), []byte("MemTotal: 8388608 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := w.info.Load()
	w.refreshLabels()
	if got := w.info.Load().GetLabels()["memory"]; got != "8G" {
		t.Fatalf("memory after the refresh %q", got)
	}
	if before.GetLabels()["memory"] != "63G" {
		t.Fatal("a refresh changed the message already sent")
	}
	if strings.Join(w.info.Load().GetAutoLabels(), ",") != "cpu-arch,memory,os" {
		t.Fatalf("fingerprinted keys after the refresh %v", w.info.Load().GetAutoLabels())
	}
	if w.info.Load().GetId() != "w" || w.info.Load().GetMaxActiveRuns() != 1 {
		t.Fatalf("refresh lost the worker's description: %v", w.info.Load())
	}
}

// On a machine with a real NVIDIA GPU, the real nvidia-smi gives the GPU
// labels (skipped elsewhere).
func TestFingerprintRealNvidiaSMI(t *testing.T) {
	if _, err := exec.LookPath("nvidia-smi"); err != nil {
		t.Skip("no nvidia-smi on PATH")
	}
	got := Fingerprint(HostProbe())
	t.Logf("fingerprint of this machine: %s", valid.FormatLabels(got))
	for _, k := range []string{"gpu", "gpu-count", "gpu-model", "vram", "cuda"} {
		if got[k] == "" {
			t.Errorf("no %s label: %v", k, got)
		}
	}
	if got["gpu"] != "true" {
		t.Errorf("gpu=%q", got["gpu"])
	}
}
