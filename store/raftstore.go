package store

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

// snapshotsRetained is how many Raft snapshots stay on disk: the newest to
// restore from, one older in case the newest turns out to be damaged.
const snapshotsRetained = 2

// RaftStores is the durable side of Raft in a data directory: the log and
// stable store in raft/raft.db (bbolt, fsync on every write) and snapshots
// under raft/snapshots.
type RaftStores struct {
	Log       *raftboltdb.BoltStore
	Snapshots *raft.FileSnapshotStore
}

// OpenRaftStores opens or creates the Raft stores under dataDir.
func OpenRaftStores(dataDir string, logOutput io.Writer) (*RaftStores, error) {
	dir := filepath.Join(dataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create raft directory %s: %w", dir, err)
	}
	logStore, err := raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(dir, "raft.db"),
		// The freelist is rebuilt on open instead of written on every
		// commit: fewer bytes per fsync, and fsync itself stays on.
		BoltOptions: &bolt.Options{NoFreelistSync: true},
	})
	if err != nil {
		return nil, fmt.Errorf("open raft log %s: %w", filepath.Join(dir, "raft.db"), err)
	}
	snaps, err := raft.NewFileSnapshotStore(dir, snapshotsRetained, logOutput)
	if err != nil {
		logStore.Close()
		return nil, fmt.Errorf("open snapshot store in %s: %w", dir, err)
	}
	return &RaftStores{Log: logStore, Snapshots: snaps}, nil
}

// Close closes the log store.
func (r *RaftStores) Close() error { return r.Log.Close() }
