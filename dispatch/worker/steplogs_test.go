package worker

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// writeLog writes a step log file under dir/run/attempt with the given
// modification time, and sets the directories' times too.
func writeLog(t *testing.T, dir, run, step string, at time.Time) {
	t.Helper()
	path := filepath.Join(dir, run, "1", step+".log")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("output\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, filepath.Dir(path), filepath.Join(dir, run)} {
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
}

func runDirs(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// A run's logs go when everything in them is older than the cutoff and
// the guard lets them; a run with one recent file stays whole, as does a
// run the guard holds; files beside the run directories are left alone.
func TestPruneStepLogsRemovesOnlyRunsPastTheCutoff(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	old, recent := now.Add(-40*24*time.Hour), now.Add(-time.Hour)
	writeLog(t, dir, "old", "s", old)
	writeLog(t, dir, "recent", "s", recent)
	writeLog(t, dir, "mixed", "a", old)
	writeLog(t, dir, "mixed", "b", recent)
	// A file written later, in old directories: the run is still recent.
	writeLog(t, dir, "late-file", "s", old)
	late := filepath.Join(dir, "late-file", "1", "s.log")
	if err := os.Chtimes(late, recent, recent); err != nil {
		t.Fatal(err)
	}
	writeLog(t, dir, "held", "s", old)
	if err := os.WriteFile(filepath.Join(dir, "stray.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "stray.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	var asked []string
	removed, err := PruneStepLogs(dir, now.Add(-30*24*time.Hour), func(name string, remove func() error) error {
		asked = append(asked, name)
		if name == "held" {
			return nil
		}
		return remove()
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(asked)
	if removed != 1 || len(asked) != 2 || asked[0] != "held" || asked[1] != "old" {
		t.Fatalf("removed %d, guard asked about %v; want 1 and [held old]", removed, asked)
	}
	if got := runDirs(t, dir); len(got) != 5 || got[0] != "held" || got[1] != "late-file" || got[2] != "mixed" || got[3] != "recent" || got[4] != "stray.txt" {
		t.Fatalf("left %v", got)
	}
	// A log directory that does not exist (yet) is nothing to prune.
	if n, err := PruneStepLogs(filepath.Join(dir, "missing"), now, nil); n != 0 || err != nil {
		t.Fatalf("missing dir: %d, %v", n, err)
	}
}

// A worker with a log retention sweeps its log directory when it starts:
// the logs of runs past the retention go, but of a run it is executing
// (by its id made safe for a path), and the directory itself stays.
func TestWorkerSweepsStepLogsPastItsRetention(t *testing.T) {
	conn, err := grpc.NewClient("passthrough:///nowhere", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dir := t.TempDir()
	// The worker's clock is 31 days ahead of the files' times.
	later := time.Now().Add(31 * 24 * time.Hour)
	for _, retention := range []time.Duration{0, 30 * 24 * time.Hour} {
		engine := &Engine{LogDir: dir}
		for _, run := range []string{"done-1", "held/run", "done-2"} {
			path := engine.LogPath(run, 1, "s")
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		worker, err := New(conn, Config{ID: "w", MaxActiveRuns: 1, LogDir: dir, LogRetention: retention,
			Now: func() time.Time { return later }})
		if err != nil {
			t.Fatal(err)
		}
		worker.running["held/run"] = &activeRun{cancel: func(error) {}}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := worker.Run(ctx); err != nil {
			t.Fatal(err)
		}
		got := runDirs(t, dir)
		if retention == 0 && len(got) != 3 {
			t.Fatalf("with no retention the worker removed logs: left %v", got)
		}
		if retention > 0 && (len(got) != 1 || got[0] != safeName("held/run")) {
			t.Fatalf("with a retention of %s: left %v, want only the held run's %s", retention, got, safeName("held/run"))
		}
	}
}

func TestStepLogSweepInterval(t *testing.T) {
	for retention, want := range map[time.Duration]time.Duration{
		30 * 24 * time.Hour: time.Hour,
		5 * time.Hour:       30 * time.Minute,
		time.Minute:         time.Minute,
	} {
		if got := stepLogSweepEvery(retention); got != want {
			t.Errorf("retention %s: sweep every %s, want %s", retention, got, want)
		}
	}
}
