package clustertest

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/daguha/daguha/cluster"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Impostor is the attacker of the trust tests: a gossip member that holds
// the gossip key (every worker does) and nothing else, and announces
// itself as a server with whatever addresses it likes. It may also serve
// ClusterService on a port of its own and answer RaftState as it likes.
type Impostor struct {
	Name string
	// GossipAddr is its gossip address, for a server's -join.
	GossipAddr string
	// GRPCAddr is its own ClusterService, when it serves one.
	GRPCAddr string
	list     *memberlist.Memberlist
	server   *grpc.Server
	meta     *impostorMeta
}

// ImpostorOptions describe an impostor.
type ImpostorOptions struct {
	Name string
	// GossipKey encrypts its gossip (nil: none).
	GossipKey []byte
	// Meta is what it announces; its role is server unless Meta.Role
	// says otherwise (a worker of another version, say). When Answer
	// is set and Meta.GRPCAddr is empty, its own gRPC address is put there.
	Meta cluster.Meta
	// GossipPort is its gossip port on 127.0.0.1 (0: a free one).
	GossipPort int
	// Answer, when set, makes it serve ClusterService and answer RaftState
	// with what Answer returns; Creds are the transport credentials it
	// serves with (nil: plaintext).
	Answer func(*daguhav1.RaftStateRequest) *daguhav1.RaftStateResponse
	Creds  credentials.TransportCredentials
}

// StartImpostor starts an impostor on loopback; cleanup stops it. It
// joins nobody: pass its GossipAddr to servers' -join, or call Join.
func StartImpostor(t testing.TB, opts ImpostorOptions) *Impostor {
	t.Helper()
	imp := &Impostor{Name: opts.Name}
	if opts.Answer != nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var serverOptions []grpc.ServerOption
		if opts.Creds != nil {
			serverOptions = append(serverOptions, grpc.Creds(opts.Creds))
		}
		imp.server = grpc.NewServer(serverOptions...)
		daguhav1.RegisterClusterServiceServer(imp.server, &impostorService{answer: opts.Answer})
		imp.GRPCAddr = ln.Addr().String()
		go imp.server.Serve(ln)
		t.Cleanup(imp.server.Stop)
		if opts.Meta.GRPCAddr == "" {
			opts.Meta.GRPCAddr = imp.GRPCAddr
		}
	}
	imp.meta = &impostorMeta{}
	imp.meta.set(t, opts.Meta)
	port := opts.GossipPort
	if port == 0 {
		port = FreePorts(t, 1)[0]
	}
	conf := memberlist.DefaultLocalConfig()
	conf.Name = opts.Name
	conf.BindAddr, conf.AdvertiseAddr = "127.0.0.1", "127.0.0.1"
	conf.BindPort, conf.AdvertisePort = port, port
	conf.Delegate = imp.meta
	conf.Logger = log.New(io.Discard, "", 0)
	if len(opts.GossipKey) > 0 {
		keyring, err := memberlist.NewKeyring(nil, opts.GossipKey)
		if err != nil {
			t.Fatal(err)
		}
		conf.Keyring = keyring
	}
	var err error
	imp.list, err = memberlist.Create(conf)
	if err != nil {
		t.Fatalf("impostor %s: %v", opts.Name, err)
	}
	imp.GossipAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	t.Cleanup(func() { imp.list.Shutdown() })
	return imp
}

// Join joins the gossip pool through seeds, retrying until one answers
// or timeout passes.
func (i *Impostor) Join(t testing.TB, seeds []string, timeout time.Duration) {
	t.Helper()
	var err error
	if !Eventually(timeout, 100*time.Millisecond, func() bool {
		_, err = i.list.Join(seeds)
		return err == nil
	}) {
		t.Fatalf("impostor %s could not join %v: %v", i.Name, seeds, err)
	}
}

// Leave leaves the gossip pool gracefully and stops the impostor.
func (i *Impostor) Leave() {
	i.list.Leave(time.Second)
	i.list.Shutdown()
	if i.server != nil {
		i.server.Stop()
	}
}

// impostorMeta is a memberlist delegate that announces a fixed meta.
type impostorMeta struct {
	mu      sync.Mutex
	encoded []byte
}

func (m *impostorMeta) set(t testing.TB, meta cluster.Meta) {
	meta.Version = 1
	if meta.Role == "" {
		meta.Role = cluster.RoleServer
	}
	encoded, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.encoded = encoded
	m.mu.Unlock()
}

func (m *impostorMeta) NodeMeta(limit int) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.encoded
}
func (*impostorMeta) NotifyMsg([]byte)                           {}
func (*impostorMeta) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (*impostorMeta) LocalState(join bool) []byte                { return nil }
func (*impostorMeta) MergeRemoteState(buf []byte, join bool)     {}

// impostorService answers RaftState as the impostor chooses.
type impostorService struct {
	daguhav1.UnimplementedClusterServiceServer
	answer func(*daguhav1.RaftStateRequest) *daguhav1.RaftStateResponse
}

func (s *impostorService) RaftState(_ context.Context, req *daguhav1.RaftStateRequest) (*daguhav1.RaftStateResponse, error) {
	return s.answer(req), nil
}
