// Package identity says who a peer is: a server or a worker of the
// cluster, and its name. Under TLS the role and the name are carried by
// the peer's certificate as a URI SAN, daguha://<cluster>/<role>/<name>
// (made by `daguha tls cert create -server|-client`); a certificate the CA
// signed without one (made before roles existed) proves nothing but
// membership of the CA, and is refused with a message saying how to
// reissue it.
//
// Roles decide what a caller may do (docs/security.md): only a server may
// call ClusterService or connect to the Raft port, and a worker acts as
// itself only, on the runs it holds.
//
// This package is a leaf: it decides what a certificate says, never what
// a role may do.
package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Role is what a peer is to the cluster.
type Role string

const (
	// RoleServer is a Raft voter: it may call every server-to-server RPC
	// and connect to the Raft port.
	RoleServer Role = "server"
	// RoleWorker runs DAG runs: it may call the worker protocol as itself.
	RoleWorker Role = "worker"
)

// Scheme is the URI scheme of an identity.
const Scheme = "daguha"

// DefaultCluster is the cluster part of identities made without one.
const DefaultCluster = "daguha"

// Identity is who a peer proved to be.
type Identity struct {
	// Cluster is the first part of the URI; informational (one CA per
	// cluster is the rule), not checked.
	Cluster string
	Role    Role
	// Name is a server's node name or a worker's id.
	Name string
	// Labels are worker labels the certificate vouches for (its URI's
	// query, for example ?tier=secure): the values of the keys a server
	// treats as certified come from here only.
	Labels map[string]string
}

// String is the identity's URI.
func (i Identity) String() string { return i.URI().String() }

// URI is the identity written as a certificate's URI SAN.
func (i Identity) URI() *url.URL {
	cluster := i.Cluster
	if cluster == "" {
		cluster = DefaultCluster
	}
	u := &url.URL{Scheme: Scheme, Host: cluster, Path: "/" + string(i.Role) + "/" + i.Name}
	if len(i.Labels) > 0 {
		keys := make([]string, 0, len(i.Labels))
		for k := range i.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		values := url.Values{}
		for _, k := range keys {
			values.Set(k, i.Labels[k])
		}
		u.RawQuery = values.Encode()
	}
	return u
}

// ErrNoRole is wrapped by FromCertificate's error for a certificate that
// carries no daguha identity: made before roles, or for another purpose.
var ErrNoRole = errors.New("the certificate carries no daguha role")

// Reissue says how to make certificates with roles.
const Reissue = "reissue it with `daguha tls cert create -server -node NAME` (servers) or `daguha tls cert create -client -worker-id ID` (workers)"

// Parse reads an identity URI.
func Parse(text string) (Identity, error) {
	u, err := url.Parse(text)
	if err != nil {
		return Identity{}, fmt.Errorf("identity %q: %w", text, err)
	}
	if u.Scheme != Scheme {
		return Identity{}, fmt.Errorf("identity %q: scheme is not %s", text, Scheme)
	}
	rolePart, name, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return Identity{}, fmt.Errorf("identity %q: want %s://CLUSTER/ROLE/NAME", text, Scheme)
	}
	role := Role(rolePart)
	if role != RoleServer && role != RoleWorker {
		return Identity{}, fmt.Errorf("identity %q: role %q is neither %q nor %q", text, rolePart, RoleServer, RoleWorker)
	}
	id := Identity{Cluster: u.Host, Role: role, Name: name}
	if u.RawQuery != "" {
		values, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return Identity{}, fmt.Errorf("identity %q: labels: %w", text, err)
		}
		id.Labels = map[string]string{}
		for k, v := range values {
			if len(v) != 1 {
				return Identity{}, fmt.Errorf("identity %q: label %q is given %d times", text, k, len(v))
			}
			id.Labels[k] = v[0]
		}
	}
	return id, nil
}

// FromCertificate reads the identity a certificate carries: exactly one
// daguha URI SAN. A certificate with none wraps ErrNoRole.
func FromCertificate(cert *x509.Certificate) (Identity, error) {
	var found []*url.URL
	for _, u := range cert.URIs {
		if u.Scheme == Scheme {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("certificate %q: %w; %s", cert.Subject.CommonName, ErrNoRole, Reissue)
	case 1:
		id, err := Parse(found[0].String())
		if err != nil {
			return Identity{}, fmt.Errorf("certificate %q: %w", cert.Subject.CommonName, err)
		}
		return id, nil
	}
	return Identity{}, fmt.Errorf("certificate %q carries %d daguha identities; want one", cert.Subject.CommonName, len(found))
}
