package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/ops/wire"
)

// list-peers shows each server's version, schema and protocol, and warns
// while they differ; daguha workers shows each worker's version.
func TestPeersAndWorkersTablesShowVersions(t *testing.T) {
	peer := func(id, version string, schema int) wire.PeerState {
		return wire.PeerState{Peer: cluster.Peer{ID: id, Address: id + ":8300", Voter: true,
			Versions: cluster.Versions{Version: version, StateSchema: schema, WireProtocol: schema}}, State: "follower", LastIndex: 7}
	}
	var out bytes.Buffer
	if err := printPeers(&out, []wire.PeerState{peer("s1", "0.1.0", 1), peer("s2", "0.1.0", 1)}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "ID ADDRESS STATE VOTER LAST INDEX VERSION SCHEMA PROTOCOL" ||
		strings.Join(strings.Fields(lines[2]), " ") != "s2 s2:8300 follower true 7 0.1.0 1 1" {
		t.Fatalf("list-peers of one version:\n%s", out.String())
	}
	out.Reset()
	if err := printPeers(&out, []wire.PeerState{peer("s1", "0.1.0", 1), peer("s2", cluster.BeforeFirstRelease, 0)}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(strings.Fields(out.String()), " "), "s2 s2:8300 follower true 7 before 0.1.0 0 0") ||
		!strings.Contains(out.String(), "The servers run different versions") {
		t.Fatalf("list-peers of mixed versions:\n%s", out.String())
	}

	out.Reset()
	answer := wire.Workers{Workers: []wire.Worker{
		{ID: "w1", Version: "0.1.0", HealthStatus: "HEALTHY", Labels: map[string]string{"zone": "eu"}},
		{ID: "w2", Version: cluster.UnknownVersion, HealthStatus: "OFFLINE"},
	}}
	if err := printWorkers(&out, answer, time.Now()); err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || strings.Fields(lines[0])[1] != "VERSION" || strings.Fields(lines[1])[1] != "0.1.0" || strings.Fields(lines[2])[1] != "unknown" {
		t.Fatalf("workers:\n%s", out.String())
	}
}
