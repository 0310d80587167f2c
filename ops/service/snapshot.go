package service

import (
	"context"
	"errors"
	"io"
)

// SaveSnapshot streams a consistent archive of the cluster's state. The
// archive holds the whole state (DAG specs with their env, run params and
// outputs), never the signing key. Once this server has caught up with
// the leader it writes to the writer open returns; an error before that
// is returned, one midway is logged (the archive is under way by then).
func (s *Service) SaveSnapshot(ctx context.Context, open func() io.Writer) error {
	if err := s.cluster.ConsistentRead(ctx); err != nil {
		return err
	}
	if err := s.cluster.WriteArchive(open()); err != nil {
		s.logger.Warn("snapshot save failed midway", "error", err)
	}
	return nil
}

// RestoreSnapshot replaces the cluster's state with the archive read from
// body and returns its size. The archive goes to a temporary file in the
// data directory, never into memory whole (at most
// cluster.MaxArchiveBytes), and from there to the leader in chunks; the
// file is removed whatever happens. One restore at a time per server: a
// second is a Conflict. A failure to read body is Invalid, and wraps the
// reader's error.
func (s *Service) RestoreSnapshot(ctx context.Context, body io.Reader) (int64, error) {
	if !s.restoring.CompareAndSwap(false, true) {
		return 0, errorOf(Conflict, errors.New("another snapshot restore is under way on this server; try again when it has finished"))
	}
	defer s.restoring.Store(false)
	reader := &bodyReader{r: body}
	archive, err := s.cluster.SpoolArchive(reader)
	if err != nil {
		if reader.err != nil {
			return 0, errorf(Invalid, "read the archive: %w", reader.err)
		}
		return 0, err
	}
	defer archive.Remove()
	if err := s.cluster.RestoreArchive(ctx, archive); err != nil {
		return 0, err
	}
	return archive.Size(), nil
}

// bodyReader remembers the error reading the caller's archive met, to
// tell a client's fault (it hung up, or sent too slowly) from the
// server's.
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
