package worker

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/daguha/daguha/dispatch/logticket"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// The worker keeps a task's ticket beside the attempt's logs, readable
// by its own user only, and no step's log can be the ticket's file.
func TestWorkerKeepsTheTicketPrivately(t *testing.T) {
	e := &Engine{LogDir: t.TempDir()}
	if err := e.keepLogTicket("run/1", 2, "ticket-value"); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(e.logTicketPath("run/1", 2))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("the ticket file has mode %o, want 600", mode)
	}
	if dir := filepath.Dir(e.logTicketPath("run/1", 2)); dir != filepath.Dir(e.LogPath("run/1", 2, "step")) {
		t.Errorf("the ticket is in %s, the attempt's logs in %s", dir, filepath.Dir(e.LogPath("run/1", 2, "step")))
	}
	for _, step := range []string{logTicketFile, ".log-ticket", "../.log-ticket", strings.TrimSuffix(logTicketFile, ".log")} {
		if e.LogPath("run/1", 2, step) == e.logTicketPath("run/1", 2) {
			t.Errorf("the log of step %q is the ticket's file", step)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(e.logTicketPath("run/1", 2)))
	if err != nil || len(entries) != 1 {
		t.Errorf("the attempt's directory holds %v (%v); want the ticket alone, no temporary file left", entries, err)
	}
}

// logClient serves dir's logs with server and returns a client.
func logClient(t *testing.T, server *LogServer) daguhav1.WorkerLogServiceClient {
	t.Helper()
	listener := bufconn.Listen(1 << 20)
	grpcServer := grpc.NewServer()
	daguhav1.RegisterWorkerLogServiceServer(grpcServer, server)
	go func() { _ = grpcServer.Serve(listener) }()
	t.Cleanup(grpcServer.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return listener.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return daguhav1.NewWorkerLogServiceClient(conn)
}

// readLog fetches a whole step log.
func readLog(client daguhav1.WorkerLogServiceClient, req *daguhav1.StepLogRequest) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := client.StepLog(ctx, req)
	if err != nil {
		return "", err
	}
	var data []byte
	for {
		chunk, err := stream.Recv()
		if err == io.EOF {
			return string(data), nil
		}
		if err != nil {
			return "", err
		}
		data = append(data, chunk.GetData()...)
	}
}

// writeStepLog writes a step's log as the engine does.
func writeStepLog(t *testing.T, e *Engine, runID string, attempt uint32, step, text string) {
	t.Helper()
	path := e.LogPath(runID, attempt, step)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The log service serves a step log only to a request carrying its
// attempt's ticket: none, a made-up one, the ticket of another attempt,
// of another worker or under a key the cluster does not have are all
// refused, and the refusal names no ticket. Among several tickets (one
// per key of the calling server) the kept one is found. A run granted
// before log tickets has none: its logs are refused with a message
// saying why.
func TestLogServiceServesOnlyWithTheTicket(t *testing.T) {
	key, oldKey := []byte("the cluster's signing key, new"), []byte("the cluster's signing key, old")
	e := &Engine{LogDir: t.TempDir()}
	writeStepLog(t, e, "run-1", 1, "step", "attempt one\n")
	writeStepLog(t, e, "run-1", 2, "step", "attempt two\n")
	writeStepLog(t, e, "old-run", 1, "step", "granted before the upgrade\n")
	// Attempt 1 was granted under the old key, attempt 2 under the new.
	for attempt, k := range map[uint32][]byte{1: oldKey, 2: key} {
		if err := e.keepLogTicket("run-1", attempt, logticket.Sign(k, "run-1", attempt, "w1")); err != nil {
			t.Fatal(err)
		}
	}
	client := logClient(t, NewLogServer(e.LogDir))
	both := func(attempt uint32) []string {
		return []string{logticket.Sign(key, "run-1", attempt, "w1"), logticket.Sign(oldKey, "run-1", attempt, "w1")}
	}

	for name, c := range map[string]struct {
		req  *daguhav1.StepLogRequest
		want string
	}{
		"latest attempt":                     {&daguhav1.StepLogRequest{RunId: "run-1", StepName: "step", LogTickets: both(2)}, "attempt two\n"},
		"attempt 2":                          {&daguhav1.StepLogRequest{RunId: "run-1", StepName: "step", Attempt: 2, LogTickets: both(2)}, "attempt two\n"},
		"attempt 1, granted under a rotated": {&daguhav1.StepLogRequest{RunId: "run-1", StepName: "step", Attempt: 1, LogTickets: both(1)}, "attempt one\n"},
	} {
		got, err := readLog(client, c.req)
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, c.want)
		}
	}

	manyTickets := make([]string, logticket.MaxPerRequest+1)
	for i := range manyTickets {
		manyTickets[i] = logticket.Sign(key, "run-1", 2, "w1")
	}
	for name, c := range map[string]struct {
		req  *daguhav1.StepLogRequest
		code codes.Code
		says string
	}{
		"no ticket": {&daguhav1.StepLogRequest{RunId: "run-1", StepName: "step", Attempt: 2},
			codes.PermissionDenied, "carries no log ticket"},
		"a made-up ticket": {&daguhav1.StepLogRequest{RunId: "run-1", StepName: "step", Attempt: 2, LogTickets: []string{"x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x0x"}},
			codes.PermissionDenied, "do not match run run-1 (attempt 2)"},
		"the ticket of another attempt": {&daguhav1.StepLogRequest{RunId: "run-1", StepName: "step", Attempt: 2, LogTickets: both(1)},
			codes.PermissionDenied, "do not match"},
		"the ticket of another worker": {&daguhav1.StepLogRequest{RunId: "run-1", StepName: "step", Attempt: 2, LogTickets: []string{logticket.Sign(key, "run-1", 2, "w2")}},
			codes.PermissionDenied, "do not match"},
		"a ticket under another key": {&daguhav1.StepLogRequest{RunId: "run-1", StepName: "step", Attempt: 2, LogTickets: []string{logticket.Sign([]byte("a worker's guess"), "run-1", 2, "w1")}},
			codes.PermissionDenied, "do not match"},
		"latest attempt with the first's ticket": {&daguhav1.StepLogRequest{RunId: "run-1", StepName: "step", LogTickets: both(1)},
			codes.PermissionDenied, "do not match run run-1 (attempt 2)"},
		"a run granted before log tickets": {&daguhav1.StepLogRequest{RunId: "old-run", StepName: "step", Attempt: 1, LogTickets: []string{logticket.Sign(key, "old-run", 1, "w1")}},
			codes.PermissionDenied, "before the upgrade that brought log tickets"},
		"too many tickets": {&daguhav1.StepLogRequest{RunId: "run-1", StepName: "step", Attempt: 2, LogTickets: manyTickets},
			codes.InvalidArgument, "at most 16"},
		"a run id too long": {&daguhav1.StepLogRequest{RunId: strings.Repeat("r", maxLogRequestName+1), StepName: "step", LogTickets: both(2)},
			codes.InvalidArgument, "at most 1024 bytes"},
		"a run this worker has nothing of": {&daguhav1.StepLogRequest{RunId: "run-9", StepName: "step", Attempt: 1, LogTickets: []string{logticket.Sign(key, "run-9", 1, "w1")}},
			codes.NotFound, "no logs of run run-9"},
	} {
		got, err := readLog(client, c.req)
		if status.Code(err) != c.code || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %q, %v; want %s saying %q", name, got, err, c.code, c.says)
			continue
		}
		for _, ticket := range append(both(1), both(2)...) {
			if strings.Contains(err.Error(), ticket) {
				t.Errorf("%s: the refusal shows a ticket: %v", name, err)
			}
		}
	}

	// The deliberately broken build's log service asks for no ticket.
	open := NewLogServer(e.LogDir)
	open.SkipTickets = true
	if got, err := readLog(logClient(t, open), &daguhav1.StepLogRequest{RunId: "run-1", StepName: "step"}); err != nil || got != "attempt two\n" {
		t.Errorf("without the ticket check: %q, %v", got, err)
	}
}
