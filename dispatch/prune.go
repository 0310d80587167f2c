package dispatch

import (
	"context"
	"time"

	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// DefaultRunRetention is how long an ended run stays in the replicated
// state before the leader removes it: 30 days, Dagu's default history
// retention (histRetentionDays).
const DefaultRunRetention = 30 * 24 * time.Hour

// Pruning works through the runs table a slice at a time, so a store of
// millions of runs costs the leader a few milliseconds a tick, never a
// stall: pruneScan runs are looked at per tick, and one command removes
// at most prunePerCommand hierarchies.
const (
	pruneScan        = 20000
	prunePerCommand  = 1000
	maxPruneInterval = time.Minute
)

// pruneInterval is how often the leader looks for runs past retention: a
// tenth of the retention, at most a minute, at least a second.
func pruneInterval(retention time.Duration) time.Duration {
	return min(max(retention/10, time.Second), maxPruneInterval)
}

// pruner is the leader's run retention: it removes run hierarchies whose
// root ended more than retention ago, through Raft (PruneRuns), so every
// replica forgets the same runs. The state machine checks again what the
// leader proposes: a run that is not ended, or not old enough by the
// cutoff carried in the command, is never removed.
type pruner struct {
	backend   Backend
	retention time.Duration
	interval  time.Duration
	now       func() time.Time
	d         *Dispatcher
	// cursor is the run id the next scan starts after ("" for the start).
	cursor string
}

func (p *pruner) run(ctx context.Context) {
	interval := p.interval
	if interval <= 0 {
		interval = pruneInterval(p.retention)
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if _, err := p.tick(ctx); err != nil && ctx.Err() == nil {
			p.d.logger.Warn("run retention: prune failed; retrying at the next tick", "error", err)
		}
	}
}

// tick scans the next slice of the runs table and prunes what is past
// retention; it returns how many runs were removed.
func (p *pruner) tick(ctx context.Context) (uint64, error) {
	cutoff := p.now().Add(-p.retention).UnixNano()
	roots, next, err := p.backend.State().PruneCandidates(p.cursor, pruneScan, pruneScan, cutoff)
	if err != nil {
		return 0, err
	}
	var removed uint64
	for len(roots) > 0 {
		n := min(len(roots), prunePerCommand)
		result, _, err := p.backend.Apply(ctx, fsm.PruneRunsType, &daguhav1.PruneRunsCommand{RootRunIds: roots[:n], EndedBeforeUnixNano: cutoff})
		if err != nil {
			// The cursor stays: the same slice is looked at again.
			return removed, err
		}
		out := result.(*daguhav1.PruneRunsResult)
		removed += out.GetRunsRemoved()
		p.d.config.Metrics.RunsPruned(out.GetRunsRemoved())
		roots = roots[n:]
	}
	p.cursor = next
	if removed > 0 {
		p.d.logger.Info("run retention: removed ended runs", "runs", removed, "retention", p.retention)
	}
	return removed, nil
}
