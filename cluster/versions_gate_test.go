package cluster

import (
	"errors"
	"testing"
)

func TestSchemaGate(t *testing.T) {
	table := map[string]Member{
		"new1":    {Name: "new1", Status: MemberAlive, Meta: Meta{BuildVersion: "0.1.0", StateSchema: 1, WireProtocol: 1}},
		"new2":    {Name: "new2", Status: MemberAlive, Meta: Meta{BuildVersion: "0.2.0", StateSchema: 2, WireProtocol: 1}},
		"old":     {Name: "old", Status: MemberAlive, Meta: Meta{}},
		"failed":  {Name: "failed", Status: MemberFailed, Meta: Meta{BuildVersion: "0.1.0", StateSchema: 1, WireProtocol: 1}},
		"stopped": {Name: "stopped", Status: MemberLeft, Meta: Meta{}},
	}
	lookup := func(name string) (Member, bool) { m, ok := table[name]; return m, ok }
	for _, c := range []struct {
		name    string
		servers []string
		want    string
	}{
		{"every server reads the schema", []string{"new1", "new2"}, ""},
		{"one server from before 0.1.0", []string{"new1", "old", "new2"},
			"retry needs every server at state schema 1 or later (daguha 0.1.0); old runs daguha before 0.1.0 (state schema 0): finish upgrading the servers first"},
		// A server down counts by what it last ran: one that read the
		// schema comes back on a build that does.
		{"a failed server that last ran a release reading the schema", []string{"new1", "failed"}, ""},
		{"a server gossip does not know, and one stopped that last ran an old release", []string{"new1", "gone", "stopped", "failed"},
			"retry needs every server at state schema 1 or later (daguha 0.1.0); gone is not known in gossip, so what it runs is unknown; " +
				"stopped is left in gossip and last ran daguha before 0.1.0 (state schema 0): finish upgrading the servers first"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := schemaGate("retry", 1, c.servers, lookup)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var upgrade *UpgradeError
			if !errors.As(err, &upgrade) || err.Error() != c.want {
				t.Fatalf("got %T %v\nwant UpgradeError %s", err, err, c.want)
			}
		})
	}
	// A schema newer than any release names none.
	if err := schemaGate("future", 9, []string{"new1"}, lookup); err == nil ||
		err.Error() != "future needs every server at state schema 9 or later (a later release); new1 runs daguha 0.1.0 (state schema 1): finish upgrading the servers first" {
		t.Fatalf("future schema: %v", err)
	}
}
