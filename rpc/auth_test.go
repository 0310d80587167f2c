package rpc

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/dispatch/valid"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

const (
	apply   = "/daguha.v1.ClusterService/Apply"
	restore = "/daguha.v1.ClusterService/RestoreSnapshot"
	poll    = "/daguha.v1.CoordinatorService/Poll"
	health  = "/grpc.health.v1.Health/Check"
	unknown = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
)

// call is one incoming call as the interceptor sees it.
type call struct {
	cert     *x509.Certificate // verified client certificate, nil for none
	metadata []string          // key, value pairs
}

func (c call) context() context.Context {
	p := &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 40000}}
	if c.cert != nil {
		p.AuthInfo = credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{c.cert}}}}
	}
	ctx := peer.NewContext(context.Background(), p)
	if len(c.metadata) > 0 {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(c.metadata...))
	}
	return ctx
}

func certFor(id *identity.Identity) *x509.Certificate {
	cert := &x509.Certificate{}
	if id != nil {
		cert.URIs = []*url.URL{id.URI()}
	}
	return cert
}

var (
	serverCert   = certFor(&identity.Identity{Role: identity.RoleServer, Name: "server2"})
	workerCert   = certFor(&identity.Identity{Role: identity.RoleWorker, Name: "w1", Labels: map[string]string{"tier": "secure"}})
	rolelessCert = certFor(nil)
	// What a follower adds when it forwards worker w2's call.
	forwardedW2 = []string{forwardedWorkerKey, "daguha://daguha/worker/w2", forwardedHostKey, "10.9.9.9", forwardedProvenKey, "1"}
)

// The table of who may call what, in each of the three ways a server can
// run: mutual TLS, a cluster token without TLS, and open (neither).
func TestAuthorizationTable(t *testing.T) {
	if !identity.Enforced {
		t.Skip("the daguha_trust_off build lets every call through")
	}
	tls := NewAuthorizer(true, nil, nil)
	token := NewAuthorizer(false, []string{"new-token", "old-token"}, nil)
	open := NewAuthorizer(false, nil, nil)
	withToken := func(t string, rest ...string) []string { return append([]string{clusterTokenKey, t}, rest...) }
	for _, c := range []struct {
		rule   string
		auth   *Authorizer
		method string
		call   call
		want   codes.Code
		says   string
	}{
		{"a server certificate may write Raft commands", tls, apply, call{cert: serverCert}, codes.OK, ""},
		{"a worker certificate may not write Raft commands", tls, apply, call{cert: workerCert}, codes.PermissionDenied, "servers only"},
		{"a worker certificate may not restore snapshots", tls, restore, call{cert: workerCert}, codes.PermissionDenied, "servers only"},
		{"a certificate without a role is told to reissue it", tls, apply, call{cert: rolelessCert}, codes.Unauthenticated, "daguha tls cert create"},
		{"a worker without a role is told to reissue it", tls, poll, call{cert: rolelessCert}, codes.Unauthenticated, "daguha tls cert create"},
		{"a worker certificate may poll", tls, poll, call{cert: workerCert}, codes.OK, ""},
		{"a server may call the worker protocol when it forwards a worker's call", tls, poll, call{cert: serverCert, metadata: forwardedW2}, codes.OK, ""},
		{"a server may not call the worker protocol for no worker", tls, poll, call{cert: serverCert}, codes.PermissionDenied, "forward"},
		{"a server from before forwarded calls named their worker may forward", tls, poll, call{cert: serverCert, metadata: []string{forwardedKey, "1"}}, codes.OK, ""},
		{"a worker cannot pass for a forwarding server", tls, apply, call{cert: workerCert, metadata: []string{forwardedKey, "1"}}, codes.PermissionDenied, "servers only"},
		{"under TLS the cluster token does not make a worker a server", NewAuthorizer(true, []string{"t"}, nil), apply, call{cert: workerCert, metadata: withToken("t")}, codes.PermissionDenied, "servers only"},
		{"anyone may ask for health under TLS", tls, health, call{cert: rolelessCert}, codes.OK, ""},
		{"a service the table does not know is refused", tls, unknown, call{cert: serverCert}, codes.PermissionDenied, "not served"},

		{"the cluster token proves a server", token, apply, call{metadata: withToken("new-token")}, codes.OK, ""},
		{"any of the cluster tokens proves a server (rotation)", token, apply, call{metadata: withToken("old-token")}, codes.OK, ""},
		{"without the cluster token no one writes Raft commands", token, apply, call{}, codes.Unauthenticated, "cluster token"},
		{"a wrong cluster token proves nothing", token, apply, call{metadata: withToken("guess")}, codes.Unauthenticated, "cluster token"},
		{"a plaintext worker may poll", token, poll, call{}, codes.OK, ""},
		{"anyone may ask for health", token, health, call{}, codes.OK, ""},
		{"anyone may ask a server to prove itself (RaftState), without the token", token, "/daguha.v1.ClusterService/RaftState", call{}, codes.OK, ""},
		{"a worker certificate may ask a server to prove itself", tls, "/daguha.v1.ClusterService/RaftState", call{cert: workerCert}, codes.OK, ""},

		{"an open port takes every caller for a server", open, apply, call{}, codes.OK, ""},
		{"an open port serves plaintext workers", open, poll, call{}, codes.OK, ""},
	} {
		_, err := c.auth.authorize(c.call.context(), c.method)
		if status.Code(err) != c.want || !strings.Contains(status.Convert(err).Message(), c.says) {
			t.Errorf("%s: got %v, want %s saying %q", c.rule, err, c.want, c.says)
		}
	}
}

// The worker a call of the worker protocol acts for: the worker its
// certificate proves, or the one a proven (or, on an open port, any)
// server forwards; never one a worker or an unproven caller names.
func TestTheWorkerACallActsFor(t *testing.T) {
	token := NewAuthorizer(false, []string{"t"}, nil)
	for _, c := range []struct {
		rule   string
		auth   *Authorizer
		call   call
		proven bool
		name   string
		host   string
	}{
		{"a worker certificate is its worker", NewAuthorizer(true, nil, nil), call{cert: workerCert}, true, "w1", "10.1.2.3"},
		{"a worker's claim to forward another is ignored", NewAuthorizer(true, nil, nil), call{cert: workerCert, metadata: forwardedW2}, true, "w1", "10.1.2.3"},
		{"a server certificate forwards a worker", NewAuthorizer(true, nil, nil), call{cert: serverCert, metadata: forwardedW2}, true, "w2", "10.9.9.9"},
		{"a server proven by the token forwards a worker", token, call{metadata: append([]string{clusterTokenKey, "t"}, forwardedW2...)}, true, "w2", "10.9.9.9"},
		{"an unproven caller's forwarded worker is not believed", token, call{metadata: forwardedW2}, false, "", "10.1.2.3"},
		{"a plaintext worker proves nothing", token, call{}, false, "", "10.1.2.3"},
		{"a call forwarded by a server from before workers were named proves nothing, from nowhere known", NewAuthorizer(true, nil, nil), call{cert: serverCert, metadata: []string{forwardedKey, "1"}}, false, "", ""},
		{"on an open port a forwarded worker is taken as sent", NewAuthorizer(false, nil, nil), call{metadata: forwardedW2}, true, "w2", "10.9.9.9"},
	} {
		ctx, err := c.auth.authorize(c.call.context(), poll)
		if err != nil {
			t.Errorf("%s: refused: %v", c.rule, err)
			continue
		}
		w, ok := WorkerFrom(ctx)
		if !ok || w.Proven != c.proven || w.Name != c.name || w.Host != c.host {
			t.Errorf("%s: the call acts for %+v (%v), want proven=%v name=%q host=%q", c.rule, w, ok, c.proven, c.name, c.host)
		}
	}
}

// A refusal is logged with the method, the peer and the identity, and
// never with the token presented.
func TestRefusalsAreLoggedWithoutSecrets(t *testing.T) {
	var out bytes.Buffer
	a := NewAuthorizer(false, []string{"the-real-token"}, slog.New(slog.NewTextHandler(&out, nil)))
	_, _ = a.authorize(call{metadata: []string{clusterTokenKey, "a-guessed-token"}}.context(), apply)
	_, _ = NewAuthorizer(true, nil, slog.New(slog.NewTextHandler(&out, nil))).authorize(call{cert: workerCert}.context(), apply)
	log := out.String()
	for _, want := range []string{"gRPC call refused", apply, "10.1.2.3:40000", "daguha://daguha/worker/w1", "reason="} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}
	for _, secret := range []string{"the-real-token", "a-guessed-token"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log shows a token:\n%s", log)
		}
	}
}

// What a worker says of itself is bound to what it proved: its id, its
// certified labels, and the host its log address is dialled at.
func TestBindWorker(t *testing.T) {
	if !identity.Enforced {
		t.Skip("the daguha_trust_off build binds nothing")
	}
	c := &coordinatorService{certified: []string{"tier"}, logger: slog.New(slog.DiscardHandler)}
	proven := Caller{Role: identity.RoleWorker, Name: "w1", Labels: map[string]string{"tier": "secure"}, Proven: true, Host: "10.1.2.3"}
	plain := Caller{Host: "10.4.4.4"}
	info := func(id, logAddr string, labels ...string) *daguhav1.WorkerInfo {
		w := &daguhav1.WorkerInfo{Id: id, MaxActiveRuns: 1, LogAddr: logAddr, Labels: map[string]string{}}
		for i := 0; i+1 < len(labels); i += 2 {
			w.Labels[labels[i]] = labels[i+1]
		}
		return w
	}
	for _, c2 := range []struct {
		rule    string
		worker  Caller
		info    *daguhav1.WorkerInfo
		want    codes.Code
		says    string
		labels  string
		logAddr string
	}{
		{"a worker acts as its certificate's worker", proven, info("w1", "6.6.6.6:7000", "gpu", "true"), codes.OK, "", "gpu=true,tier=secure", "10.1.2.3:7000"},
		{"a worker may not act as another", proven, info("w2", ""), codes.PermissionDenied, `worker id "w2" is not the id the caller's certificate proves ("w1")`, "", ""},
		{"a certified label takes the certificate's value", proven, info("w1", "", "tier", "secure"), codes.OK, "", "tier=secure", ""},
		{"a certified label with another value is refused", proven, info("w1", "", "tier", "gold"), codes.PermissionDenied, `certified label tier="gold"`, "", ""},
		{"a plaintext worker cannot claim a certified label", plain, info("p1", "", "tier", "secure"), codes.PermissionDenied, "certified label tier", "", ""},
		{"a plaintext worker keeps its other labels; its log host is where it called from", plain, info("p1", "127.0.0.1:9", "gpu", "true"), codes.OK, "", "gpu=true", "10.4.4.4:9"},
		{"a log address that is not host:port is refused", plain, info("p1", "nonsense"), codes.InvalidArgument, "not host:port", "", ""},
	} {
		ctx := withWorker(context.Background(), c2.worker)
		got, err := c.bindWorker(ctx, "Poll", c2.info)
		if status.Code(err) != c2.want || !strings.Contains(status.Convert(err).Message(), c2.says) {
			t.Errorf("%s: got %v, want %s saying %q", c2.rule, err, c2.want, c2.says)
			continue
		}
		if err != nil {
			continue
		}
		if labels := valid.FormatLabels(got.GetLabels()); labels != c2.labels || got.GetLogAddr() != c2.logAddr {
			t.Errorf("%s: bound to labels %q, log address %q; want %q, %q", c2.rule, labels, got.GetLogAddr(), c2.labels, c2.logAddr)
		}
	}
}

// An impostor that advertises itself in gossip as a server is asked for
// its RaftState (the proof it cannot give); it must not collect the
// cluster token with the question. Every other call to a server carries
// the token. A real gRPC server records what each call brought.
func TestTheClusterTokenIsNeverSentWithTheProofQuestion(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen = map[string][]string{}
	)
	server := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		md, _ := metadata.FromIncomingContext(stream.Context())
		mu.Lock()
		seen[method] = md.Get(clusterTokenKey)
		mu.Unlock()
		return status.Error(codes.Unimplemented, "an impostor")
	}))
	go server.Serve(listener)
	defer server.Stop()
	peers := NewPeerClient(append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, WithClusterToken("the-cluster-token")...)...)
	defer peers.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := peers.ProveServer(ctx, listener.Addr().String(), bytes.Repeat([]byte{7}, 32)); err == nil {
		t.Fatal("the impostor's refusal did not reach the caller")
	}
	if _, _, err := peers.Apply(ctx, listener.Addr().String(), []byte{1}); err == nil {
		t.Fatal("the impostor's refusal did not reach the caller")
	}
	mu.Lock()
	defer mu.Unlock()
	if got, ok := seen[raftStateMethod]; !ok || len(got) != 0 {
		t.Errorf("RaftState reached the impostor: %v, with the cluster token %q; want it asked without the token", ok, got)
	}
	if got := seen["/daguha.v1.ClusterService/Apply"]; len(got) != 1 || got[0] != "the-cluster-token" {
		t.Errorf("Apply carried %q; want the cluster token (the check above must be able to see one)", got)
	}
}
