package agent

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/ops/tlsutil"
)

// checkTrust checks at start how this server's peers prove who they are
// (docs/security.md), and says loudly what is open when nothing proves
// anything:
//   - with TLS, the CA is required (servers and workers prove their
//     roles with certificates it signed), and this server's own
//     certificate must carry a server identity naming its node;
//   - without TLS and without a cluster token, API tokens would guard
//     the HTTP API while the gRPC and Raft ports let anyone write any
//     command: such a server refuses to start (dev mode excepted);
//   - without either, on a non-loopback address, it warns.
func checkTrust(config Config) error {
	if config.TLS.Enabled() {
		if config.TLS.CAFile == "" {
			return errors.New("coordinator TLS without a CA file: servers and workers prove their roles with certificates the CA signed; set -coordinator.tls-ca")
		}
		if config.TLS.CertFile == "" {
			return errors.New("coordinator TLS without a certificate: set -coordinator.tls-cert and -coordinator.tls-key")
		}
		return checkOwnCertificate(config.TLS.CertFile, config.Cluster.NodeName)
	}
	if len(config.Cluster.ClusterTokens) > 0 {
		return nil
	}
	if !config.Dev && len(config.APITokens)+len(config.APIReadTokens) > 0 {
		return errors.New("API tokens are set, but without TLS and without a cluster token the gRPC and Raft ports prove nothing: " +
			"anyone who reaches them could write any command to the cluster (ClusterService), change its peers and speak Raft, around the tokens. " +
			"Set a cluster token on every server (-cluster-token, DAGUHA_CLUSTER_TOKEN or cluster.tokens; workers never get it), " +
			"or mutual TLS (-coordinator.tls-cert, -coordinator.tls-key, -coordinator.tls-ca)")
	}
	var exposed []string
	for what, host := range map[string]string{"gRPC": config.GRPCBind, "Raft": config.Cluster.BindAddr} {
		if !isLoopback(host) {
			exposed = append(exposed, fmt.Sprintf("%s on %s", what, host))
		}
	}
	sort.Strings(exposed)
	if len(exposed) > 0 {
		config.Logger.Warn("INSECURE: no TLS and no cluster token, on a non-loopback address: anyone who reaches this server can "+
			"write any command to the cluster and change its peers (ClusterService), speak Raft to it (the Raft port), "+
			"and poll, report and watch as any worker (the worker protocol). Set a cluster token (-cluster-token) or mutual TLS",
			"listening", strings.Join(exposed, ", "))
	}
	return nil
}

// checkOwnCertificate refuses to start a server whose certificate would
// not prove it a server to its peers: made before roles, for a worker,
// or for another node.
func checkOwnCertificate(certFile, nodeName string) error {
	if !identity.Enforced {
		return nil
	}
	id, err := tlsutil.Identity(certFile)
	if err != nil {
		return fmt.Errorf("coordinator TLS: %w (this server: -node %s)", err, nodeName)
	}
	if id.Role != identity.RoleServer || id.Name != nodeName {
		return fmt.Errorf("coordinator TLS: certificate %s is for %s, not for server %q (its -node); reissue it with `daguha tls cert create -server -node %s`",
			certFile, id, nodeName, nodeName)
	}
	return nil
}

// isLoopback reports whether a bind host only listens on this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
