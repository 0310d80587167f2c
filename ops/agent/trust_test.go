package agent

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/ops/tlsutil"
)

// What a server says and refuses at start about how its peers prove who
// they are.
func TestCheckTrust(t *testing.T) {
	for _, c := range []struct {
		rule    string
		config  Config
		refuses string
		warns   bool
	}{
		{"API tokens with open gRPC and Raft ports refuse to start", Config{APITokens: []string{"t"}, GRPCBind: "127.0.0.1", Cluster: cluster.Config{BindAddr: "127.0.0.1"}},
			"API tokens are set, but without TLS and without a cluster token", false},
		{"read tokens alone too", Config{APIReadTokens: []string{"r"}, GRPCBind: "0.0.0.0", Cluster: cluster.Config{BindAddr: "0.0.0.0"}},
			"-cluster-token", false},
		{"a cluster token guards the ports", Config{APITokens: []string{"t"}, GRPCBind: "0.0.0.0", Cluster: cluster.Config{BindAddr: "0.0.0.0", ClusterTokens: []string{"c"}}},
			"", false},
		{"dev mode asks for nothing", Config{Dev: true, APITokens: []string{"t"}, GRPCBind: "127.0.0.1", Cluster: cluster.Config{BindAddr: "127.0.0.1"}},
			"", false},
		{"open on loopback is quiet", Config{GRPCBind: "127.0.0.1", Cluster: cluster.Config{BindAddr: "::1"}}, "", false},
		{"open on a network address warns", Config{GRPCBind: "0.0.0.0", Cluster: cluster.Config{BindAddr: "10.0.0.5"}}, "", true},
		{"TLS without a CA refuses to start", Config{TLS: tlsutil.Files{CertFile: "c.pem", KeyFile: "k.pem"}}, "set -coordinator.tls-ca", false},
	} {
		var out bytes.Buffer
		c.config.Logger = slog.New(slog.NewTextHandler(&out, nil))
		err := checkTrust(c.config)
		switch {
		case c.refuses == "" && err != nil:
			t.Errorf("%s: refused: %v", c.rule, err)
		case c.refuses != "" && (err == nil || !strings.Contains(err.Error(), c.refuses)):
			t.Errorf("%s: %v, want a refusal saying %q", c.rule, err, c.refuses)
		}
		warned := strings.Contains(out.String(), "INSECURE")
		if warned != c.warns {
			t.Errorf("%s: warned %v, want %v:\n%s", c.rule, warned, c.warns, out.String())
		}
		if c.warns {
			for _, want := range []string{"ClusterService", "Raft port", "worker protocol", "gRPC on 0.0.0.0", "Raft on 10.0.0.5"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("%s: the warning does not say %q:\n%s", c.rule, want, out.String())
				}
			}
		}
	}
}
