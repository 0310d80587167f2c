package bench

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
)

// profiles is where a run keeps its CPU profiles, beside its results, so
// `go tool pprof` can be pointed at the one behind a figure.
func (s *suite) profilePath(name string) string {
	dir := filepath.Join("results", "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Fatal(err)
	}
	return filepath.Join(dir, s.runName()+"-"+name+".pprof")
}

// profileServer starts a CPU profile of a server (started with -pprof)
// for the given seconds; the returned function waits for it, keeps it
// under results/profiles and gives what the figure records of it: the
// file and the functions that took the most CPU, as `go tool pprof -top`
// prints them.
func (s *suite) profileServer(a *clustertest.Agent, name string, seconds int) func() map[string]any {
	done := make(chan map[string]any, 1)
	go func() {
		client := &http.Client{Timeout: time.Duration(seconds+30) * time.Second}
		resp, err := client.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", a.HTTPAddr(), seconds))
		if err != nil {
			done <- map[string]any{"error": err.Error()}
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			done <- map[string]any{"error": fmt.Sprintf("status %d: %v %s", resp.StatusCode, err, data)}
			return
		}
		done <- s.keepProfile(name, data)
	}()
	return func() map[string]any { return <-done }
}

// profileHere profiles this process (the in-process figures: matching,
// snapshots) while run runs.
func (s *suite) profileHere(name string, run func()) map[string]any {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		run()
		return map[string]any{"error": err.Error()}
	}
	run()
	pprof.StopCPUProfile()
	return s.keepProfile(name, buf.Bytes())
}

func (s *suite) keepProfile(name string, data []byte) map[string]any {
	path := s.profilePath(name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return map[string]any{"error": err.Error()}
	}
	out := map[string]any{"file": path}
	top, err := pprofTop(path, "-top")
	if err != nil {
		out["error"] = err.Error()
		return out
	}
	out["top_flat"] = top
	if cum, err := pprofTop(path, "-top", "-cum"); err == nil {
		out["top_cum"] = cum
	}
	return out
}

// pprofTop runs `go tool pprof` on a profile and returns its table rows
// (flat, flat%, sum%, cum, cum%, function), at most 15.
func pprofTop(path string, args ...string) ([]string, error) {
	cmd := exec.Command("go", append(append([]string{"tool", "pprof", "-nodecount=15"}, args...), path)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof: %v: %s", err, out)
	}
	var rows []string
	inTable := false
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "flat%") {
			inTable = true
			continue
		}
		if inTable && strings.TrimSpace(line) != "" {
			rows = append(rows, strings.Join(strings.Fields(line), " "))
		}
	}
	return rows, nil
}
