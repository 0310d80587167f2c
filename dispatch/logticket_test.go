package dispatch

import (
	"strings"
	"testing"

	"github.com/daguha/daguha/dispatch/logticket"
)

// The signer grants the ticket under its first key, the one it signs
// lease tokens with, and a ticket is never a lease token's MAC.
func TestSignerGrantsTheTicketUnderItsFirstKey(t *testing.T) {
	key := []byte("a signing key of sixteen bytes or more")
	base := logticket.Sign(key, "run-1", 1, "w1")
	signer, err := NewSigner(key, []byte("an older key still verifying"))
	if err != nil {
		t.Fatal(err)
	}
	if got := signer.LogTicket("run-1", 1, "w1"); got != base {
		t.Errorf("the signer grants %q, want the ticket under its first key %q", got, base)
	}
	// A lease token's MAC is over its JSON claims, never the same bytes.
	token, err := signer.Sign(LeaseClaims{RunID: "run-1", Attempt: 1, WorkerID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, sum, _ := strings.Cut(token, "."); sum == base {
		t.Error("a log ticket equals the MAC of a lease token")
	}
}
