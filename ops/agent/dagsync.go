package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/daguha/daguha/ops/service"
)

// DagsScanInterval is how often a server looks for changed DAG files in
// its --dags directory.
const DagsScanInterval = 2 * time.Second

// maxPushBackoff bounds the wait between pushes of DAG files that the
// cluster could not take (no leader yet).
const maxPushBackoff = 30 * time.Second

// filesRefused reports whether a push failed because of the files
// themselves: they are invalid, or the state machine refused them. Pushing
// them again cannot help until one changes. Any other failure (no leader
// yet, a leader change, a forward that failed, a time-out) says nothing
// about the files: they are pushed again until they are stored.
func filesRefused(err error) bool {
	switch service.KindOf(err) {
	case service.Invalid, service.TooLarge, service.Conflict:
		return true
	}
	return false
}

// nextBackoff doubles the wait before the next push, from one scan
// interval up to maxPushBackoff.
func nextBackoff(backoff time.Duration) time.Duration {
	return min(max(2*backoff, DagsScanInterval), maxPushBackoff)
}

// dagPusher is what the directory sync needs of the service.
type dagPusher interface {
	PushDags(ctx context.Context, sources []service.DagSource) ([]service.DagOutcome, error)
	DeleteDagsIf(ctx context.Context, hashes map[string]string) ([]string, error)
}

// dagsDirState is what a server remembers of its DAGs directory, kept in
// its data directory so that a file removed while the server was down is
// noticed when it is back: the DAG each file stored, with the file's
// content hash then, and DAGs it stored that are to be deleted still.
type dagsDirState struct {
	Files    map[string]ownedDag `json:"files"`
	Retiring map[string]string   `json:"retiring,omitempty"`
}

type ownedDag struct {
	Dag  string `json:"dag"`
	Hash string `json:"hash"`
}

// DagsDirStateFile is the name of that record in a server's data dir.
const DagsDirStateFile = "dags-dir.json"

// syncDags pushes the DAG files of dir into the cluster, then every change
// to them, by content hash: mounting a directory of DAGs works as Dagu's
// dags directory does. Files are pushed together, so one may call a DAG of
// another. A set of files with problems is logged, with every problem,
// and tried again once a file changes; a push the cluster could not take
// (no leader yet: a server started before its peers) is tried again,
// waiting longer each time, until it is stored.
//
// Removing a file deletes the DAG it stored, and a file that comes to
// define another DAG name deletes the one it defined before; each only
// while the stored DAG is still the file's content this server pushed
// (a DAG pushed since by hand or by another server from other content
// stays), and never a DAG another file of the directory defines. With
// statePath (in the server's data directory) this survives a restart.
func syncDags(ctx context.Context, dir, statePath string, pusher dagPusher, logger *slog.Logger) {
	logger = logger.With("dags_dir", dir)
	state := loadDagsDirState(statePath, logger)
	pushed := map[string][32]byte{} // file -> hash of its content last stored
	var failed string               // fingerprint of the file set that last failed validation
	var (
		backoff time.Duration // wait after the last push the cluster could not take
		retryAt time.Time     // no push before then
	)
	ticker := time.NewTicker(DagsScanInterval)
	defer ticker.Stop()
	for {
		sources, hashes, err := readDagDir(dir)
		switch {
		case err != nil:
			// An unreadable directory (a volume not mounted yet) says
			// nothing about which DAGs were removed: nothing is deleted.
			logger.Warn("cannot read the DAGs directory", "error", err)
		default:
			var changed []service.DagSource
			for _, source := range sources {
				if pushed[source.Name] != hashes[source.Name] {
					changed = append(changed, source)
				}
			}
			fingerprint := setFingerprint(hashes)
			dirty := false
			if len(changed) > 0 && fingerprint != failed && !time.Now().Before(retryAt) {
				outcomes, err := pusher.PushDags(ctx, changed)
				switch {
				case err == nil:
					failed, backoff, retryAt = "", 0, time.Time{}
					for _, source := range changed {
						pushed[source.Name] = hashes[source.Name]
					}
					for _, o := range outcomes {
						if o.Result != "unchanged" {
							logger.Info("DAG stored from the DAGs directory", "dag", o.Name, "file", o.File, "result", o.Result)
						}
						sum := hashes[o.File]
						before, had := state.Files[o.File]
						if had && before.Dag != o.Name {
							state.Retiring[before.Dag] = before.Hash
						}
						state.Files[o.File] = ownedDag{Dag: o.Name, Hash: hex.EncodeToString(sum[:])}
						dirty = true
					}
				case filesRefused(err):
					failed = fingerprint
					logger.Error("DAG files not stored: fix them and save again", "problems", strings.Split(err.Error(), "\n"))
				default:
					backoff = nextBackoff(backoff)
					retryAt = time.Now().Add(backoff)
					if ctx.Err() == nil {
						logger.Info("DAG files not stored yet: the cluster cannot take them now; retrying", "error", err, "retry_in", backoff)
					}
				}
			}
			for file, owned := range state.Files {
				if _, present := hashes[file]; !present {
					state.Retiring[owned.Dag] = owned.Hash
					delete(state.Files, file)
					delete(pushed, file)
					dirty = true
				}
			}
			if retireDags(ctx, pusher, &state, logger) {
				dirty = true
			}
			if dirty {
				saveDagsDirState(statePath, state, logger)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// retireDags deletes the DAGs of state.Retiring, but those a file of the
// directory stores now, and reports whether it changed state. A failed
// delete (no leader) is tried again at the next scan.
func retireDags(ctx context.Context, pusher dagPusher, state *dagsDirState, logger *slog.Logger) bool {
	if len(state.Retiring) == 0 {
		return false
	}
	changed := false
	for _, owned := range state.Files {
		if _, ok := state.Retiring[owned.Dag]; ok {
			delete(state.Retiring, owned.Dag)
			changed = true
		}
	}
	if len(state.Retiring) == 0 {
		return changed
	}
	deleted, err := pusher.DeleteDagsIf(ctx, state.Retiring)
	if err != nil {
		if ctx.Err() == nil {
			logger.Debug("deleting the DAGs of removed files failed; retrying", "error", err)
		}
		return changed
	}
	gone := map[string]bool{}
	for _, name := range deleted {
		gone[name] = true
	}
	for name := range state.Retiring {
		if gone[name] {
			logger.Info("DAG deleted: its file left the DAGs directory or defines another DAG now", "dag", name)
		} else {
			logger.Info("DAG of a removed file not deleted: it is no longer stored, or was stored since from other content", "dag", name)
		}
	}
	state.Retiring = map[string]string{}
	return true
}

func loadDagsDirState(path string, logger *slog.Logger) dagsDirState {
	var state dagsDirState
	if path != "" {
		data, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(data, &state)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			// Without it, files removed while the server was down are not
			// noticed; nothing else depends on it.
			logger.Warn("the record of the DAGs directory's files is unreadable; starting afresh", "file", path, "error", err)
			state = dagsDirState{}
		}
	}
	if state.Files == nil {
		state.Files = map[string]ownedDag{}
	}
	if state.Retiring == nil {
		state.Retiring = map[string]string{}
	}
	return state
}

// saveDagsDirState writes the record whole, through a temporary file.
func saveDagsDirState(path string, state dagsDirState, logger *slog.Logger) {
	if path == "" {
		return
	}
	data, err := json.MarshalIndent(state, "", "  ")
	if err == nil {
		tmp := path + ".tmp"
		if err = os.WriteFile(tmp, append(data, '\n'), 0o600); err == nil {
			err = os.Rename(tmp, path)
		}
	}
	if err != nil {
		logger.Warn("cannot record the DAGs directory's files", "file", path, "error", err)
	}
}

// readDagDir reads the *.yaml and *.yml files of dir (not recursively).
func readDagDir(dir string) ([]service.DagSource, map[string][32]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var sources []service.DagSource
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
		sources = append(sources, service.DagSource{Name: name, Content: string(data)})
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
