package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/daguha/daguha/ops/api"
)

// DagsScanInterval is how often a server looks for changed DAG files in
// its --dags directory.
const DagsScanInterval = 2 * time.Second

// dagPusher is what the directory sync needs of the API.
type dagPusher interface {
	PushDags(ctx context.Context, sources []api.DagSource) ([]api.DagOutcome, error)
}

// syncDags pushes the DAG files of dir into the cluster, then every change
// to them, by content hash: mounting a directory of DAGs works as Dagu's
// dags directory does. Files are pushed together, so one may call a DAG of
// another. A set of files with problems is logged, with every problem,
// and tried again once a file changes. Removing a file does not delete its
// DAG (use daguha dag delete).
func syncDags(ctx context.Context, dir string, pusher dagPusher, logger *slog.Logger) {
	logger = logger.With("dags_dir", dir)
	pushed := map[string][32]byte{} // file -> hash of its content last stored
	var failed string               // fingerprint of the file set that last failed validation
	ticker := time.NewTicker(DagsScanInterval)
	defer ticker.Stop()
	for {
		sources, hashes, err := readDagDir(dir)
		switch {
		case err != nil:
			logger.Warn("cannot read the DAGs directory", "error", err)
		default:
			var changed []api.DagSource
			for _, source := range sources {
				if pushed[source.Name] != hashes[source.Name] {
					changed = append(changed, source)
				}
			}
			fingerprint := setFingerprint(hashes)
			if len(changed) > 0 && fingerprint != failed {
				outcomes, err := pusher.PushDags(ctx, changed)
				var bad interface{ Unwrap() error }
				switch {
				case err == nil:
					failed = ""
					for _, source := range changed {
						pushed[source.Name] = hashes[source.Name]
					}
					for _, o := range outcomes {
						if o.Result != "unchanged" {
							logger.Info("DAG stored from the DAGs directory", "dag", o.Name, "file", o.File, "result", o.Result)
						}
					}
				case errors.As(err, &bad):
					failed = fingerprint
					logger.Error("DAG files not stored: fix them and save again", "problems", strings.Split(err.Error(), "\n"))
				default:
					// No leader yet, or the cluster is busy: try at the next scan.
					if ctx.Err() == nil {
						logger.Debug("pushing DAG files failed; retrying", "error", err)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// readDagDir reads the *.yaml and *.yml files of dir (not recursively).
func readDagDir(dir string) ([]api.DagSource, map[string][32]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var sources []api.DagSource
	hashes := map[string][32]byte{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, nil, err
		}
		sources = append(sources, api.DagSource{Name: name, Content: string(data)})
		hashes[name] = sha256.Sum256(data)
	}
	return sources, hashes, nil
}

func setFingerprint(hashes map[string][32]byte) string {
	names := make([]string, 0, len(hashes))
	for name := range hashes {
		names = append(names, name)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		sum := hashes[name]
		h.Write([]byte(name))
		h.Write(sum[:])
	}
	return string(h.Sum(nil))
}
