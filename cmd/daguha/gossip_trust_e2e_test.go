package main

// Process-level tests of "gossip is a hint, never an authority" (#20):
// the attacker holds the gossip key, as every worker does, and announces
// fake servers. Before, one fake server without a signing key fingerprint
// made every server of a fresh cluster exit, and fakes advertising the
// real servers' addresses became Raft voters (6 voters, no leader).

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// identityCert writes a certificate the CA signs for id, for both ends
// of a link and valid for 127.0.0.1 and localhost, and returns its cert
// and key files. (tlsutil cannot put a role in a certificate here yet.)
func (p *pki) identityCert(file string, id *identity.Identity) (string, string) {
	p.t.Helper()
	caPair, err := tls.X509KeyPair(p.caCert, p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caPair.Certificate[0])
	if err != nil {
		p.t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: file},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	if id != nil {
		template.URIs = append(template.URIs, id.URI())
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caPair.PrivateKey)
	if err != nil {
		p.t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(p.dir, file+".pem"), filepath.Join(p.dir, file+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return certFile, keyFile
}

// impostorAttack is one fake server and the refusal it must meet.
type impostorAttack struct {
	name string
	// meta is what it announces, given the servers' ports.
	meta func(c *clustertest.Cluster) cluster.Meta
	// answer, when set, makes it serve ClusterService itself, over creds
	// (nil: plaintext), and answer RaftState so.
	answer func(c *clustertest.Cluster, req *daguhav1.RaftStateRequest) *daguhav1.RaftStateResponse
	creds  credentials.TransportCredentials
	// refusal is part of the reason a server must log for it.
	refusal string
}

// observedGossipAttacks are the attacks seen on a live cluster: a server
// without signing key fingerprints (here also with a bootstrap-expect of
// its own), and one fake per real server advertising that server's gRPC
// address with a Raft address of its own (nothing listens there: as
// voters they made a quorum of four out of six impossible).
func observedGossipAttacks() []impostorAttack {
	attacks := []impostorAttack{{
		name:    "impostor-without-keys",
		meta:    func(*clustertest.Cluster) cluster.Meta { return cluster.Meta{Expect: 7} },
		refusal: "advertises no gRPC address",
	}}
	for i := range 3 {
		attacks = append(attacks, impostorAttack{
			name: fmt.Sprintf("impostor-of-server%d", i+1),
			meta: func(c *clustertest.Cluster) cluster.Meta {
				return cluster.Meta{GRPCAddr: loopback(c.Agents[i].GRPCPort), RaftAddr: loopback(i + 1)}
			},
			// Asked, the real server answers with its own name.
			refusal: "answers as",
		})
	}
	return attacks
}

// answerAsItself makes an impostor answer RaftState with its own name and
// an unused Raft address, as a server of its own would.
func answerAsItself(name string) func(*clustertest.Cluster, *daguhav1.RaftStateRequest) *daguhav1.RaftStateResponse {
	return func(*clustertest.Cluster, *daguhav1.RaftStateRequest) *daguhav1.RaftStateResponse {
		return &daguhav1.RaftStateResponse{NodeId: name, RaftAddr: unusedRaftAddr}
	}
}

// unusedRaftAddr is where impostors with a ClusterService of their own
// say their Raft port is.
const unusedRaftAddr = "127.0.0.1:1"

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// aliveMembers is the gossip pool's live members as a server sees it.
func aliveMembers(a *clustertest.Agent) ([]string, error) {
	var body wire.Members
	if _, err := a.GetJSON("/api/v2/cluster/members", &body); err != nil {
		return nil, err
	}
	var alive []string
	for _, m := range body.Members {
		if m.Status == "alive" {
			alive = append(alive, m.Name)
		}
	}
	return alive, nil
}

// refusalLogged returns the first log line of a server that refuses the
// impostor named name for one of the reasons ("a|b"), or "".
func refusalLogged(c *clustertest.Cluster, name, reasons string) string {
	for _, a := range c.Agents {
		for _, line := range strings.Split(a.Tail(5000), "\n") {
			if !strings.Contains(line, "server="+name) || !(strings.Contains(line, "refusing a gossip member as a server") || strings.Contains(line, "not adding a server")) {
				continue
			}
			for _, reason := range strings.Split(reasons, "|") {
				if strings.Contains(line, reason) {
					return line
				}
			}
		}
	}
	return ""
}

// holdsTheCluster checks once that every server runs and that the
// voters are exactly the servers.
func holdsTheCluster(c *clustertest.Cluster) error {
	want := strings.Join(names(c.Agents), ",")
	for _, a := range c.Agents {
		if !a.Running() {
			return fmt.Errorf("%s exited (code %d); log:\n%s", a.Name, a.ExitCode(), a.Tail(20))
		}
		voters, err := votersOf(a)
		if err != nil {
			return fmt.Errorf("%s: %v", a.Name, err)
		}
		if got := strings.Join(voters, ","); got != want {
			return fmt.Errorf("%s reports voters %s, want %s", a.Name, got, want)
		}
	}
	return nil
}

// observe checks holdsTheCluster for a while, then that the servers
// have a leader. (The leader itself may change meanwhile on a loaded
// machine; what the impostors broke was the voters, and with them any
// chance of a leader.)
func observe(t *testing.T, c *clustertest.Cluster, d time.Duration, when string) {
	t.Helper()
	until := time.Now().Add(d)
	for time.Now().Before(until) {
		if err := holdsTheCluster(c); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		time.Sleep(250 * time.Millisecond) // sampling interval of the observation
	}
	c.WaitLeader(t, 30*time.Second)
}

// attackFreshCluster starts the impostors, then a fresh cluster of three
// whose servers join the impostors along with each other, so the
// impostors are in the gossip pool from its first moment. No gossip
// member may make a server exit or become a voter: the three must form a
// cluster with one leader and three voters, keep it while the impostors
// stay, log why each impostor was refused, and keep it after they leave.
// (Before, one impostor made every server exit; with the checks taken
// out, build tag daguha_trust_off, the servers exit, or without a signing
// key the impostors become voters and no leader can be elected.)
func attackFreshCluster(t *testing.T, gossipKey []byte, attacks []impostorAttack, options clustertest.ClusterOptions) {
	t.Helper()
	ports := clustertest.FreePorts(t, len(attacks))
	options.Servers = 3
	options.JoinOrder = func(self int, others []string) []string {
		for _, port := range ports {
			others = append(others, loopback(port))
		}
		return others
	}
	c := clustertest.NewCluster(t, options)
	var impostors []*clustertest.Impostor
	for i, attack := range attacks {
		opts := clustertest.ImpostorOptions{Name: attack.name, GossipKey: gossipKey, GossipPort: ports[i], Meta: attack.meta(c), Creds: attack.creds}
		if attack.answer != nil {
			opts.Answer = func(req *daguhav1.RaftStateRequest) *daguhav1.RaftStateResponse { return attack.answer(c, req) }
		}
		impostors = append(impostors, clustertest.StartImpostor(t, opts))
	}
	for _, a := range c.Agents {
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
	}
	// The attack is mounted: every server hears of every impostor.
	clustertest.WaitFor(t, 30*time.Second, "every server to see every impostor alive in gossip", func() (bool, string) {
		for _, a := range c.Agents {
			alive, err := aliveMembers(a)
			if err != nil {
				return false, a.Name + ": " + err.Error()
			}
			for _, attack := range attacks {
				if !strings.Contains(","+strings.Join(alive, ",")+",", ","+attack.name+",") {
					return false, fmt.Sprintf("%s sees %v", a.Name, alive)
				}
			}
		}
		return true, ""
	})
	clustertest.WaitFor(t, 60*time.Second, "exactly the three servers as voters", func() (bool, string) {
		err := holdsTheCluster(c)
		if err != nil && strings.Contains(err.Error(), "exited") {
			t.Fatal(err)
		}
		return err == nil, fmt.Sprint(err)
	})
	c.WaitLeader(t, 30*time.Second)
	// Longer than several reconcile rounds and key checks.
	observe(t, c, 8*time.Second, "with the impostors in the pool")
	for _, attack := range attacks {
		clustertest.WaitFor(t, 10*time.Second, "a server to log why it refused "+attack.name, func() (bool, string) {
			line := refusalLogged(c, attack.name, attack.refusal)
			return line != "", "no line names it with " + attack.refusal
		})
		t.Logf("%s: %s", attack.name, refusalLogged(c, attack.name, attack.refusal))
	}
	for _, impostor := range impostors {
		impostor.Leave()
	}
	observe(t, c, 3*time.Second, "after the impostors left")
}

// A fresh cluster with a gossip key and a signing key: impostors with the
// key neither stop a server nor become voters. (No TLS and no cluster
// token: only the node name and Raft address an answer gives are checked,
// which is what stops these attacks.)
func TestGossipImpostorsNeitherStopNorJoinAFreshCluster(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	attackFreshCluster(t, key, observedGossipAttacks(), clustertest.ClusterOptions{
		ExtraArgs: []string{"-encrypt=" + base64.StdEncoding.EncodeToString(key), "--coordinator.signing-key=cluster-signing-key-0001"},
	})
}

// The same under mutual TLS, with two more impostors that serve
// ClusterService themselves with a certificate the cluster's CA signed
// and answer as servers of their own: one made before roles existed, one
// a worker's. Neither certificate names a server, so neither is a voter.
func TestGossipImpostorsUnderTLS(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	p := newPKI(t, "cluster CA")
	creds := func(cert, key string) credentials.TransportCredentials {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	}
	attacks := append(observedGossipAttacks(),
		impostorAttack{
			name:    "impostor-with-a-cert-without-role",
			meta:    func(*clustertest.Cluster) cluster.Meta { return cluster.Meta{RaftAddr: unusedRaftAddr} },
			answer:  answerAsItself("impostor-with-a-cert-without-role"),
			creds:   creds(p.identityCert("impostor-without-role", nil)),
			refusal: "carries no daguha role",
		},
		impostorAttack{
			name:   "impostor-with-a-worker-cert",
			meta:   func(*clustertest.Cluster) cluster.Meta { return cluster.Meta{RaftAddr: unusedRaftAddr} },
			answer: answerAsItself("impostor-with-a-worker-cert"),
			creds: creds(p.identityCert("impostor-worker",
				&identity.Identity{Role: identity.RoleWorker, Name: "impostor-with-a-worker-cert"})),
			refusal: "not a server's",
		})
	attackFreshCluster(t, key, attacks, clustertest.ClusterOptions{
		ExtraArgs: []string{"-encrypt=" + base64.StdEncoding.EncodeToString(key), "--coordinator.signing-key=cluster-signing-key-0001"},
		ArgsFor: func(i int) []string {
			cert, certKey := p.serverCert(fmt.Sprintf("server%d", i+1))
			return []string{"--coordinator.tls-cert=" + cert, "--coordinator.tls-key=" + certKey, "--coordinator.tls-ca=" + p.caFile}
		},
	})
}

// A server that is part of a cluster never stops over another server's
// signing keys, even in its first run: only the newcomer that has never
// been in a cluster refuses to start, and the leader does not make it a
// voter. (Before, "never been in a cluster" was judged once at start, so
// a whole freshly made cluster stopped when one wrong server joined.)
func TestOnlyTheNewcomerStopsOverMismatchedSigningKeys(t *testing.T) {
	c := clustertest.NewCluster(t, clustertest.ClusterOptions{Servers: 4, BootstrapExpect: 3, ArgsFor: func(i int) []string {
		if i == 3 {
			return []string{"--coordinator.signing-key=other-signing-key-0002"}
		}
		return []string{"--coordinator.signing-key=cluster-signing-key-0001"}
	}})
	members := c.Agents[:3]
	for _, a := range members {
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitLeader(t, 30*time.Second)
	waitVoters(t, c, names(members))
	newcomer := c.Agents[3]
	if err := newcomer.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-newcomer.Exited():
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not refuse to start; log:\n%s", newcomer.Name, newcomer.Tail(20))
	}
	if newcomer.ExitCode() == 0 || !strings.Contains(newcomer.Tail(50), "signing key mismatch with server") {
		t.Fatalf("%s exited %d without naming the mismatch; log:\n%s", newcomer.Name, newcomer.ExitCode(), newcomer.Tail(20))
	}
	c.Agents = members
	observe(t, c, 3*time.Second, "after the newcomer with another key came and went")
}
