package logticket

import "testing"

// A ticket binds the key, the run, the attempt and the worker: changing
// any one of them gives another ticket, and moving bytes between the
// run id and the worker id does too.
func TestTicketBindsKeyRunAttemptAndWorker(t *testing.T) {
	key := []byte("a signing key of sixteen bytes or more")
	base := Sign(key, "run-1", 1, "w1")
	if again := Sign(key, "run-1", 1, "w1"); again != base {
		t.Fatalf("the same attempt gave two tickets: %q and %q", base, again)
	}
	if len(base) > MaxBytes {
		t.Fatalf("a ticket of %d bytes; the worker keeps at most %d", len(base), MaxBytes)
	}
	others := map[string]string{
		"another key":               Sign([]byte("another signing key, rotated in"), "run-1", 1, "w1"),
		"another run":               Sign(key, "run-2", 1, "w1"),
		"another attempt":           Sign(key, "run-1", 2, "w1"),
		"another worker":            Sign(key, "run-1", 1, "w2"),
		"bytes moved between names": Sign(key, "run-1w", 1, "1"),
	}
	seen := map[string]string{base: "the base"}
	for what, ticket := range others {
		if previous, ok := seen[ticket]; ok {
			t.Errorf("%s gave the ticket of %s", what, previous)
		}
		seen[ticket] = what
	}
}
