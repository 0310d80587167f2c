package api

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/ops/service"
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
func (s *Server) saveSnapshot(w http.ResponseWriter, r *http.Request) error {
	if readOnly(r) && identity.Enforced {
		refuse(s.logger, w, r, http.StatusForbidden, "saving a snapshot is an operator action: it needs a full API token, not a read-only one")
		return nil
	}
	return s.service.SaveSnapshot(r.Context(), func() io.Writer {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(snapshotTransferTime))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="daguha.snap"`)
		return w
	})
}

// restoreSnapshot replaces the cluster's state with the archive in the
// body (see service.RestoreSnapshot), of at most cluster.MaxArchiveBytes.
func (s *Server) restoreSnapshot(w http.ResponseWriter, r *http.Request) error {
	control := http.NewResponseController(w)
	_ = control.SetReadDeadline(time.Now().Add(snapshotTransferTime))
	_ = control.SetWriteDeadline(time.Now().Add(snapshotTransferTime))
	size, err := s.service.RestoreSnapshot(r.Context(), http.MaxBytesReader(w, r.Body, cluster.MaxArchiveBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &service.Error{Kind: service.TooLarge, Err: cluster.ErrArchiveTooLarge}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wire.Restored{RestoredBytes: size})
	return nil
}
