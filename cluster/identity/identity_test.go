package identity

import (
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestIdentityRoundTripsThroughItsURI(t *testing.T) {
	for _, id := range []Identity{
		{Cluster: "prod", Role: RoleServer, Name: "server1"},
		{Cluster: "prod", Role: RoleWorker, Name: "gpu-7", Labels: map[string]string{"tier": "secure", "gpu": "true"}},
	} {
		got, err := Parse(id.String())
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if got.String() != id.String() || got.Role != id.Role || got.Name != id.Name || len(got.Labels) != len(id.Labels) {
			t.Errorf("round trip of %s gave %+v", id, got)
		}
	}
}

func TestParseRefusesWhatIsNotAnIdentity(t *testing.T) {
	for _, text := range []string{
		"https://prod/server/a",          // another scheme
		"daguha://prod/admin/a",          // unknown role
		"daguha://prod/server/",          // no name
		"daguha://prod/server",           // no name
		"daguha://prod/worker/a/b",       // a name with a slash
		"daguha://prod/worker/a?x=1&x=2", // a label twice
	} {
		if id, err := Parse(text); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", text, id)
		}
	}
}

func TestACertificateWithoutARoleSaysHowToReissue(t *testing.T) {
	_, err := FromCertificate(&x509.Certificate{})
	if !errors.Is(err, ErrNoRole) || !strings.Contains(err.Error(), "daguha tls cert create") {
		t.Fatalf("got %v", err)
	}
	two := &x509.Certificate{URIs: []*url.URL{
		Identity{Role: RoleServer, Name: "a"}.URI(), Identity{Role: RoleWorker, Name: "a"}.URI(),
	}}
	if _, err := FromCertificate(two); err == nil {
		t.Fatal("a certificate with two identities was accepted")
	}
	one := &x509.Certificate{URIs: []*url.URL{{Scheme: "spiffe", Host: "x", Path: "/y"}, Identity{Role: RoleWorker, Name: "w1"}.URI()}}
	id, err := FromCertificate(one)
	if err != nil || id.Role != RoleWorker || id.Name != "w1" {
		t.Fatalf("got %+v, %v", id, err)
	}
}
