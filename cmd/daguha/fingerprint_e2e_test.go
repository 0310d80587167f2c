package main

// Process-level tests of fingerprinted worker labels (#23): a worker with
// a stand-in nvidia-smi on its PATH shows GPU labels in /api/v2/workers
// without any typed by hand, and gets the runs that select them.

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/buildinfo"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

// standInNvidiaSMI writes an nvidia-smi into a new directory that answers
// as the real one does on an H100 host, and returns a PATH with it first.
func standInNvidiaSMI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	script := `#!/bin/sh
if [ "$1" = "--query-gpu=name,memory.total,driver_version" ]; then
  echo "NVIDIA H100 80GB HBM3, 81559, 550.54.15"
  exit 0
fi
echo "| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |"
`
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return "PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH")
}

func TestFingerprintedGPULabels(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 1})
	leader := c.WaitLeader(t, 30*time.Second)
	path := standInNvidiaSMI(t)

	auto := c.NewWorker("gpu-auto")
	auto.Env = []string{path}
	startProcess(t, auto)
	hand := c.NewDaguWorker("gpu-hand", leader, "--worker.labels=gpu-model=a100,cuda=11.8")
	hand.Env = []string{path}
	startProcess(t, hand)
	off := c.NewWorker("gpu-off", "-no-auto-labels", "-labels=team=a")
	off.Env = []string{path}
	startProcess(t, off)
	offEnv := c.NewDaguWorker("gpu-off-env", leader)
	offEnv.Env = []string{path, "DAGU_WORKER_NO_AUTO_LABELS=true"}
	startProcess(t, offEnv)

	want := map[string]map[string]string{
		"gpu-auto":    {"gpu": "true", "gpu-count": "1", "gpu-model": "nvidia-h100-80gb-hbm3", "vram": "80G", "cuda": "12.4"},
		"gpu-hand":    {"gpu": "true", "gpu-model": "a100", "cuda": "11.8", "vram": "80G"},
		"gpu-off":     {"team": "a"},
		"gpu-off-env": {},
	}
	var workers wire.Workers
	clustertest.WaitFor(t, 60*time.Second, "four workers with their labels", func() (bool, string) {
		if code, err := leader.GetJSON("/api/v2/workers", &workers); err != nil || code != http.StatusOK {
			return false, "HTTP error"
		}
		seen := 0
		for _, w := range workers.Workers {
			if _, ok := want[w.ID]; ok {
				seen++
			}
		}
		return seen == len(want), "workers so far: " + strings.Repeat("*", seen)
	})
	for _, w := range workers.Workers {
		labels, ok := want[w.ID]
		if !ok {
			continue
		}
		for k, v := range labels {
			if w.Labels[k] != v {
				t.Errorf("%s: label %s=%q, want %q (all: %v)", w.ID, k, w.Labels[k], v, w.Labels)
			}
		}
		auto := w.ID == "gpu-auto" || w.ID == "gpu-hand"
		if _, has := w.Labels["cpu-arch"]; has != auto {
			t.Errorf("%s: cpu-arch label present %v, want %v (all: %v)", w.ID, has, auto, w.Labels)
		}
		if !auto && len(w.Labels) != len(labels) {
			t.Errorf("%s: labels %v, want only %v", w.ID, w.Labels, labels)
		}
		// Which labels were fingerprinted: the hand's win and are not.
		fingerprinted := map[string]bool{}
		for _, k := range w.AutoLabels {
			fingerprinted[k] = true
		}
		switch w.ID {
		case "gpu-auto":
			for _, k := range []string{"gpu", "gpu-count", "gpu-model", "vram", "cuda", "cpu-arch", "os"} {
				if !fingerprinted[k] {
					t.Errorf("%s: %s not shown as fingerprinted: %v", w.ID, k, w.AutoLabels)
				}
			}
		case "gpu-hand":
			if fingerprinted["gpu-model"] || fingerprinted["cuda"] || !fingerprinted["gpu"] || !fingerprinted["vram"] {
				t.Errorf("%s: fingerprinted %v; want gpu and vram, not the hand's gpu-model and cuda", w.ID, w.AutoLabels)
			}
		default:
			if len(w.AutoLabels) != 0 {
				t.Errorf("%s: fingerprinted %v with fingerprinting off", w.ID, w.AutoLabels)
			}
		}
		if !slices.Contains(w.Executors, "http") || !slices.Contains(w.Executors, "jq") {
			t.Errorf("%s: executors %v, want http and jq among them", w.ID, w.Executors)
		}
	}
	out, errOut, code := runCLI(t, "workers", "-address="+leader.HTTPAddr())
	if code != 0 || !strings.Contains(out, "gpu-model=nvidia-h100-80gb-hbm3*") || !strings.Contains(out, "gpu-model=a100,") ||
		!strings.Contains(out, "* fingerprinted by the worker") {
		t.Errorf("daguha workers does not mark the fingerprinted labels: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(auto.Tail(200), "fingerprinted labels") || !strings.Contains(off.Tail(200), "fingerprinted labels are off") {
		t.Errorf("the workers do not say which labels were fingerprinted:\n%s\n%s", auto.Tail(20), off.Tail(20))
	}

	// The seed pipeline's GPU step selects gpu: "true"; with the model too,
	// only the fingerprinted worker matches.
	var resp wire.Enqueued
	run := inlineRun("train", map[string]string{"gpu": "true", "gpu-model": "nvidia-h100-80gb-hbm3"}, "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits")
	if code, err := leader.PostJSON("/api/v2/dag-runs", run, &resp); err != nil || (code != 200 && code != 201) {
		t.Fatalf("enqueue: HTTP %d %v", code, err)
	}
	runs := waitFinished(t, c, []string{"train"}, "succeeded", 60*time.Second)
	if got := runs["train"].WorkerID; got != "gpu-auto" {
		t.Fatalf("the GPU run ran on %q, want gpu-auto", got)
	}

	// The seed's pipeline itself, unchanged: its gpu: "true" child runs on
	// a worker whose gpu label was fingerprinted, never on those with
	// fingerprinting off. Its `python train_model.py` is a stand-in
	// beside the stand-in nvidia-smi.
	bin := strings.Split(strings.TrimPrefix(path, "PATH="), string(os.PathListSeparator))[0]
	writeFile(t, filepath.Join(bin, "python"), "#!/bin/sh\necho \"trained with $1\"\n", 0o755)
	pipeline := wire.EnqueueRequest{DagRunID: "seed-1", Yaml: seedPipeline, File: "distributed-pipeline.yaml"}
	if code, err := leader.PostJSON("/api/v2/dag-runs", pipeline, &resp); err != nil || code != 201 {
		t.Fatalf("enqueue the seed pipeline: HTTP %d %v", code, err)
	}
	parent := waitRunStatus(t, c, "seed-1", "succeeded", 60*time.Second)
	if len(parent.Children) != 1 {
		t.Fatalf("the pipeline's children: %+v", parent.Children)
	}
	ranOn := parent.Children[0].WorkerID
	for _, w := range workers.Workers {
		if w.ID == ranOn && (!slices.Contains(w.AutoLabels, "gpu") || w.Labels["gpu"] != "true") {
			t.Errorf("the seed's GPU child ran on %s, whose gpu label was not fingerprinted: %v %v", ranOn, w.Labels, w.AutoLabels)
		}
	}
	if ranOn != "gpu-auto" && ranOn != "gpu-hand" {
		t.Errorf("the seed's GPU child ran on %q, want a worker with a fingerprinted GPU", ranOn)
	}
}

// Dev mode's worker is fingerprinted as any worker is: with a GPU, the
// seed's gpu: "true" runs go to it with nothing typed.
func TestDevModesWorkerIsFingerprinted(t *testing.T) {
	ports := clustertest.FreePorts(t, 4)
	dev := clustertest.NewProcess(t, "dev", t.TempDir(), clustertest.BuildBinary(t), "agent", "-dev",
		"-http-port="+strconv.Itoa(ports[0]), "-grpc-port="+strconv.Itoa(ports[1]), "-raft-port="+strconv.Itoa(ports[2]), "-gossip-port="+strconv.Itoa(ports[3]))
	dev.Env = []string{standInNvidiaSMI(t)}
	startProcess(t, dev)
	a := &clustertest.Agent{Process: dev, HTTPPort: ports[0]}
	clustertest.WaitFor(t, 60*time.Second, "the dev worker with fingerprinted GPU labels", func() (bool, string) {
		var workers wire.Workers
		if code, err := a.GetJSON("/api/v2/workers", &workers); err != nil || code != http.StatusOK || len(workers.Workers) != 1 {
			return false, fmt.Sprintf("HTTP %d %v %+v", code, err, workers)
		}
		w := workers.Workers[0]
		return w.Labels["gpu"] == "true" && w.Labels["gpu-model"] == "nvidia-h100-80gb-hbm3" && slices.Contains(w.AutoLabels, "gpu"), fmt.Sprintf("%+v", w)
	})
	// The API says the version daguha version says (an unstamped build's).
	var health struct{ Version string }
	if code, err := a.GetJSON("/api/v2/health", &health); err != nil || code != http.StatusOK || health.Version != buildinfo.FallbackVersion {
		t.Errorf("health: HTTP %d %v, version %q, want %q", code, err, health.Version, buildinfo.FallbackVersion)
	}
}

// On a machine with a real NVIDIA GPU, a worker with no labels typed
// finds it and gets the gpu: "true" runs (skipped elsewhere).
func TestFingerprintedRealGPU(t *testing.T) {
	if _, err := exec.LookPath("nvidia-smi"); err != nil {
		t.Skip("no nvidia-smi on PATH")
	}
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 1})
	leader := c.WaitLeader(t, 30*time.Second)
	w := c.NewWorker("real-gpu")
	w.Env = nil // fingerprinted labels on
	startProcess(t, w)
	var resp wire.Enqueued
	run := inlineRun("real-gpu-run", map[string]string{"gpu": "true"}, "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits")
	if code, err := leader.PostJSON("/api/v2/dag-runs", run, &resp); err != nil || (code != 200 && code != 201) {
		t.Fatalf("enqueue: HTTP %d %v", code, err)
	}
	runs := waitFinished(t, c, []string{"real-gpu-run"}, "succeeded", 60*time.Second)
	var workers wire.Workers
	if code, err := leader.GetJSON("/api/v2/workers", &workers); err != nil || code != http.StatusOK {
		t.Fatalf("workers: HTTP %d %v", code, err)
	}
	for _, w := range workers.Workers {
		t.Logf("worker %s labels %v", w.ID, w.Labels)
		for _, k := range []string{"gpu-count", "gpu-model", "vram", "cuda"} {
			if w.Labels[k] == "" {
				t.Errorf("no %s label on %s: %v", k, w.ID, w.Labels)
			}
		}
	}
	t.Logf("the run: %+v", runs["real-gpu-run"].Steps)
}
