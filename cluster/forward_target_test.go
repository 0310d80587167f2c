package cluster

import (
	"errors"
	"testing"
)

// Requests (and with them the cluster token and a worker's word) are
// forwarded only to where the leader proved itself: gossip, which anyone
// with the gossip key can speak, only says where to ask.
func TestRequestsAreForwardedOnlyWhereTheLeaderProvedItself(t *testing.T) {
	leader := Member{Name: "server1", Meta: Meta{GRPCAddr: "10.0.0.1:50055", HTTPAddr: "10.0.0.1:8080"}}
	var proven provenAddrs
	asked := 0
	prove := func(ok bool) func(Member) error {
		return func(m Member) error {
			asked++
			if !ok {
				return errors.New("it did not prove it is the server gossip names")
			}
			proven.set(m.Name, m.Meta.GRPCAddr, m.Meta.HTTPAddr)
			return nil
		}
	}
	if err := checkForwardTarget(leader, true, "10.0.0.1:50055", proven.is, prove(false)); err == nil || asked != 1 {
		t.Fatalf("an address that fails the proof was taken (err %v, asked %d times)", err, asked)
	}
	if err := checkForwardTarget(leader, true, "10.0.0.1:50055", proven.is, prove(true)); err != nil || asked != 2 {
		t.Fatalf("the leader proving itself was refused: %v (asked %d times)", err, asked)
	}
	if err := checkForwardTarget(leader, true, "10.0.0.1:50055", proven.is, prove(false)); err != nil || asked != 2 {
		t.Fatalf("a proven address was asked again or refused: %v (asked %d times)", err, asked)
	}
	// Gossip now says the leader is elsewhere: that address must prove
	// itself in turn.
	moved := leader
	moved.Meta.GRPCAddr = "10.6.6.6:50055"
	if err := checkForwardTarget(moved, true, "10.6.6.6:50055", proven.is, prove(false)); err == nil || asked != 3 {
		t.Fatalf("a new address for the leader was taken unproven (err %v, asked %d times)", err, asked)
	}
	if err := checkForwardTarget(leader, false, "10.0.0.1:50055", proven.is, prove(true)); err == nil {
		t.Fatal("a leader gossip does not know was taken")
	}
	if err := checkForwardTarget(leader, true, "10.0.0.2:50055", proven.is, prove(true)); err == nil {
		t.Fatal("an address gossip does not give for the leader was taken")
	}
}

// A read relayed to the leader's HTTP API carries the caller's API token:
// it goes to the HTTP address the leader proved, whatever gossip says now.
func TestReadsAreRelayedToTheHTTPAddressTheLeaderProved(t *testing.T) {
	var proven provenAddrs
	if got := proven.httpOf("10.0.0.1:50055"); got != "" {
		t.Fatalf("an unproven server's HTTP address: %q", got)
	}
	proven.set("server1", "10.0.0.1:50055", "10.0.0.1:8080")
	if got := proven.httpOf("10.0.0.1:50055"); got != "10.0.0.1:8080" {
		t.Fatalf("the proven HTTP address: %q", got)
	}
	if got := proven.httpOf("10.6.6.6:50055"); got != "" {
		t.Fatalf("the HTTP address of an unproven gRPC address: %q", got)
	}
	if got := proven.httpOf(""); got != "" {
		t.Fatalf("the HTTP address of no address: %q", got)
	}
}
