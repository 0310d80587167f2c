package api

import (
	"fmt"
	"io"
	"net/http"

	"github.com/daguha/daguha/cluster"
)

// saveSnapshot streams a consistent archive of the cluster's state.
func (s *Server) saveSnapshot(w http.ResponseWriter, r *http.Request) {
	if err := s.cluster.ConsistentRead(r.Context()); err != nil {
		writeClusterError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="daguha.snap"`)
	if err := s.cluster.WriteArchive(w); err != nil {
		s.logger.Warn("snapshot save failed midway", "error", err)
	}
}

// restoreSnapshot replaces the cluster's state with the archive in the body.
func (s *Server) restoreSnapshot(w http.ResponseWriter, r *http.Request) {
	archive, err := io.ReadAll(http.MaxBytesReader(w, r.Body, cluster.MaxArchiveBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("read the archive: %w", err))
		return
	}
	if err := s.cluster.RestoreArchive(r.Context(), archive); err != nil {
		writeClusterError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"restored_bytes": len(archive)})
}
