package worker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/daguha/daguha/dispatch/valid"
)

// Probe is where Fingerprint looks: a file system root for cgroup and
// /proc files, a command runner for nvidia-smi, and the Go runtime's
// facts. Tests give fake files and a stand-in runner; HostProbe is the
// real machine.
type Probe struct {
	// Root is put before /sys/fs/cgroup/... and /proc/meminfo ("" is /).
	Root string
	// Run runs a command and returns its standard output; nil runs nothing
	// (no GPU labels).
	Run func(name string, args ...string) ([]byte, error)
	// NumCPU, GOARCH and GOOS are the runtime's values.
	NumCPU       int
	GOARCH, GOOS string
}

// nvidiaSMITimeout bounds each nvidia-smi call: a wedged driver must not
// hold a worker's start.
const nvidiaSMITimeout = 10 * time.Second

// HostProbe is the probe of the machine this process runs on: nvidia-smi
// is looked up on PATH.
func HostProbe() Probe {
	return Probe{
		Root: "/",
		Run: func(name string, args ...string) ([]byte, error) {
			ctx, cancel := context.WithTimeout(context.Background(), nvidiaSMITimeout)
			defer cancel()
			return exec.CommandContext(ctx, name, args...).Output()
		},
		NumCPU: runtime.NumCPU(), GOARCH: runtime.GOARCH, GOOS: runtime.GOOS,
	}
}

// Fingerprint returns the labels a worker finds about itself, in the
// seed's label patterns:
//
//   - os, cpu-arch: Go's GOOS and GOARCH names (linux, amd64, arm64).
//   - cpu-cores: the cgroup's CPU limit where one is set (v2 cpu.max, v1
//     cpu.cfs_quota_us / cpu.cfs_period_us), rounded up to a whole core
//     and at most the CPUs Go sees; else the CPUs Go sees.
//   - memory: the cgroup's memory limit where one is set (v2 memory.max,
//     v1 memory.limit_in_bytes) and below MemTotal, else /proc/meminfo's
//     MemTotal; written as sizes are in the seed (see FormatSize).
//   - where nvidia-smi answers with at least one GPU: gpu=true,
//     gpu-count, gpu-model (the first GPU's name, see ModelLabel), vram
//     (the smallest GPU memory, so a selector on vram holds on every
//     GPU), and cuda (the CUDA version nvidia-smi's header names).
//
// A fact it cannot read gives no label; every value passes package
// valid's rules.
func Fingerprint(p Probe) map[string]string {
	labels := map[string]string{}
	if p.GOOS != "" {
		labels["os"] = p.GOOS
	}
	if p.GOARCH != "" {
		labels["cpu-arch"] = p.GOARCH
	}
	if cores := cpuCores(p); cores > 0 {
		labels["cpu-cores"] = strconv.Itoa(cores)
	}
	if mem := memoryBytes(p); mem > 0 {
		labels["memory"] = FormatSize(mem)
	}
	for k, v := range gpuLabels(p) {
		labels[k] = v
	}
	for k, v := range labels {
		if valid.LabelValue(k, v) != nil {
			delete(labels, k)
		}
	}
	return labels
}

func (p Probe) read(path string) (string, bool) {
	root := p.Root
	if root == "" {
		root = "/"
	}
	data, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(data)), true
}

// cpuCores is the cgroup's CPU limit in whole cores (rounded up), capped
// at NumCPU; NumCPU where no limit is set.
func cpuCores(p Probe) int {
	limit := 0.0
	if text, ok := p.read("sys/fs/cgroup/cpu.max"); ok {
		fields := strings.Fields(text)
		if len(fields) == 2 && fields[0] != "max" {
			quota, err1 := strconv.ParseFloat(fields[0], 64)
			period, err2 := strconv.ParseFloat(fields[1], 64)
			if err1 == nil && err2 == nil && quota > 0 && period > 0 {
				limit = quota / period
			}
		}
	} else {
		for _, dir := range []string{"sys/fs/cgroup/cpu", "sys/fs/cgroup/cpu,cpuacct"} {
			q, ok1 := p.read(dir + "/cpu.cfs_quota_us")
			per, ok2 := p.read(dir + "/cpu.cfs_period_us")
			if !ok1 || !ok2 {
				continue
			}
			quota, err1 := strconv.ParseFloat(q, 64)
			period, err2 := strconv.ParseFloat(per, 64)
			if err1 == nil && err2 == nil && quota > 0 && period > 0 {
				limit = quota / period
			}
			break
		}
	}
	if limit > 0 {
		cores := int(math.Ceil(limit))
		if p.NumCPU > 0 && cores > p.NumCPU {
			cores = p.NumCPU
		}
		return cores
	}
	return p.NumCPU
}

// memoryBytes is the cgroup's memory limit where one is set below the
// machine's MemTotal, else MemTotal; 0 when neither can be read.
func memoryBytes(p Probe) uint64 {
	if limit := ContainerMemoryLimit(p); limit > 0 {
		return limit
	}
	return memTotal(p)
}

// ContainerMemoryLimit is the cgroup's memory limit (v2 memory.max, v1
// memory.limit_in_bytes) where one is set below the machine's MemTotal,
// else 0. Servers and workers size their Go heap target by it
// (cmd/daguha's memory limit).
func ContainerMemoryLimit(p Probe) uint64 {
	total := memTotal(p)
	var limit uint64
	if text, ok := p.read("sys/fs/cgroup/memory.max"); ok {
		limit, _ = strconv.ParseUint(text, 10, 64) // "max": no limit
	} else if text, ok := p.read("sys/fs/cgroup/memory/memory.limit_in_bytes"); ok {
		// v1 writes its "no limit" as a huge number; MemTotal caps it.
		limit, _ = strconv.ParseUint(text, 10, 64)
	}
	if limit > 0 && (total == 0 || limit < total) {
		return limit
	}
	return 0
}

func memTotal(p Probe) uint64 {
	text, ok := p.read("proc/meminfo")
	if !ok {
		return 0
	}
	scanner := bufio.NewScanner(strings.NewReader(text))
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// FormatSize writes bytes as the seed writes sizes (memory=64G,
// vram=40G): whole GiB rounded to the nearest, with a G; under half a
// GiB, whole MiB with an M.
func FormatSize(bytes uint64) string {
	const mib, gib = 1 << 20, 1 << 30
	if bytes < gib/2 {
		return strconv.FormatUint((bytes+mib/2)/mib, 10) + "M"
	}
	return strconv.FormatUint((bytes+gib/2)/gib, 10) + "G"
}

var (
	cudaVersion = regexp.MustCompile(`CUDA Version:\s*([0-9][0-9.]*)`)
	notLabel    = regexp.MustCompile(`[^a-z0-9._-]+`)
)

// ModelLabel makes a GPU's name a label value: lower case, every run of
// characters other than a-z, 0-9, '.', '_' and '-' (spaces among them)
// one '-', no '-' at either end, at most 63 bytes: "NVIDIA H100 80GB
// HBM3" is nvidia-h100-80gb-hbm3.
func ModelLabel(name string) string {
	s := notLabel.ReplaceAllString(strings.ToLower(strings.TrimSpace(name)), "-")
	s = strings.Trim(s, "-")
	if len(s) > valid.MaxLabelValueBytes {
		s = strings.TrimRight(s[:valid.MaxLabelValueBytes], "-")
	}
	return s
}

// gpuLabels asks nvidia-smi for each GPU's name, memory (MiB) and driver,
// and its header for the CUDA version; none when it does not answer or
// lists no GPU.
func gpuLabels(p Probe) map[string]string {
	if p.Run == nil {
		return nil
	}
	out, err := p.Run("nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits")
	if err != nil {
		return nil
	}
	var models []string
	var vram uint64
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Split(line, ",")
		if len(fields) < 2 || strings.TrimSpace(fields[0]) == "" {
			continue
		}
		models = append(models, ModelLabel(fields[0]))
		if mib, err := strconv.ParseUint(strings.TrimSpace(fields[1]), 10, 64); err == nil && (vram == 0 || mib < vram) {
			vram = mib
		}
	}
	if len(models) == 0 {
		return nil
	}
	labels := map[string]string{"gpu": "true", "gpu-count": strconv.Itoa(len(models))}
	if models[0] != "" {
		labels["gpu-model"] = models[0]
	}
	if vram > 0 {
		labels["vram"] = FormatSize(vram << 20)
	}
	if header, err := p.Run("nvidia-smi"); err == nil {
		if m := cudaVersion.FindSubmatch(header); m != nil {
			labels["cuda"] = string(bytes.TrimRight(m[1], "."))
		}
	}
	return labels
}

// AddFingerprint adds the fingerprinted labels to config's, where a label
// of the same key was not given by hand (hand labels win), and returns the
// keys it added, sorted. When hand and fingerprinted labels together pass
// the label count limit, it adds none and says so.
func AddFingerprint(config *Config, found map[string]string) ([]string, error) {
	var added []string
	for k := range found {
		if _, hand := config.Labels[k]; !hand {
			added = append(added, k)
		}
	}
	sort.Strings(added)
	if err := valid.LabelCount(len(config.Labels) + len(added)); err != nil {
		return nil, fmt.Errorf("fingerprinted labels not added: %w; give fewer labels or turn them off", err)
	}
	if config.Labels == nil {
		config.Labels = map[string]string{}
	}
	for _, k := range added {
		config.Labels[k] = found[k]
	}
	return added, nil
}

// RefreshWith returns a Config.RefreshLabels that gives the hand labels
// over a new fingerprint of probe each time, by AddFingerprint's rules
// (only the hand labels when both together are too many), and the keys
// of those fingerprinted.
func RefreshWith(hand map[string]string, probe Probe) func() (map[string]string, []string) {
	hand = maps.Clone(hand)
	return func() (map[string]string, []string) {
		config := Config{Labels: maps.Clone(hand)}
		if config.Labels == nil {
			config.Labels = map[string]string{}
		}
		added, err := AddFingerprint(&config, Fingerprint(probe))
		if err != nil {
			return maps.Clone(hand), nil
		}
		return config.Labels, added
	}
}
