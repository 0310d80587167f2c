package cluster

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"

	"github.com/daguha/daguha/cluster/buildinfo"
	"github.com/daguha/daguha/fsm"
)

// The versions a server adds to its gossip meta keep it under memberlist's
// 512 bytes with the longest addresses and zone a server can have, and a
// stamped version string far too long is cut, not allowed to push the
// meta over (which would make startGossip refuse to start).
func TestServerMetaWithVersionsFitsMemberlistLimit(t *testing.T) {
	config := Config{
		NodeName:        strings.Repeat("n", 200), // not in the meta: memberlist carries it
		AdvertiseAddr:   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		GRPCPort:        65535,
		HTTPPort:        65534,
		BootstrapExpect: 99,
		ScheduleZone:    "America/Argentina/ComodRivadavia",
		SigningKeyIDs:   []string{strings.Repeat("a", 16), strings.Repeat("b", 16)},
	}
	meta := serverMeta(config, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65533")
	meta.SigningKeys = config.SigningKeyIDs // as the daguha_trust_off build sends them
	meta.BuildVersion = advertisedVersion(strings.Repeat("9", 300))
	meta.Leaving = true
	delegate := &metaDelegate{meta: meta}
	encoded := delegate.NodeMeta(memberlist.MetaMaxSize)
	if encoded == nil {
		full, _ := json.Marshal(meta)
		t.Fatalf("the server meta does not fit in %d bytes: %d bytes: %s", memberlist.MetaMaxSize, len(full), full)
	}
	t.Logf("longest server meta: %d of %d bytes", len(encoded), memberlist.MetaMaxSize)
	var decoded Meta
	if err := json.Unmarshal(encoded, &decoded); err != nil {
		t.Fatal(err)
	}
	got := decoded.Versions()
	if got.Version != strings.Repeat("9", MaxVersionLen) || got.StateSchema != fsm.SchemaVersion || got.WireProtocol != buildinfo.ProtocolVersion {
		t.Fatalf("decoded versions %+v", got)
	}
}

// A worker whose labels do not fit drops the labels, never its versions.
func TestWorkerMetaKeepsVersionsWhenLabelsDoNotFit(t *testing.T) {
	labels := map[string]string{}
	for i := range 40 {
		labels[strings.Repeat(string(rune('a'+i%26)), 10)+string(rune('A'+i))] = strings.Repeat("v", 20)
	}
	worker, err := JoinAsWorker(WorkerMemberConfig{
		NodeName: "worker1", BindAddr: "127.0.0.1", AdvertiseAddr: "127.0.0.1", GossipPort: freeGossipPort(t),
		Join: []string{"127.0.0.1:1"}, GossipTimings: GossipLocal, Logger: slog.New(slog.DiscardHandler), Labels: labels,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Shutdown(0)
	var decoded Meta
	if err := json.Unmarshal(worker.meta.NodeMeta(memberlist.MetaMaxSize), &decoded); err != nil {
		t.Fatal(err)
	}
	if decoded.Labels != nil || decoded.Versions() != LocalVersions() {
		t.Fatalf("worker meta %+v: want no labels and this binary's versions %+v", decoded, LocalVersions())
	}
}

// A member built before versions were gossiped (no bv, ss, wp) reads as
// "before 0.1.0", state schema 0, wire protocol 0; and a meta of this
// build is read by such a member's decoder (it ignores unknown keys).
func TestMetaWithoutVersionsIsBeforeFirstRelease(t *testing.T) {
	old := []byte(`{"v":1,"r":"server","ra":"127.0.0.1:1","ga":"127.0.0.1:2","ha":"127.0.0.1:3"}`)
	var meta Meta
	if err := json.Unmarshal(old, &meta); err != nil {
		t.Fatal(err)
	}
	if got, want := meta.Versions(), (Versions{Version: BeforeFirstRelease}); got != want {
		t.Fatalf("versions of an old meta: %+v, want %+v", got, want)
	}
	type oldMeta struct {
		Version int    `json:"v"`
		Role    string `json:"r"`
	}
	encoded, _ := json.Marshal(ownVersions(Meta{Version: metaVersion, Role: RoleServer}))
	var decoded oldMeta
	if err := json.Unmarshal(encoded, &decoded); err != nil || decoded.Role != RoleServer {
		t.Fatalf("an old decoder reads %s as %+v, %v", encoded, decoded, err)
	}
}
