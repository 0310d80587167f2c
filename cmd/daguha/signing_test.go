package main

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
)

func TestSigningKeysRefuseShortOnesWithoutSayingThem(t *testing.T) {
	cases := []struct {
		name    string
		values  []string
		want    []string // keys read, in order
		wantErr string
	}{
		{"none", nil, nil, ""},
		{"sixteen bytes", []string{"0123456789abcdef"}, []string{"0123456789abcdef"}, ""},
		{"taken as given, not decoded", []string{"compose-example-signing-key-change-me"}, []string{"compose-example-signing-key-change-me"}, ""},
		{"a rotation list", []string{"new-signing-key-0001, old-signing-key-0002"}, []string{"new-signing-key-0001", "old-signing-key-0002"}, ""},
		{"fifteen bytes", []string{"your-secret-key"}, nil, "key 1 of 1 is 15 bytes; want at least 16"},
		{"a short old key in a rotation", []string{"new-signing-key-0001,tiny"}, nil, "key 2 of 2 is 4 bytes; want at least 16"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := signingKeys(tc.values)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "-coordinator.signing-key") {
					t.Fatalf("error %v, want one naming -coordinator.signing-key and %q", err, tc.wantErr)
				}
				for _, value := range tc.values {
					for _, key := range splitList([]string{value}) {
						if strings.Contains(err.Error(), key) {
							t.Fatalf("the error %q shows a key", err)
						}
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != len(tc.want) {
				t.Fatalf("read %d keys, want %d", len(keys), len(tc.want))
			}
			for i := range keys {
				if string(keys[i]) != tc.want[i] {
					t.Fatalf("key %d is %q, want %q", i+1, keys[i], tc.want[i])
				}
			}
		})
	}
}

func TestKeygenSigningKeysAreLongAndPlain(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		key, err := newSigningKey()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(key)
		if err != nil || len(raw) != 32 {
			t.Fatalf("key %q is not 32 bytes in URL-safe base64: %v", key, err)
		}
		if strings.ContainsAny(key, ",=+/ ") {
			t.Fatalf("key %q holds a character that needs quoting or splits a list", key)
		}
		if _, err := signingKeys([]string{key}); err != nil {
			t.Fatalf("a server refuses keygen's key: %v", err)
		}
		if seen[key] {
			t.Fatal("keygen made the same key twice")
		}
		seen[key] = true
	}
}

// A server given a short signing key, by flag, environment or config
// file, refuses to start, naming the setting and not the key; one given
// `daguha keygen -signing`'s key starts.
func TestServerRefusesAShortSigningKey(t *testing.T) {
	bin := clustertest.BuildBinary(t)
	const short = "short-key-12345" // 15 bytes
	cases := []struct {
		name string
		args []string
		env  []string
	}{
		{"flag", []string{"-coordinator.signing-key=" + short}, nil},
		{"environment", nil, []string{"DAGU_COORDINATOR_SIGNING_KEY=" + short}},
		{"config file", []string{"--config=" + writeConfig(t, "coordinator:\n  signingKey: "+short+"\n")}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append([]string{"agent", "-dev", "-http-port=0", "-grpc-port=0", "-raft-port=0", "-gossip-port=0"}, tc.args...)...)
			cmd.Env = append(append(os.Environ(), "DAGU_HOME="+t.TempDir()), tc.env...)
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("the server started with a 15-byte signing key:\n%s", out)
			}
			if err == nil || !strings.Contains(string(out), "-coordinator.signing-key") || !strings.Contains(string(out), "15 bytes; want at least 16") {
				t.Fatalf("want a refusal naming -coordinator.signing-key; got %v:\n%s", err, out)
			}
			if strings.Contains(string(out), short) {
				t.Fatalf("the refusal shows the key:\n%s", out)
			}
		})
	}
	key, err := exec.Command(bin, "keygen", "-signing").Output()
	if err != nil {
		t.Fatal(err)
	}
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 1, ExtraArgs: []string{"-coordinator.signing-key=" + strings.TrimSpace(string(key))}})
	c.WaitLeader(t, 30*time.Second)
}
