package agent_test

// "Gossip is a hint, never an authority" (#20) in a cluster without TLS
// that has a cluster token: three servers in this process, each with its
// real gRPC, Raft and gossip listeners (there is no command line flag for
// the cluster token here yet, so the test sets cluster.Config itself),
// and impostors holding the gossip key but not the token.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/agent"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// logBuffer is one server's log, written by its goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is one server of the test and its addresses.
type server struct {
	name                                     string
	grpcPort, raftPort, gossipPort, httpPort int
	log                                      *logBuffer
	agent                                    *agent.Agent
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// impostor is a fake server of the attack and the reason it must be
// refused for.
type impostor struct {
	name    string
	options clustertest.ImpostorOptions
	refusal string
}

// noProof answers RaftState as a server of its own would, without the
// cluster token: with its own name and an unused Raft address, and a
// proof made up or left out.
func noProof(name string, proof bool) func(*daguhav1.RaftStateRequest) *daguhav1.RaftStateResponse {
	return func(*daguhav1.RaftStateRequest) *daguhav1.RaftStateResponse {
		answer := &daguhav1.RaftStateResponse{NodeId: name, RaftAddr: "127.0.0.1:1"}
		if proof {
			answer.Proof = make([]byte, 32)
			rand.Read(answer.Proof)
		}
		return answer
	}
}

// relay answers with what the real server at grpcAddr answers to the
// same challenge: a proven answer, but the real server's.
func relay(t *testing.T, grpcAddr string) func(*daguhav1.RaftStateRequest) *daguhav1.RaftStateResponse {
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return func(req *daguhav1.RaftStateRequest) *daguhav1.RaftStateResponse {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		answer, err := daguhav1.NewClusterServiceClient(conn).RaftState(ctx, req)
		if err != nil {
			return &daguhav1.RaftStateResponse{}
		}
		return answer
	}
}

func TestGossipImpostorsWithoutTheClusterTokenNeitherStopNorJoinAFreshCluster(t *testing.T) {
	gossipKey := []byte("0123456789abcdef0123456789abcdef")
	ports := clustertest.FreePorts(t, 4*3+7)
	servers := make([]*server, 3)
	for i := range servers {
		servers[i] = &server{name: fmt.Sprintf("server%d", i+1), log: &logBuffer{},
			grpcPort: ports[4*i], raftPort: ports[4*i+1], gossipPort: ports[4*i+2], httpPort: ports[4*i+3]}
	}
	impostorPorts := ports[12:]
	impostors := []impostor{
		{name: "impostor-without-keys", refusal: "advertises no gRPC address",
			options: clustertest.ImpostorOptions{Meta: cluster.Meta{Expect: 7}}},
		{name: "impostor-without-proof", refusal: "no proof of the cluster token",
			options: clustertest.ImpostorOptions{Meta: cluster.Meta{RaftAddr: "127.0.0.1:1"}, Answer: noProof("impostor-without-proof", false)}},
		{name: "impostor-with-a-made-up-proof", refusal: "does not verify",
			options: clustertest.ImpostorOptions{Meta: cluster.Meta{RaftAddr: "127.0.0.1:1"}, Answer: noProof("impostor-with-a-made-up-proof", true)}},
		{name: "impostor-relaying-server2", refusal: "answers as",
			options: clustertest.ImpostorOptions{Meta: cluster.Meta{RaftAddr: loopback(servers[1].raftPort)}, Answer: relay(t, loopback(servers[1].grpcPort))}},
	}
	// As observed: real servers' gRPC addresses, Raft addresses of their
	// own where nothing listens.
	for i, s := range servers {
		impostors = append(impostors, impostor{name: "impostor-of-" + s.name, refusal: "answers as",
			options: clustertest.ImpostorOptions{Meta: cluster.Meta{GRPCAddr: loopback(s.grpcPort), RaftAddr: loopback(i + 1)}}})
	}
	var started []*clustertest.Impostor
	for i, imp := range impostors {
		imp.options.Name, imp.options.GossipKey, imp.options.GossipPort = imp.name, gossipKey, impostorPorts[i]
		started = append(started, clustertest.StartImpostor(t, imp.options))
	}

	for _, s := range servers {
		var join []string
		for _, other := range servers {
			if other != s {
				join = append(join, loopback(other.gossipPort))
			}
		}
		for _, port := range impostorPorts[:len(impostors)] {
			join = append(join, loopback(port))
		}
		a, err := agent.Start(agent.Config{
			Cluster: cluster.Config{
				NodeName: s.name, DataDir: t.TempDir(), BindAddr: "127.0.0.1", AdvertiseAddr: "127.0.0.1",
				RaftPort: s.raftPort, GossipPort: s.gossipPort, GRPCPort: s.grpcPort, HTTPPort: s.httpPort,
				BootstrapExpect: 3, Join: join, JoinRetryInterval: 200 * time.Millisecond,
				GossipKeys: [][]byte{gossipKey}, ClusterTokens: []string{"cluster-token"}, GossipTimings: cluster.GossipLocal,
				DeadServerTimeout: 2 * time.Second,
			},
			HTTPBind: "127.0.0.1", GRPCBind: "127.0.0.1",
			Logger: slog.New(slog.NewTextHandler(s.log, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		s.agent = a
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a.Shutdown(ctx)
		})
	}

	// holds checks that no server had to stop and that the voters are
	// exactly the three servers.
	holds := func() error {
		for _, s := range servers {
			select {
			case err := <-s.agent.Fatal():
				return fmt.Errorf("%s had to stop: %v", s.name, err)
			default:
			}
			peers, err := s.agent.Cluster().Peers()
			if err != nil {
				return err
			}
			var voters []string
			for _, p := range peers {
				if p.Voter {
					voters = append(voters, p.ID)
				}
			}
			slices.Sort(voters)
			if got := strings.Join(voters, ","); got != "server1,server2,server3" {
				return fmt.Errorf("%s has voters %s", s.name, got)
			}
		}
		return nil
	}
	// waitLeader waits for the servers to agree on a leader (which may
	// change on a loaded machine: what the impostors broke was the voters,
	// and with them any chance of a leader).
	waitLeader := func() {
		clustertest.WaitFor(t, 30*time.Second, "the servers to agree on a leader", func() (bool, string) {
			leaders := map[string]bool{}
			for _, s := range servers {
				leader, _ := s.agent.Cluster().Leader()
				leaders[leader] = true
			}
			return len(leaders) == 1 && !leaders[""], fmt.Sprintf("leaders: %v", leaders)
		})
	}
	clustertest.WaitFor(t, 30*time.Second, "every server to see every impostor in gossip", func() (bool, string) {
		for _, s := range servers {
			for _, imp := range impostors {
				if !slices.ContainsFunc(s.agent.Cluster().Members(), func(m cluster.Member) bool {
					return m.Name == imp.name && m.Status == cluster.MemberAlive
				}) {
					return false, s.name + " does not see " + imp.name
				}
			}
		}
		return true, ""
	})
	clustertest.WaitFor(t, 60*time.Second, "exactly the three servers as voters", func() (bool, string) {
		err := holds()
		return err == nil, fmt.Sprint(err)
	})
	waitLeader()
	observeUntil := time.Now().Add(6 * time.Second)
	for time.Now().Before(observeUntil) {
		if err := holds(); err != nil {
			t.Fatalf("with the impostors in the pool: %v", err)
		}
		time.Sleep(250 * time.Millisecond) // sampling interval of the observation
	}
	waitLeader()
	for _, imp := range impostors {
		clustertest.WaitFor(t, 10*time.Second, "a server to log why it refused "+imp.name, func() (bool, string) {
			for _, s := range servers {
				for _, line := range strings.Split(s.log.String(), "\n") {
					if !strings.Contains(line, "server="+imp.name) || !(strings.Contains(line, "refusing a gossip member as a server") || strings.Contains(line, "not adding a server")) {
						continue
					}
					for _, reason := range strings.Split(imp.refusal, "|") {
						if strings.Contains(line, reason) {
							t.Logf("%s: %s", imp.name, line)
							return true, ""
						}
					}
				}
			}
			return false, "no log line names it with " + imp.refusal
		})
	}
	for _, imp := range started {
		imp.Leave()
	}
	if err := holds(); err != nil {
		t.Fatalf("after the impostors left: %v", err)
	}
	waitLeader()
	for _, s := range servers {
		if strings.Contains(s.log.String(), "cluster-token") {
			t.Fatalf("%s logged the cluster token", s.name)
		}
	}
}
