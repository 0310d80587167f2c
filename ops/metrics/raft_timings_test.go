package metrics

import (
	"strings"
	"testing"

	gometrics "github.com/hashicorp/go-metrics/compat"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The sink takes the keys it names (go-metrics' milliseconds become
// seconds), times replication by peer from the labelled keys only, and
// drops every other key: what raft emits cannot add series.
func TestRaftTimingsSinkTakesItsKeysOnly(t *testing.T) {
	s := newRaftTimings()
	peer := []gometrics.Label{{Name: "peer_id", Value: "server2"}}
	s.AddSample([]string{"raft", "commitTime"}, 250) // 250 ms
	s.AddSample([]string{"raft", "boltdb", "storeLogs"}, 2)
	s.AddSampleWithLabels([]string{"raft", "replication", "appendEntries", "rpc"}, 3, peer)
	s.AddSampleWithLabels([]string{"raft", "replication", "heartbeat"}, 1, peer)
	s.IncrCounterWithLabels([]string{"raft", "replication", "appendEntries", "logs"}, 5, peer)
	// Dropped: unknown keys, the legacy per-peer key (peer in the key),
	// gauges, and replication without a peer label.
	s.AddSample([]string{"raft", "replication", "appendEntries", "rpc", "server2"}, 3)
	s.AddSample([]string{"raft", "snapshot", "create"}, 9)
	s.AddSample([]string{"raft", "replication", "heartbeat"}, 1)
	s.SetGauge([]string{"raft", "peers"}, 3)
	s.IncrCounter([]string{"raft", "apply"}, 1)

	if n := testutil.CollectAndCount(s.timing); n != len(raftTimingOps)-2 {
		t.Fatalf("%d timing series; want one per op (%d)", n, len(raftTimingOps)-2)
	}
	if got := testutil.ToFloat64(s.entries.WithLabelValues("server2")); got != 5 {
		t.Fatalf("entries replicated to server2: %v; want 5", got)
	}
	if n := testutil.CollectAndCount(s.replication); n != 2 {
		t.Fatalf("%d replication series; want 2 (server2's append_entries and heartbeat)", n)
	}
	if n := testutil.CollectAndCount(s.entries); n != 1 {
		t.Fatalf("%d entries series; want 1", n)
	}
	m := New()
	m.registry.MustRegister(s)
	text := gather(t, m)
	for _, want := range []string{
		`daguha_raft_timing_seconds_sum{op="commit"} 0.25`,
		`daguha_raft_timing_seconds_count{op="log_store"} 1`,
		`daguha_raft_timing_seconds_count{op="fsm_apply"} 0`,
		`daguha_raft_replication_seconds_count{kind="append_entries",peer="server2"} 1`,
		`daguha_raft_replication_seconds_count{kind="heartbeat",peer="server2"} 1`,
	} {
		if !strings.Contains(text, "\n"+want+"\n") {
			t.Errorf("no %s in the exposition", want)
		}
	}
	if _, ok := s.lastContact("server2"); !ok {
		t.Fatal("no last contact of server2, which answered")
	}
	if _, ok := s.lastContact("server3"); ok {
		t.Fatal("a contact of server3, which never answered")
	}
}
