package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/service"
)

// recordingPusher records each push; it refuses files containing "BAD"
// as the service refuses invalid ones, and while unavailable is set fails
// as a push forwarded while the cluster has no leader does.
type recordingPusher struct {
	mu          sync.Mutex
	pushes      [][]string
	unavailable bool
}

// noLeader is the error of a push held through the forwarding hold with
// no leader elected.
var noLeader = fmt.Errorf("%w after waiting %s", cluster.ErrNoLeader, cluster.DefaultForwardHold)

func (p *recordingPusher) PushDags(ctx context.Context, sources []service.DagSource) ([]service.DagOutcome, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.unavailable {
		return nil, noLeader
	}
	var names []string
	for _, s := range sources {
		if strings.Contains(s.Content, "BAD") {
			return nil, &service.Error{Kind: service.Invalid, Err: fmt.Errorf("%s:1: broken", s.Name)}
		}
		names = append(names, s.Name+"="+s.Content)
	}
	sort.Strings(names)
	p.pushes = append(p.pushes, names)
	return nil, nil
}

func (p *recordingPusher) DeleteDagsIf(ctx context.Context, hashes map[string]string) ([]string, error) {
	return nil, nil
}

func (p *recordingPusher) history() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var parts []string
	for _, push := range p.pushes {
		parts = append(parts, "["+strings.Join(push, " ")+"]")
	}
	return strings.Join(parts, " ")
}

// The DAGs directory is pushed at start, then only what changed; files
// with problems wait for a change; a cluster without leader is retried.
func TestSyncDagsPushesChangesByContent(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "A1")
	write("b.yml", "B1")
	write("notes.txt", "ignored")
	write(".hidden.yaml", "ignored")
	pusher := &recordingPusher{unavailable: true}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		syncDags(ctx, dir, "", pusher, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() { cancel(); <-done }()
	waitHistory := func(want string) {
		t.Helper()
		clustertest.WaitFor(t, 20*time.Second, "pushes "+want, func() (bool, string) {
			got := pusher.history()
			return got == want, got
		})
	}
	// No leader yet: nothing recorded, then the first scan after it comes.
	pusher.mu.Lock()
	pusher.unavailable = false
	pusher.mu.Unlock()
	waitHistory("[a.yaml=A1 b.yml=B1]")
	write("b.yml", "B2")
	waitHistory("[a.yaml=A1 b.yml=B1] [b.yml=B2]")
	write("c.yaml", "BAD")
	write("a.yaml", "A2")
	// Refused together: nothing is recorded until the bad file is fixed.
	write("c.yaml", "C1")
	waitHistory("[a.yaml=A1 b.yml=B1] [b.yml=B2] [a.yaml=A2 c.yaml=C1]")
}

// A push fails either because of the files, which then wait for a change,
// or because the cluster cannot take it now, whatever the files: then it
// is tried again. An error that merely wraps another (a forwarded "no
// leader after 5s") is not the files' fault.
func TestFilesRefusedOnlyForTheFilesFaults(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"invalid files", &service.Error{Kind: service.Invalid, Err: errors.New("a.yaml:3: steps: a DAG needs at least one step")}, true},
		{"a command every replica refused", &cluster.CommandError{Err: errors.New("DAG too large")}, true},
		{"no leader within the forwarding hold", noLeader, false},
		{"no leader, as the service returns it", fmt.Errorf("push: %w", noLeader), false},
		{"a leader change", &cluster.RetryableError{Err: fmt.Errorf("%w: leadership lost", cluster.ErrNotLeader)}, false},
		{"a forward that the leader did not answer", fmt.Errorf("%w (no leader could take the request within 5s)", &cluster.RetryableError{Err: errors.New("connection refused")}), false},
		{"a time-out", fmt.Errorf("context deadline exceeded (last: %w)", context.DeadlineExceeded), false},
		{"a server that is shutting down", &service.Error{Kind: service.Unavailable, Err: errors.New("server is shutting down")}, false},
		{"an error of the server's own", errors.New("raft apply: disk full"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := filesRefused(c.err); got != c.want {
				t.Fatalf("filesRefused(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}

// The waits between pushes the cluster could not take grow from a scan
// interval to at most maxPushBackoff.
func TestPushBackoffGrowsToItsBound(t *testing.T) {
	var backoff time.Duration
	var waits []time.Duration
	for range 6 {
		backoff = nextBackoff(backoff)
		waits = append(waits, backoff)
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
}

// flakyPusher fails its first failures pushes with err, then stores.
type flakyPusher struct {
	recordingPusher
	failures int
	err      error
	tries    int
}

func (p *flakyPusher) PushDags(ctx context.Context, sources []service.DagSource) ([]service.DagOutcome, error) {
	p.mu.Lock()
	p.tries++
	failing := p.tries <= p.failures
	p.mu.Unlock()
	if failing {
		return nil, p.err
	}
	return p.recordingPusher.PushDags(ctx, sources)
}

// Regression: a server started with -dags before its peers had its first
// pushes fail with "no cluster leader after waiting 5s"; the sync took
// that for bad files and never pushed them. It must push them, unchanged,
// once the cluster can take them; bad files still wait for a change.
func TestSyncDagsRetriesUntilTheClusterHasALeader(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("A1"), 0o644); err != nil {
		t.Fatal(err)
	}
	pusher := &flakyPusher{failures: 2, err: noLeader}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		syncDags(ctx, dir, "", pusher, slog.New(slog.NewTextHandler(logs, nil)))
	}()
	defer func() { cancel(); <-done }()
	clustertest.WaitFor(t, 30*time.Second, "the files pushed once the cluster takes them", func() (bool, string) {
		got := pusher.history()
		return got == "[a.yaml=A1]", got
	})
	if text := logs.String(); strings.Contains(text, "fix them") || strings.Count(text, "retrying") != 2 {
		t.Fatalf("want two retries and no complaint about the files; log:\n%s", text)
	}
}

// storePusher stands in for the cluster's DAG table: a file's DAG is named
// by its content's first word; a push stores it under the file's content
// hash, a conditional delete compares that hash.
type storePusher struct {
	mu      sync.Mutex
	dags    map[string]string // DAG -> content hash
	deletes []string
}

func contentHash(content string) string {
	sum := sha256.Sum256([]byte(content))
	return hex.EncodeToString(sum[:])
}

func (p *storePusher) PushDags(ctx context.Context, sources []service.DagSource) ([]service.DagOutcome, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var outcomes []service.DagOutcome
	for _, s := range sources {
		name, hash := strings.Fields(s.Content)[0], contentHash(s.Content)
		result := "created"
		if old, ok := p.dags[name]; ok {
			result = "updated"
			if old == hash {
				result = "unchanged"
			}
		}
		p.dags[name] = hash
		outcomes = append(outcomes, service.DagOutcome{Name: name, File: s.Name, Result: result})
	}
	return outcomes, nil
}

func (p *storePusher) DeleteDagsIf(ctx context.Context, hashes map[string]string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var deleted []string
	for name, hash := range hashes {
		p.deletes = append(p.deletes, name)
		if stored, ok := p.dags[name]; ok && stored == hash {
			delete(p.dags, name)
			deleted = append(deleted, name)
		}
	}
	return deleted, nil
}

func (p *storePusher) stored() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var names []string
	for name := range p.dags {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// Removing a file deletes its DAG, and a file that comes to define
// another DAG deletes the one before; not a DAG stored since from other
// content, not a DAG whose file was only renamed, not when the directory
// cannot be read; and a file removed while the server was down is
// noticed through the record in its data directory.
func TestSyncDagsDeletesTheDagsOfRemovedFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dags")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(t.TempDir(), DagsDirStateFile)
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	remove := func(name string) {
		t.Helper()
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	pusher := &storePusher{dags: map[string]string{}}
	startLogged := func(logger *slog.Logger) func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			syncDags(ctx, dir, statePath, pusher, logger)
		}()
		return func() { cancel(); <-done }
	}
	start := func() func() { return startLogged(slog.New(slog.NewTextHandler(io.Discard, nil))) }
	waitStored := func(want string) {
		t.Helper()
		clustertest.WaitFor(t, 20*time.Second, "stored DAGs "+want, func() (bool, string) {
			got := pusher.stored()
			return got == want, got
		})
	}
	write("a.yaml", "etl v1")
	write("b.yaml", "report v1")
	write("c.yaml", "moved v1")
	write("e.yaml", "nightly v1")
	stop := start()
	waitStored("etl moved nightly report")

	remove("a.yaml")
	waitStored("moved nightly report")

	// b.yaml now defines another DAG: the one it defined goes.
	write("b.yaml", "summary v1")
	waitStored("moved nightly summary")

	// Renamed with the same content: the DAG stays.
	if err := os.Rename(filepath.Join(dir, "c.yaml"), filepath.Join(dir, "d.yaml")); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 20*time.Second, "the rename to be recorded", func() (bool, string) {
		data, err := os.ReadFile(statePath)
		return err == nil && strings.Contains(string(data), `"d.yaml"`) && !strings.Contains(string(data), `"c.yaml"`), string(data)
	})
	if got := pusher.stored(); got != "moved nightly summary" {
		t.Fatalf("after the rename: stored %q, want moved nightly summary", got)
	}
	// Somebody stores summary from other content; then b.yaml goes: the
	// other version stays.
	pusher.mu.Lock()
	pusher.dags["summary"] = contentHash("summary by hand")
	pusher.mu.Unlock()
	remove("b.yaml")
	clustertest.WaitFor(t, 20*time.Second, "the removal of b.yaml to be acted on", func() (bool, string) {
		pusher.mu.Lock()
		defer pusher.mu.Unlock()
		for _, name := range pusher.deletes {
			if name == "summary" {
				return true, ""
			}
		}
		return false, fmt.Sprint(pusher.deletes)
	})
	if got := pusher.stored(); got != "moved nightly summary" {
		t.Fatalf("after the removal of b.yaml: stored %q, want moved nightly summary (the other version)", got)
	}
	stop()

	// A file removed while the server is down.
	remove("e.yaml")
	stop = start()
	waitStored("moved summary")
	stop()

	// An unreadable directory deletes nothing.
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	before := len(pusher.deletes)
	logs := &syncBuffer{}
	stop = startLogged(slog.New(slog.NewTextHandler(logs, nil)))
	defer stop()
	clustertest.WaitFor(t, 20*time.Second, "two scans of the missing directory", func() (bool, string) {
		return strings.Count(logs.String(), "cannot read the DAGs directory") >= 2, logs.String()
	})
	if got := pusher.stored(); got != "moved summary" || len(pusher.deletes) != before {
		t.Fatalf("with the directory gone: stored %q, deletes %v", got, pusher.deletes)
	}
}

// syncBuffer is a log destination safe for the sync's goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A missing, unreadable or partly empty record starts afresh with maps
// the sync can write into; a good one is read back as it was saved.
func TestDagsDirStateLoads(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	for name, content := range map[string]string{"garbage": "not json", "nulls": `{"files": null, "retiring": null}`} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		state := loadDagsDirState(path, logger)
		if state.Files == nil || state.Retiring == nil || len(state.Files)+len(state.Retiring) != 0 {
			t.Errorf("%s: %+v", name, state)
		}
	}
	if state := loadDagsDirState(filepath.Join(dir, "missing"), logger); state.Files == nil || state.Retiring == nil {
		t.Errorf("missing: %+v", state)
	}
	path := filepath.Join(dir, DagsDirStateFile)
	saved := dagsDirState{Files: map[string]ownedDag{"a.yaml": {Dag: "etl", Hash: "h1"}}, Retiring: map[string]string{"old": "h0"}}
	saveDagsDirState(path, saved, logger)
	got := loadDagsDirState(path, logger)
	if got.Files["a.yaml"] != saved.Files["a.yaml"] || got.Retiring["old"] != "h0" || len(got.Files) != 1 || len(got.Retiring) != 1 {
		t.Fatalf("read back %+v, saved %+v", got, saved)
	}
}
