package worker

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/daguha/daguha/dispatch/logticket"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// The worker's side of log tickets (package logticket says what one is):
// it keeps the ticket a task came with beside the attempt's logs and
// serves those logs only to a request that offers it.

// logTicketFile is the name of the file in an attempt's log directory
// that holds its ticket. It starts with a dot, which no step's log file
// does (see safeName), so no step name can make it a log.
const logTicketFile = ".log-ticket"

// logTicketPath is the file holding the ticket of one attempt of a run.
func (e *Engine) logTicketPath(runID string, attempt uint32) string {
	return filepath.Join(e.LogDir, safeName(runID), strconv.FormatUint(uint64(attempt), 10), logTicketFile)
}

// keepLogTicket writes an attempt's ticket beside its logs, readable by
// this worker's user only.
func (e *Engine) keepLogTicket(runID string, attempt uint32, ticket string) error {
	if e.LogDir == "" {
		return nil
	}
	path := e.logTicketPath(runID, attempt)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), logTicketFile+".*")
	if err != nil {
		return err
	}
	// CreateTemp makes the file 0600; the rename makes the ticket appear
	// whole or not at all.
	_, err = f.WriteString(ticket)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// errNoLogTicket is returned by checkLogTicket when the attempt has logs
// but no ticket: it was granted by a server that gave none (before log
// tickets existed).
var errNoLogTicket = errors.New("no log ticket")

// checkLogTicket reports whether one of the offered tickets is the one
// kept for the attempt. fs.ErrNotExist: this worker has nothing of the
// attempt; errNoLogTicket: it has logs but no ticket.
func (e *Engine) checkLogTicket(runID string, attempt uint32, offered []string) (bool, error) {
	path := e.logTicketPath(runID, attempt)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(filepath.Dir(path)); serr == nil {
			return false, errNoLogTicket
		}
		return false, fs.ErrNotExist
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	kept, err := io.ReadAll(io.LimitReader(f, logticket.MaxBytes+1))
	if err != nil || len(kept) == 0 || len(kept) > logticket.MaxBytes {
		return false, fmt.Errorf("the log ticket file of run %s attempt %d is unreadable or malformed", runID, attempt)
	}
	match := false
	for _, ticket := range offered {
		// Every offered ticket is compared, in constant time.
		if hmac.Equal([]byte(ticket), kept) {
			match = true
		}
	}
	return match, nil
}

// keepLogTicket keeps the ticket a task came with beside its attempt's
// logs; without one (a server older than log tickets granted the run) or
// when it cannot be written, the attempt's logs will not be served, and
// the worker says so.
func (w *Worker) keepLogTicket(logger *slog.Logger, run *daguhav1.Run, ticket string) {
	if ticket == "" || len(ticket) > logticket.MaxBytes {
		logger.Warn("the run came without a log ticket: its step logs will not be served (the server granting it predates log tickets)")
		return
	}
	if err := w.engine.keepLogTicket(run.GetId(), run.GetAttempt(), ticket); err != nil {
		logger.Warn("the run's log ticket could not be kept: its step logs will not be served", "dir", w.engine.LogDir, "error", err)
	}
}
