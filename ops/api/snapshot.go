package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/ops/wire"
)

// snapshotTransferTime is how long saving or restoring an archive may
// take on the wire: a MaxArchiveBytes archive at 1 MB/s, with room to
// spare. It replaces the server's usual read and write timeouts, which
// are sized for small JSON documents.
const snapshotTransferTime = 15 * time.Minute

// saveSnapshot streams a consistent archive of the cluster's state. It
// needs a full API token, not a read-only one: an archive holds the whole
// state (DAG specs with their env, run params and outputs) and is what an
// operator takes to rebuild the cluster. It never holds the signing key.
func (s *Server) saveSnapshot(w http.ResponseWriter, r *http.Request) {
	if readOnly(r) && identity.Enforced {
		refuse(s.logger, w, r, http.StatusForbidden, "saving a snapshot is an operator action: it needs a full API token, not a read-only one")
		return
	}
	if err := s.cluster.ConsistentRead(r.Context()); err != nil {
		writeClusterError(w, err)
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(snapshotTransferTime))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="daguha.snap"`)
	if err := s.cluster.WriteArchive(w); err != nil {
		s.logger.Warn("snapshot save failed midway", "error", err)
	}
}

// restoreSnapshot replaces the cluster's state with the archive in the
// body. The body goes to a temporary file in the data directory, never
// into memory whole (at most cluster.MaxArchiveBytes), and from there to
// the leader in chunks; the file is removed whatever happens. One restore
// at a time per server.
func (s *Server) restoreSnapshot(w http.ResponseWriter, r *http.Request) {
	if !s.restoring.CompareAndSwap(false, true) {
		writeError(w, http.StatusConflict, errors.New("another snapshot restore is under way on this server; try again when it has finished"))
		return
	}
	defer s.restoring.Store(false)
	control := http.NewResponseController(w)
	_ = control.SetReadDeadline(time.Now().Add(snapshotTransferTime))
	_ = control.SetWriteDeadline(time.Now().Add(snapshotTransferTime))
	body := &bodyReader{r: http.MaxBytesReader(w, r.Body, cluster.MaxArchiveBytes)}
	archive, err := s.cluster.SpoolArchive(body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			writeError(w, http.StatusRequestEntityTooLarge, cluster.ErrArchiveTooLarge)
		case body.err != nil:
			writeError(w, http.StatusBadRequest, fmt.Errorf("read the archive: %w", body.err))
		default:
			writeClusterError(w, err)
		}
		return
	}
	defer archive.Remove()
	if err := s.cluster.RestoreArchive(r.Context(), archive); err != nil {
		writeClusterError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Restored{RestoredBytes: archive.Size()})
}

// bodyReader remembers the error reading a request body met, to tell a
// client's fault (it hung up, or sent too slowly) from the server's.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}
