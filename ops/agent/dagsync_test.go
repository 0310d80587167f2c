package agent

import (
	"context"
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

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/api"
)

// recordingPusher records each push; it refuses files containing "BAD"
// as the API refuses invalid ones, and fails while unavailable is set.
type recordingPusher struct {
	mu          sync.Mutex
	pushes      [][]string
	unavailable bool
}

type invalid struct{ error }

func (e invalid) Unwrap() error { return e.error }

func (p *recordingPusher) PushDags(ctx context.Context, sources []api.DagSource) ([]api.DagOutcome, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.unavailable {
		return nil, errors.New("no cluster leader")
	}
	var names []string
	for _, s := range sources {
		if strings.Contains(s.Content, "BAD") {
			return nil, invalid{fmt.Errorf("%s:1: broken", s.Name)}
		}
		names = append(names, s.Name+"="+s.Content)
	}
	sort.Strings(names)
	p.pushes = append(p.pushes, names)
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
		syncDags(ctx, dir, pusher, slog.New(slog.NewTextHandler(io.Discard, nil)))
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
