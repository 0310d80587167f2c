package attack

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/cluster/identity"
	"github.com/daguha/daguha/ops/client"
	"github.com/daguha/daguha/ops/tlsutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.CleanupBinary()
	os.Exit(code)
}

// brokenTag is the build tag that takes the trust checks out.
const brokenTag = "daguha_trust_off"

// binary is the real build (following DAGUHA_RACE_BINARY, as the other
// process tests do) or the broken one (without the race detector, which
// would only slow it down).
func binary(t *testing.T, broken bool) string {
	t.Helper()
	if !broken {
		return clustertest.BuildBinary(t)
	}
	bin, err := clustertest.BuildVariant(brokenTag, false)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// pki is a CA and the certificates it signs, with the roles
// `daguha tls cert create` gives.
type pki struct {
	t             *testing.T
	dir           string
	caCert, caKey []byte
	caFile        string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	cert, key, err := tlsutil.CreateCA("attack suite CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{t: t, dir: dir, caCert: cert, caKey: key, caFile: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(p.caFile, cert, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *pki) issue(file string, options tlsutil.CertOptions) tlsutil.Files {
	p.t.Helper()
	options.CommonName = file
	cert, key, err := tlsutil.CreateCert(p.caCert, p.caKey, options)
	if err != nil {
		p.t.Fatal(err)
	}
	files := tlsutil.Files{CertFile: filepath.Join(p.dir, file+".pem"), KeyFile: filepath.Join(p.dir, file+"-key.pem"), CAFile: p.caFile}
	if err := os.WriteFile(files.CertFile, cert, 0o644); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(files.KeyFile, key, 0o600); err != nil {
		p.t.Fatal(err)
	}
	return files
}

func (p *pki) server(node string) tlsutil.Files {
	return p.issue(node, tlsutil.CertOptions{Server: true, Client: true, IPs: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		Identity: &identity.Identity{Role: identity.RoleServer, Name: node}})
}

// worker is a worker's certificate, as an attacker on a worker host
// holds it: valid, signed by the cluster's CA, naming that worker. It
// also serves as a TLS server certificate for a fake log service.
func (p *pki) worker(id string) tlsutil.Files {
	return p.issue(id, tlsutil.CertOptions{Client: true, Server: true, IPs: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("127.0.0.2")},
		Identity: &identity.Identity{Role: identity.RoleWorker, Name: id}})
}

// clientCreds are the credentials of a gRPC client presenting files'
// certificate to a server.
func clientCreds(t *testing.T, files tlsutil.Files) credentials.TransportCredentials {
	t.Helper()
	config, err := tlsutil.ClientConfig(files)
	if err != nil {
		t.Fatal(err)
	}
	config.ServerName = "127.0.0.1"
	return credentials.NewTLS(config)
}

// peerCreds are the credentials of a client that checks only the chain
// to the CA of the server it reaches (a worker's log service serves with
// the worker's certificate): what an attacker needs, nothing more.
func peerCreds(t *testing.T, files tlsutil.Files) credentials.TransportCredentials {
	t.Helper()
	config, err := tlsutil.PeerCAConfig(files)
	if err != nil {
		t.Fatal(err)
	}
	return credentials.NewTLS(config)
}

func dial(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20), grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func grpcAddr(a *clustertest.Agent) string { return "127.0.0.1:" + strconv.Itoa(a.GRPCPort) }
func raftAddr(a *clustertest.Agent) string { return "127.0.0.1:" + strconv.Itoa(a.RaftPort) }

// callCtx bounds one attacking call.
func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 15*time.Second)
}

// getJSON reads an API path with a token into out; it returns the status.
func getJSON(a *clustertest.Agent, token, path string, out any) (int, error) {
	code, body, err := request(a, token, http.MethodGet, path, "")
	if err != nil || out == nil || code != http.StatusOK {
		return code, err
	}
	return code, json.Unmarshal([]byte(body), out)
}

// request sends one API request, as it is, with a token, and returns the
// status and (at most 64 MiB of) the body.
func request(a *clustertest.Agent, token, method, path, body string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	api := client.New(a.HTTPAddr(), client.Options{Token: token, HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}})
	resp, err := api.Send(ctx, method, path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var text strings.Builder
	buf := make([]byte, 32<<10)
	for text.Len() < 64<<20 {
		n, err := resp.Body.Read(buf)
		text.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, text.String(), nil
}

// rss is a process's resident memory in bytes, from /proc.
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// logMarks remembers how long each process's log was, so what a row
// logged can be told from what came before it.
type logMarks map[*clustertest.Process]int64

func markLogs(processes []*clustertest.Process) logMarks {
	marks := logMarks{}
	for _, p := range processes {
		if info, err := os.Stat(p.LogPath()); err == nil {
			marks[p] = info.Size()
		} else {
			marks[p] = 0
		}
	}
	return marks
}

// since returns the first line logged after the marks that holds every
// one of parts, with the process's name, or "".
func (m logMarks) since(parts ...string) string {
	for p, offset := range m {
		data, err := os.ReadFile(p.LogPath())
		if err != nil || int64(len(data)) < offset {
			continue
		}
		for _, line := range strings.Split(string(data[offset:]), "\n") {
			all := true
			for _, part := range parts {
				all = all && strings.Contains(line, part)
			}
			if all {
				return p.Name + ": " + strings.TrimSpace(line)
			}
		}
	}
	return ""
}

// tlsClientConfig is a plain TLS client config trusting the CA, for
// dialling the Raft port as an attacker with files' certificate.
func tlsClientConfig(t *testing.T, files tlsutil.Files) *tls.Config {
	t.Helper()
	config, err := tlsutil.ClientConfig(files)
	if err != nil {
		t.Fatal(err)
	}
	config.ServerName = "127.0.0.1"
	return config
}
