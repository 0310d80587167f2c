package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/fsm"
)

// ErrUnknownPeer is returned for a server id not in the configuration.
var ErrUnknownPeer = errors.New("no such server in the Raft configuration")

// OperatorClient reaches the leader for operator changes; PeerClient
// implementations that support them provide it.
type OperatorClient interface {
	RemovePeer(ctx context.Context, grpcAddr, id string) error
	TransferLeadership(ctx context.Context, grpcAddr, id string) error
}

// RemovePeer takes a server out of the Raft configuration, from any
// server (the leader does it). A server still alive in gossip would be
// added back: stop it first.
func (s *Server) RemovePeer(ctx context.Context, id string) error {
	return s.OnLeader(ctx, func(ctx context.Context, local bool, grpcAddr string) error {
		if !local {
			return s.operator().RemovePeer(ctx, grpcAddr, id)
		}
		return s.RemovePeerLocal(id)
	})
}

// RemovePeerLocal removes a server on the leader.
func (s *Server) RemovePeerLocal(id string) error {
	servers, err := s.configuration()
	if err != nil {
		return err
	}
	found := false
	for _, server := range servers {
		found = found || server.ID == raft.ServerID(id)
	}
	if !found {
		return &CommandError{Err: fmt.Errorf("%w: %q", ErrUnknownPeer, id)}
	}
	if id == s.config.NodeName {
		return &CommandError{Err: errors.New("the leader cannot remove itself: transfer leadership first")}
	}
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error(); err != nil {
		return retryableRaftError(err)
	}
	s.logger.Info("server removed by an operator", "server", id)
	return nil
}

// TransferLeadership hands leadership to the server id, or to the most
// up-to-date follower when id is empty.
func (s *Server) TransferLeadership(ctx context.Context, id string) error {
	return s.OnLeader(ctx, func(ctx context.Context, local bool, grpcAddr string) error {
		if !local {
			return s.operator().TransferLeadership(ctx, grpcAddr, id)
		}
		return s.TransferLeadershipLocal(id)
	})
}

// TransferLeadershipLocal transfers leadership from this leader. Asking
// the leader to transfer to itself succeeds: it is where the caller wants
// leadership to be, and a forwarded request abandoned when leadership
// moved is retried at the new leader.
func (s *Server) TransferLeadershipLocal(id string) error {
	if id == s.config.NodeName {
		return nil
	}
	var future raft.Future
	if id == "" {
		future = s.raft.LeadershipTransfer()
	} else {
		servers, err := s.configuration()
		if err != nil {
			return err
		}
		var target *raft.Server
		for i := range servers {
			if servers[i].ID == raft.ServerID(id) {
				target = &servers[i]
			}
		}
		switch {
		case target == nil:
			return &CommandError{Err: fmt.Errorf("%w: %q", ErrUnknownPeer, id)}
		case target.Suffrage != raft.Voter:
			return &CommandError{Err: fmt.Errorf("server %q is not a voter", id)}
		}
		future = s.raft.LeadershipTransferToServer(target.ID, target.Address)
	}
	if err := future.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			// A forwarded transfer that was abandoned when leadership moved
			// (often: because it moved) can reach this server again before
			// the forwarding server has heard of the new leader: retried,
			// it finds the new leader, where a transfer to itself succeeds.
			return &RetryableError{Err: fmt.Errorf("leadership transfer: %w", err)}
		}
		return &CommandError{Err: fmt.Errorf("leadership transfer: %w", err)}
	}
	s.logger.Info("leadership transferred by an operator", "to", id)
	return nil
}

func retryableRaftError(err error) error {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
		return &RetryableError{Err: err}
	}
	return err
}

func (s *Server) operator() OperatorClient {
	if op, ok := s.config.Peers.(OperatorClient); ok {
		return op
	}
	return noOperator{}
}

type noOperator struct{}

func (noOperator) RemovePeer(context.Context, string, string) error {
	return errors.New("this server cannot reach the leader for operator changes")
}
func (noOperator) TransferLeadership(context.Context, string, string) error {
	return errors.New("this server cannot reach the leader for operator changes")
}

// PeerState is one server of the Raft configuration with what it says of
// itself.
type PeerState struct {
	Peer
	// State is "leader", "follower", or "unreachable".
	State     string `json:"state"`
	LastIndex uint64 `json:"last_index"`
	Term      uint64 `json:"term"`
}

// PeerStates lists the Raft configuration, asking each server over gRPC
// for its last index.
func (s *Server) PeerStates(ctx context.Context) ([]PeerState, error) {
	peers, err := s.Peers()
	if err != nil {
		return nil, err
	}
	out := make([]PeerState, len(peers))
	for i, p := range peers {
		out[i] = PeerState{Peer: p, State: "follower"}
		if p.Leader {
			out[i].State = "leader"
		}
		if p.ID == s.config.NodeName {
			out[i].LastIndex, out[i].Term = s.raft.LastIndex(), s.raft.CurrentTerm()
			continue
		}
		member, ok := s.members.get(p.ID)
		if !ok || member.Meta.GRPCAddr == "" {
			out[i].State = "unreachable"
			continue
		}
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		state, err := s.config.Peers.RaftState(callCtx, member.Meta.GRPCAddr)
		cancel()
		if err != nil {
			out[i].State = "unreachable"
			continue
		}
		out[i].LastIndex, out[i].Term = state.GetLastIndex(), state.GetTerm()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// MaxArchiveBytes bounds an archive sent for restore, to any server and
// from server to server.
const MaxArchiveBytes = 256 << 20

// ArchiveChunkBytes is how much of an archive one message of a forwarded
// restore carries, well under the gRPC message limit.
const ArchiveChunkBytes = 1 << 20

// ArchiveClient forwards a restore to the leader, streaming the archive
// read from archive in chunks.
type ArchiveClient interface {
	RestoreSnapshot(ctx context.Context, grpcAddr string, archive io.Reader) error
}

// WriteArchive streams a snapshot of this server's state to w, for an
// operator: it carries no signing key. Call ConsistentRead first for a
// linearizable point: then any server can serve it.
func (s *Server) WriteArchive(w io.Writer) error {
	state, applied := s.fsm.State().Snapshot(), s.fsm.LastApplied()
	secrets := fsm.WithoutSecrets
	if !identity.Enforced {
		secrets = fsm.WithSecrets
	}
	return fsm.WriteArchive(w, fsm.ArchiveHeader{
		Index: applied, Term: s.raft.CurrentTerm(), Node: s.config.NodeName,
		CreatedAt: time.Now().UTC().Format(time.RFC3339),
	}, state, applied, secrets)
}

// returnMemoryAfterRestore hands the memory a restore's reads and copies
// freed back to the operating system once it ends, taken or refused: a
// restore is a rare burst of up to MaxArchiveBytes of garbage, and without
// this the server's resident memory stays as high as that burst until the
// runtime's scavenger gets to it.
func returnMemoryAfterRestore() { debug.FreeOSMemory() }

// SpooledArchive is an archive received for a restore, kept in a
// temporary file in the data directory rather than in memory. Remove
// deletes it; every path that spools one removes it.
type SpooledArchive struct {
	file *os.File
	size int64
}

// Size is the archive's length in bytes.
func (a *SpooledArchive) Size() int64 { return a.size }

// ReadAt reads the archive at off.
func (a *SpooledArchive) ReadAt(p []byte, off int64) (int, error) { return a.file.ReadAt(p, off) }

// Remove closes and deletes the file.
func (a *SpooledArchive) Remove() error {
	return errors.Join(a.file.Close(), os.Remove(a.file.Name()))
}

// ErrArchiveTooLarge is returned for an archive over MaxArchiveBytes.
var ErrArchiveTooLarge = fmt.Errorf("snapshot archive is larger than the %d MiB limit", MaxArchiveBytes>>20)

// SpoolArchive writes the archive read from r to a temporary file in the
// data directory (the system's temporary directory for a server without
// one), refusing one over MaxArchiveBytes. Nothing is checked yet.
func (s *Server) SpoolArchive(r io.Reader) (*SpooledArchive, error) {
	file, err := s.restoreTempFile(restoreFilePatterns[0])
	if err != nil {
		return nil, err
	}
	archive := &SpooledArchive{file: file}
	n, err := io.Copy(file, io.LimitReader(r, MaxArchiveBytes+1))
	switch {
	case err != nil:
		archive.Remove()
		return nil, fmt.Errorf("receive the archive (after %d bytes): %w", n, err)
	case n > MaxArchiveBytes:
		archive.Remove()
		return nil, &CommandError{Err: ErrArchiveTooLarge}
	}
	archive.size = n
	return archive, nil
}

// restoreFilePatterns name the temporary files of restores in the data
// directory.
var restoreFilePatterns = []string{"restore-*.archive", "restore-*.snapshot"}

// removeLeftRestoreFiles deletes the temporary files of restores that a
// crash or a kill interrupted, so they do not fill the disk over time.
func (s *Server) removeLeftRestoreFiles() {
	if s.config.InMemory {
		return
	}
	for _, pattern := range restoreFilePatterns {
		left, _ := filepath.Glob(filepath.Join(s.config.DataDir, pattern))
		for _, path := range left {
			if err := os.Remove(path); err != nil {
				s.logger.Warn("cannot remove an interrupted restore's temporary file", "path", path, "error", err)
				continue
			}
			s.logger.Info("removed an interrupted restore's temporary file", "path", path)
		}
	}
}

func (s *Server) restoreTempFile(pattern string) (*os.File, error) {
	dir := ""
	if !s.config.InMemory {
		dir = s.config.DataDir
	}
	file, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, fmt.Errorf("temporary file for a restore: %w", err)
	}
	return file, nil
}

// RestoreArchive replaces the cluster's state with an archive's, through
// the leader. A truncated or altered archive is refused before it is
// sent on; the leader checks every record before anything changes.
func (s *Server) RestoreArchive(ctx context.Context, archive *SpooledArchive) error {
	defer returnMemoryAfterRestore()
	if _, _, err := fsm.OpenArchive(archive, archive.Size()); err != nil {
		return &CommandError{Err: err}
	}
	return s.OnLeader(ctx, func(ctx context.Context, local bool, grpcAddr string) error {
		if !local {
			client, ok := s.config.Peers.(ArchiveClient)
			if !ok {
				return errors.New("this server cannot forward a restore to the leader")
			}
			return client.RestoreSnapshot(ctx, grpcAddr, io.NewSectionReader(archive, 0, archive.Size()))
		}
		return s.RestoreArchiveLocal(archive)
	})
}

// RestoreArchiveLocal restores on the leader; Raft sends the new state to
// the followers as a snapshot. The state restored keeps this cluster's
// own cluster meta (its signing key): the archive's, if an old archive
// carries one, is dropped, so the leases out in the cluster go on
// verifying and no archive can bring in a key of its maker's choosing.
func (s *Server) RestoreArchiveLocal(archive *SpooledArchive) error {
	defer returnMemoryAfterRestore()
	if !s.IsLeader() {
		return &RetryableError{Err: raft.ErrNotLeader}
	}
	header, snapshot, err := fsm.OpenArchive(archive, archive.Size())
	if err != nil {
		return &CommandError{Err: err}
	}
	file, err := s.restoreTempFile(restoreFilePatterns[1])
	if err != nil {
		return err
	}
	defer func() {
		file.Close()
		os.Remove(file.Name())
	}()
	var size int64
	if identity.Enforced {
		size, err = fsm.ReplaceClusterMeta(file, snapshot, s.fsm.State().ClusterMeta())
	} else {
		// The broken build restores the archive as it is, its key too.
		size, err = io.Copy(file, snapshot)
	}
	if err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			return fmt.Errorf("restore: %w", err)
		}
		return &CommandError{Err: fmt.Errorf("%w: %v", fsm.ErrCorruptArchive, err)}
	}
	counts, err := fsm.CheckSnapshot(io.NewSectionReader(file, 0, size))
	if err != nil {
		return &CommandError{Err: err}
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: header.Index, Term: header.Term, Size: size}
	if err := s.raft.Restore(meta, io.NewSectionReader(file, 0, size), 5*time.Minute); err != nil {
		return retryableRaftError(fmt.Errorf("restore: %w", err))
	}
	s.logger.Warn("cluster state replaced from a snapshot archive", "archive_index", header.Index, "archive_node", header.Node,
		"runs", counts.Runs, "workers", counts.Workers)
	return nil
}
