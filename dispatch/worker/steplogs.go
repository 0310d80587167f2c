package worker

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// DefaultStepLogRetention is how long a worker keeps the full step logs
// of a run after they were last written: as long as the cluster keeps
// the run (dispatch.DefaultRunRetention, 30 days; the commands' tests
// hold the two equal), so a run the API still shows still has its logs.
const DefaultStepLogRetention = 30 * 24 * time.Hour

// stepLogSweepEvery is how often a worker with a log retention looks for
// logs past it: a tenth of the retention, within a minute and an hour.
func stepLogSweepEvery(retention time.Duration) time.Duration {
	return min(max(retention/10, time.Minute), time.Hour)
}

// PruneStepLogs removes the log directory of every run under dir (one
// directory per run, as the Engine writes them, named by the run id made
// safe for a path) whose newest file or directory was modified before
// cutoff. Each removal goes through guard, which is given the directory's
// name and the removal and decides: the worker calls it only for runs it
// is not executing, under the lock that a run taken at the same moment
// registers under, so that run is either seen or starts its logs after
// the removal. It returns how many run directories were removed; a run
// that could not be read or removed is left, its error returned with the
// others, and the sweep goes on.
func PruneStepLogs(dir string, cutoff time.Time, guard func(name string, remove func() error) error) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	removed := 0
	var errs []error
	for _, entry := range entries {
		if !entry.IsDir() {
			continue
		}
		runDir := filepath.Join(dir, entry.Name())
		newest, err := newestModification(runDir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !newest.Before(cutoff) {
			continue
		}
		err = guard(entry.Name(), func() error {
			if err := os.RemoveAll(runDir); err != nil {
				return err
			}
			removed++
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

// newestModification is the latest modification time of root and
// everything under it: a file written to does not touch its directory.
func newestModification(root string) (time.Time, error) {
	var newest time.Time
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.ModTime().After(newest) {
			newest = info.ModTime()
		}
		return nil
	})
	return newest, err
}

// sweepStepLogs removes the logs of runs past the worker's log retention
// that it is not executing.
func (w *Worker) sweepStepLogs() {
	cutoff := w.config.Now().Add(-w.config.LogRetention)
	removed, err := PruneStepLogs(w.config.LogDir, cutoff, func(name string, remove func() error) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		for id := range w.running {
			if safeName(id) == name {
				return nil
			}
		}
		return remove()
	})
	if err != nil {
		w.logger.Warn("step log retention: some logs could not be removed", "dir", w.config.LogDir, "error", err)
	}
	if removed > 0 {
		w.logger.Info("step log retention: removed the logs of runs past it", "runs", removed, "retention", w.config.LogRetention)
	}
}
