package attack

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/fsm"
	"github.com/daguha/daguha/ops/tlsutil"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// The secrets of the cluster under attack. The attacker holds none of
// them but the gossip key (every worker has it) and, for its row, the
// read-only token.
const (
	fullToken    = "attack-suite-full-api-token-0001"
	readToken    = "attack-suite-read-api-token-0001"
	clusterToken = "attack-suite-cluster-token-00001"
)

var gossipKey = []byte("attack-suite-gossip-key-32-bytes")

// target is one cluster under attack: three servers and the victim, a
// worker running a run whose step log holds a secret.
type target struct {
	t      *testing.T
	tls    bool
	broken bool
	pki    *pki
	c      *clustertest.Cluster
	// attacker is how the attacker reaches a server's gRPC port: with a
	// worker's certificate (worker/attacker) under TLS, with nothing on
	// the plaintext cluster.
	attacker      credentials.TransportCredentials
	attackerFiles tlsutil.Files
	victim        *clustertest.Process
	victimLogAddr string
	// archive was saved with the full token before any attack.
	archive []byte
}

const (
	victimRun    = "victim-run"
	victimSecret = "the-victims-secret-log-line"
	otherTeamRun = "other-team-run"
	secretRun    = "secret-run"
	dbPassword   = "hunter2-the-database-password"
)

func (g *target) mode() string {
	if g.tls {
		return "mutual TLS"
	}
	return "cluster token, no TLS"
}

func (g *target) processes() []*clustertest.Process {
	var out []*clustertest.Process
	for _, a := range g.c.Agents {
		out = append(out, a.Process)
	}
	return append(out, g.victim)
}

func (g *target) leader() *clustertest.Agent { return g.c.WaitLeader(g.t, 30*time.Second) }

func (g *target) follower() *clustertest.Agent {
	leader := g.leader()
	for _, a := range g.c.Running() {
		if a != leader {
			return a
		}
	}
	g.t.Fatal("no follower")
	return nil
}

// startTarget starts a cluster of three servers with every secret set,
// the victim worker and its run, the other team's queued run and the
// secure run no real worker can take.
func startTarget(t *testing.T, broken, useTLS bool) *target {
	t.Helper()
	g := &target{t: t, tls: useTLS, broken: broken}
	options := clustertest.ClusterOptions{
		Servers: 3, Binary: binary(t, broken), Token: fullToken,
		ExtraArgs: []string{"-api-token=" + fullToken, "-api-read-token=" + readToken, "-certified-labels=tier",
			"-encrypt=" + base64.StdEncoding.EncodeToString(gossipKey), "-lease-ttl=120s"},
	}
	if useTLS {
		g.pki = newPKI(t)
		options.ArgsFor = func(i int) []string {
			files := g.pki.server(fmt.Sprintf("server%d", i+1))
			return []string{"--coordinator.tls-cert=" + files.CertFile, "--coordinator.tls-key=" + files.KeyFile, "--coordinator.tls-ca=" + files.CAFile}
		}
		g.attackerFiles = g.pki.worker("attacker")
		g.attacker = clientCreds(t, g.attackerFiles)
	} else {
		options.ExtraArgs = append(options.ExtraArgs, "-cluster-token="+clusterToken)
	}
	g.c = clustertest.StartCluster(t, options)
	leader := g.leader()

	g.victimLogAddr = "127.0.0.1:" + strconv.Itoa(clustertest.FreePorts(t, 1)[0])
	args := []string{"--worker.labels=team=victim", "--worker.step-log-addr=" + g.victimLogAddr}
	if useTLS {
		files := g.pki.worker("victim")
		args = append(args, "--worker.insecure=false", "--worker.tls-cert="+files.CertFile, "--worker.tls-key="+files.KeyFile, "--worker.tls-ca="+files.CAFile)
	}
	g.victim = g.c.NewDaguWorker("victim", leader, args...)
	if err := g.victim.Start(); err != nil {
		t.Fatal(err)
	}
	g.enqueue(victimRun, "name: victim\nworkerSelector:\n  team: victim\nsteps:\n  - name: step\n    command: sh -c 'echo "+victimSecret+"; sleep 600'\n")
	g.enqueue(otherTeamRun, "name: other-team\nworkerSelector:\n  team: nobody-here\nsteps:\n  - name: step\n    command: \"true\"\n")
	g.enqueue(secretRun, "name: secret\nworkerSelector:\n  tier: secure\nenv:\n  - DB_PASSWORD: "+dbPassword+"\nsteps:\n  - name: step\n    command: \"true\"\n")
	// The servers read the victim's log for an operator: the way in that
	// must keep working.
	clustertest.WaitFor(t, 60*time.Second, "the victim to run its run and a server to read its log", func() (bool, string) {
		code, body, err := request(g.follower(), fullToken, http.MethodGet, "/api/v2/dag-runs/"+victimRun+"/steps/step/log", "")
		return code == 200 && strings.Contains(body, victimSecret), fmt.Sprintf("HTTP %d %v %.200s", code, err, body)
	})
	code, body, err := request(leader, fullToken, http.MethodGet, "/api/v2/operator/snapshot", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("save a snapshot with the full token: HTTP %d %v", code, err)
	}
	g.archive = []byte(body)
	return g
}

func (g *target) enqueue(id, yaml string) {
	g.t.Helper()
	body := fmt.Sprintf(`{"dag_run_id": %q, "yaml": %q}`, id, yaml)
	code, text, err := request(g.leader(), fullToken, http.MethodPost, "/api/v2/dag-runs", body)
	if err != nil || code != http.StatusCreated {
		g.t.Fatalf("enqueue %s: HTTP %d %v %s", id, code, err, text)
	}
}

// runStatus is a run's status as the leader answers ("" when absent).
func (g *target) runStatus(id string) string {
	var run wire.Run
	if code, err := getJSON(g.leader(), fullToken, "/api/v2/dag-runs/"+id, &run); code != 200 || err != nil {
		return ""
	}
	return run.Status
}

// outcome is what an attack achieved.
type outcome struct {
	succeeded bool
	// evidence says what was seen, for the table at the end.
	evidence string
}

// row is one line of issue 20's table: what an attacker holds, what it
// tries, and where a refusal must be logged.
type row struct {
	name string
	// holds is what the attacker holds.
	holds string
	// tlsOnly rows need worker identities, which only TLS gives (without
	// TLS a worker proves nothing: docs/security.md).
	tlsOnly bool
	// refusal is what a log line of the real build must hold when it
	// refuses the attack.
	refusal []string
	attack  func(g *target) outcome
}

// rows are in the order they run: the ones that change the cluster
// (leadership, a restore, a peer removed) come last.
var rows = []row{
	{name: "read any run's full step log from the worker's log port", holds: "another worker's certificate, or anyone without TLS",
		refusal: []string{"step log request refused"}, attack: readVictimLog},
	{name: "heartbeat as the victim with a log address of its own, so a reader's log request is served fake logs", holds: "a worker's certificate", tlsOnly: true,
		refusal: []string{"worker call refused", "method=Heartbeat"}, attack: fakeLogAddress},
	{name: "poll as another worker with the certified label tier=secure and read the run's DB_PASSWORD", holds: "a worker's certificate (without TLS: nothing)",
		refusal: []string{"worker call refused", "method=Poll"}, attack: pollAsAnother},
	{name: "WatchRun on another worker's run", holds: "a worker's certificate (without TLS: nothing)",
		refusal: []string{"worker call refused", "method=WatchRun"}, attack: watchAnyRun},
	{name: "a 20 MB label in one heartbeat", holds: "a worker's certificate (without TLS: nothing)",
		refusal: []string{"gRPC message refused", "Heartbeat"}, attack: hugeLabel},
	{name: "ClusterService.Apply: enqueue a run that executes id", holds: "a worker's certificate (without TLS: network access)",
		refusal: []string{"gRPC call refused", "ClusterService/Apply"}, attack: applyEnqueue},
	{name: "ClusterService.Apply: cancel another team's queued run", holds: "a worker's certificate (without TLS: network access)",
		refusal: []string{"gRPC call refused", "ClusterService/Apply"}, attack: applyCancel},
	{name: "snapshot with the read-only token, forge a lease with the signing key in it, FinishRun the victim's run", holds: "the read-only token and a worker's certificate",
		refusal: []string{"API request refused", "/api/v2/operator/snapshot"}, attack: forgeFromSnapshot},
	{name: "Raft TimeoutNow to a follower: force a leader change", holds: "a worker's certificate (without TLS: network access)",
		refusal: []string{"Raft connection refused"}, attack: raftTimeoutNow},
	{name: "ClusterService.TransferLeadership", holds: "a worker's certificate (without TLS: network access)",
		refusal: []string{"gRPC call refused", "ClusterService/TransferLeadership"}, attack: transferLeadership},
	{name: "ClusterService.RestoreSnapshot: roll the state back", holds: "a worker's certificate (without TLS: network access)",
		refusal: []string{"gRPC call refused", "ClusterService/RestoreSnapshot"}, attack: restoreOld},
	{name: "ClusterService.RemovePeer", holds: "a worker's certificate (without TLS: network access)",
		refusal: []string{"gRPC call refused", "ClusterService/RemovePeer"}, attack: removePeer},
}

// result is one row's outcome on one build and cluster.
type result struct {
	row, build, mode string
	outcome
	logged string
}

// TestAttacksOfTheTrustTable replays every row against the real build
// and the broken one, on a mutual-TLS cluster and a plaintext cluster
// with a cluster token.
func TestAttacksOfTheTrustTable(t *testing.T) {
	var (
		mu      sync.Mutex
		results []result
	)
	for _, broken := range []bool{false, true} {
		build := "real build"
		if broken {
			build = "broken build (" + brokenTag + ")"
		}
		for _, useTLS := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/tls=%v", strings.Fields(build)[0], useTLS), func(t *testing.T) {
				g := startTarget(t, broken, useTLS)
				for _, r := range rows {
					if r.tlsOnly && !useTLS {
						continue
					}
					marks := markLogs(g.processes())
					got := r.attack(g)
					// Against the broken build the attack must get through; one
					// that met an election (the broken build takes the 20 MB
					// label into Raft, and a loaded machine can lose its leader
					// over it) is tried again, twice at most.
					for try := 2; broken && !got.succeeded && try <= 3; try++ {
						t.Logf("%s (%s): the attack failed against the broken build (%s); try %d", r.name, g.mode(), got.evidence, try)
						got = r.attack(g)
					}
					res := result{row: r.name, build: build, mode: g.mode(), outcome: got}
					switch {
					case !broken && got.succeeded:
						t.Errorf("%s (%s): the attack succeeded against the real build: %s", r.name, g.mode(), got.evidence)
					case !broken:
						clustertest.Eventually(10*time.Second, 100*time.Millisecond, func() bool {
							res.logged = marks.since(r.refusal...)
							return res.logged != ""
						})
						if res.logged == "" {
							t.Errorf("%s (%s): refused (%s), but no process logged a line with %q", r.name, g.mode(), got.evidence, r.refusal)
						}
					case broken && !got.succeeded:
						t.Errorf("%s (%s): the attack failed against the broken build, so the real build's refusal proves nothing: %s", r.name, g.mode(), got.evidence)
					}
					mu.Lock()
					results = append(results, res)
					mu.Unlock()
				}
			})
		}
	}
	for _, r := range results {
		verdict := "refused"
		if r.succeeded {
			verdict = "SUCCEEDED"
		}
		t.Logf("%-9s %-34s %-22s %-108s %s", verdict, r.build, r.mode, r.row, r.evidence)
		if r.logged != "" {
			t.Logf("          logged: %s", r.logged)
		}
	}
}

// readVictimLog asks the victim's log service for its run's log directly,
// with no ticket: under TLS with the attacker's worker certificate.
func readVictimLog(g *target) outcome {
	var creds credentials.TransportCredentials
	if g.tls {
		creds = peerCreds(g.t, g.attackerFiles)
	}
	conn := dial(g.t, g.victimLogAddr, creds)
	ctx, cancel := callCtx()
	defer cancel()
	stream, err := daguhav1.NewWorkerLogServiceClient(conn).StepLog(ctx, &daguhav1.StepLogRequest{RunId: victimRun, StepName: "step", Attempt: 1})
	var text bytes.Buffer
	for err == nil {
		var chunk *daguhav1.StepLogChunk
		if chunk, err = stream.Recv(); err == nil {
			text.Write(chunk.GetData())
		}
	}
	if strings.Contains(text.String(), victimSecret) {
		return outcome{true, "the worker served the victim's log: " + strings.TrimSpace(text.String())}
	}
	return outcome{false, fmt.Sprintf("%v", status.Convert(err).Message())}
}

// fakeLogAddress heartbeats as the victim with the address of a fake log
// service (serving with the attacker's certificate) while a reader asks
// for the victim's run's log, over and over: the victim's own heartbeats
// put its address back every second.
func fakeLogAddress(g *target) outcome {
	listener, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		g.t.Fatal(err)
	}
	serverTLS, err := tlsutil.ServerConfig(tlsutil.Files{CertFile: g.attackerFiles.CertFile, KeyFile: g.attackerFiles.KeyFile})
	if err != nil {
		g.t.Fatal(err)
	}
	fake := grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS)))
	daguhav1.RegisterWorkerLogServiceServer(fake, fakeLogService{})
	go fake.Serve(listener)
	defer fake.Stop()
	leader := g.leader()
	client := daguhav1.NewCoordinatorServiceClient(dial(g.t, grpcAddr(leader), g.attacker))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var lastErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			ctx, cancel := callCtx()
			_, lastErr = client.Heartbeat(ctx, &daguhav1.HeartbeatRequest{Worker: &daguhav1.WorkerInfo{
				Id: "victim", Labels: map[string]string{"team": "victim"}, MaxActiveRuns: 10, LogAddr: listener.Addr().String()}})
			cancel()
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond): // the attacker's own pace
			}
		}
	}()
	follower := g.follower()
	var last string
	found := clustertest.Eventually(8*time.Second, 100*time.Millisecond, func() bool {
		code, body, err := request(follower, readToken, http.MethodGet, "/api/v2/dag-runs/"+victimRun+"/steps/step/log", "")
		last = fmt.Sprintf("HTTP %d %v %.120s", code, err, strings.TrimSpace(body))
		return strings.Contains(body, "FAKE LOG")
	})
	close(stop)
	wg.Wait()
	if found {
		return outcome{true, "a reader was served the attacker's fake log: " + last}
	}
	return outcome{false, fmt.Sprintf("heartbeat as the victim: %v; the reader got %s", status.Convert(lastErr).Message(), last)}
}

type fakeLogService struct {
	daguhav1.UnimplementedWorkerLogServiceServer
}

func (fakeLogService) StepLog(_ *daguhav1.StepLogRequest, stream grpc.ServerStreamingServer[daguhav1.StepLogChunk]) error {
	return stream.Send(&daguhav1.StepLogChunk{Data: []byte("FAKE LOG: nothing to see here\n")})
}

// pollAsAnother polls as a worker of another id that claims the
// certified label tier=secure, and reads the secure run's password.
func pollAsAnother(g *target) outcome {
	client := daguhav1.NewCoordinatorServiceClient(dial(g.t, grpcAddr(g.follower()), g.attacker))
	ctx, cancel := callCtx()
	defer cancel()
	resp, err := client.Poll(ctx, &daguhav1.PollRequest{Worker: &daguhav1.WorkerInfo{Id: "vault-worker", Labels: map[string]string{"tier": "secure"}, MaxActiveRuns: 1}, WaitMillis: 3000})
	if err == nil && resp.GetTask() != nil {
		for _, env := range resp.GetTask().GetRun().GetDag().GetEnv() {
			if strings.Contains(env.GetValue(), dbPassword) {
				return outcome{true, fmt.Sprintf("granted %s; its DB_PASSWORD is %s", resp.GetTask().GetRun().GetId(), env.GetValue())}
			}
		}
		return outcome{true, "granted " + resp.GetTask().GetRun().GetId()}
	}
	return outcome{false, fmt.Sprintf("poll: %v", status.Convert(err).Message())}
}

// watchAnyRun watches the victim's run without holding it.
func watchAnyRun(g *target) outcome {
	client := daguhav1.NewCoordinatorServiceClient(dial(g.t, grpcAddr(g.follower()), g.attacker))
	ctx, cancel := callCtx()
	defer cancel()
	resp, err := client.WatchRun(ctx, &daguhav1.WatchRunRequest{RunId: victimRun})
	if err == nil && resp.GetRun().GetId() == victimRun {
		return outcome{true, fmt.Sprintf("watched %s: %s on %s", victimRun, resp.GetRun().GetStatus(), resp.GetRun().GetWorkerId())}
	}
	return outcome{false, fmt.Sprintf("WatchRun: %v", status.Convert(err).Message())}
}

// hugeLabel heartbeats to the leader with one label of 20 MB, and reads
// every server's resident memory before and after.
func hugeLabel(g *target) outcome {
	leader := g.leader()
	before := map[string]int64{}
	for _, a := range g.c.Agents {
		before[a.Name] = rss(g.t, a.Pid())
	}
	client := daguhav1.NewCoordinatorServiceClient(dial(g.t, grpcAddr(leader), g.attacker))
	ctx, cancel := callCtx()
	defer cancel()
	_, err := client.Heartbeat(ctx, &daguhav1.HeartbeatRequest{Worker: &daguhav1.WorkerInfo{
		Id: "attacker", Labels: map[string]string{"huge": strings.Repeat("x", 20<<20)}, MaxActiveRuns: 1}})
	if err == nil {
		// Accepted: wait for the label to reach every server's state.
		clustertest.Eventually(20*time.Second, 200*time.Millisecond, func() bool {
			for _, a := range g.c.Agents {
				code, body, _ := request(a, fullToken, http.MethodGet, "/api/v2/workers?stale=true", "")
				if code != 200 || len(body) < 20<<20 {
					return false
				}
			}
			return true
		})
	}
	var growth []string
	var most int64
	for _, a := range g.c.Agents {
		grew := rss(g.t, a.Pid()) - before[a.Name]
		most = max(most, grew)
		growth = append(growth, fmt.Sprintf("%s %+d MiB", a.Name, grew>>20))
	}
	figures := "resident memory " + strings.Join(growth, ", ")
	if !g.broken && most >= 64<<20 {
		g.t.Errorf("a refused 20 MB label grew a server by %d MiB (%s); the bound is 64 MiB", most>>20, figures)
	}
	if err == nil {
		return outcome{true, "the 20 MB label was taken; " + figures}
	}
	return outcome{false, fmt.Sprintf("%v; %s", status.Convert(err).Message(), figures)}
}

// apply writes a Raft command through the leader's ClusterService (a
// server forwards its writes to the leader's).
func apply(g *target, command []byte) error {
	conn := dial(g.t, grpcAddr(g.leader()), g.attacker)
	ctx, cancel := callCtx()
	defer cancel()
	_, err := daguhav1.NewClusterServiceClient(conn).Apply(ctx, &daguhav1.ApplyRequest{Command: command})
	return err
}

func applyEnqueue(g *target) outcome {
	id := "injected-run"
	command, err := fsm.Encode(fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: []*daguhav1.Run{{
		Id: id, DagName: "injected", EnqueuedAtUnixNano: time.Now().UnixNano(),
		Dag: &daguhav1.DagSpec{Name: "injected", Steps: []*daguhav1.StepSpec{{Name: "step", Command: "id"}}},
	}}})
	if err != nil {
		g.t.Fatal(err)
	}
	err = apply(g, command)
	if s := g.runStatus(id); s != "" {
		return outcome{true, fmt.Sprintf("run %s exists (%s): it runs `id` on a worker", id, s)}
	}
	return outcome{false, fmt.Sprintf("Apply: %v", status.Convert(err).Message())}
}

func applyCancel(g *target) outcome {
	command, err := fsm.Encode(fsm.CancelRunsType, &daguhav1.CancelRunsCommand{RunIds: []string{otherTeamRun}, NowUnixNano: time.Now().UnixNano()})
	if err != nil {
		g.t.Fatal(err)
	}
	err = apply(g, command)
	if s := g.runStatus(otherTeamRun); s == "cancelled" {
		return outcome{true, otherTeamRun + " was cancelled"}
	}
	return outcome{false, fmt.Sprintf("Apply: %v; %s is %s", status.Convert(err).Message(), otherTeamRun, g.runStatus(otherTeamRun))}
}

// forgeFromSnapshot saves a snapshot with the read-only token, takes the
// signing key out of it, forges a lease token for the victim's run and
// ends the run with it.
func forgeFromSnapshot(g *target) outcome {
	leader := g.leader()
	code, body, err := request(leader, readToken, http.MethodGet, "/api/v2/operator/snapshot", "")
	if err != nil || code != http.StatusOK {
		// Even with the full token the archive holds no key: check the
		// one saved at the start.
		return outcome{false, fmt.Sprintf("snapshot with the read-only token: HTTP %d %v %.100s; %s", code, err, strings.TrimSpace(body), keyInArchive(g, g.archive))}
	}
	archive := []byte(body)
	key := signingKeyOf(g, archive)
	if key == nil {
		return outcome{false, "the read-only token got an archive, but it holds no signing key"}
	}
	var run wire.Run
	if code, err := getJSON(leader, readToken, "/api/v2/dag-runs/"+victimRun, &run); code != 200 || err != nil || len(run.Attempts) == 0 {
		g.t.Fatalf("read %s: HTTP %d %v %+v", victimRun, code, err, run)
	}
	last := run.Attempts[len(run.Attempts)-1]
	signer, err := dispatch.NewSigner(key)
	if err != nil {
		g.t.Fatal(err)
	}
	token, err := signer.Sign(dispatch.LeaseClaims{RunID: victimRun, Attempt: last.Attempt, WorkerID: last.WorkerID, FencingToken: last.FencingToken})
	if err != nil {
		g.t.Fatal(err)
	}
	client := daguhav1.NewCoordinatorServiceClient(dial(g.t, grpcAddr(leader), g.attacker))
	ctx, cancel := callCtx()
	defer cancel()
	_, err = client.FinishRun(ctx, &daguhav1.FinishRunRequest{LeaseToken: token, Status: daguhav1.RunStatus_RUN_STATUS_FAILED, Error: "ended by a forged lease"})
	if s := g.runStatus(victimRun); s == "failed" {
		return outcome{true, "the read-only token's archive held the signing key; a lease forged with it ended " + victimRun}
	}
	return outcome{false, fmt.Sprintf("archive with a key, forged FinishRun: %v", status.Convert(err).Message())}
}

// signingKeyOf reads the cluster's signing key out of an archive, or nil.
func signingKeyOf(g *target, archive []byte) []byte {
	_, snapshot, err := fsm.OpenArchive(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		g.t.Fatalf("the archive does not open: %v", err)
	}
	state, _, err := fsm.ReadSnapshot(snapshot)
	if err != nil {
		g.t.Fatalf("the archive does not read: %v", err)
	}
	return state.ClusterMeta().GetSigningKey()
}

func keyInArchive(g *target, archive []byte) string {
	if key := signingKeyOf(g, archive); key != nil {
		return "yet the full token's archive holds the signing key"
	}
	return "the full token's archive holds no signing key"
}

// raftTimeoutNow sends Raft's TimeoutNow (start an election at once) to a
// follower's Raft port: under TLS with the attacker's worker
// certificate, without TLS with no cluster token.
func raftTimeoutNow(g *target) outcome {
	before := g.leader()
	target := g.follower()
	dialer := func(addr string, timeout time.Duration) (net.Conn, error) {
		if g.tls {
			return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", addr, tlsClientConfig(g.t, g.attackerFiles))
		}
		return net.DialTimeout("tcp", addr, timeout)
	}
	transport := raft.NewNetworkTransport(&attackerStream{dial: dialer, closed: make(chan struct{})}, 1, 5*time.Second, io.Discard)
	defer transport.Close()
	var resp raft.TimeoutNowResponse
	err := transport.TimeoutNow(raft.ServerID(target.Name), raft.ServerAddress(raftAddr(target)),
		&raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("attacker"), Addr: []byte("127.0.0.1:1")}}, &resp)
	moved := clustertest.Eventually(5*time.Second, 100*time.Millisecond, func() bool {
		h, herr := target.Health()
		return herr == nil && h.Leader == target.Name
	})
	if moved {
		return outcome{true, fmt.Sprintf("leadership moved from %s to %s", before.Name, target.Name)}
	}
	return outcome{false, fmt.Sprintf("TimeoutNow: %v; %s still leads", err, before.Name)}
}

// attackerStream is the dialling half of a raft.StreamLayer.
type attackerStream struct {
	dial   func(addr string, timeout time.Duration) (net.Conn, error)
	closed chan struct{}
}

func (s *attackerStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.dial(string(addr), timeout)
}
func (s *attackerStream) Accept() (net.Conn, error) { <-s.closed; return nil, net.ErrClosed }
func (s *attackerStream) Close() error              { close(s.closed); return nil }
func (s *attackerStream) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func transferLeadership(g *target) outcome {
	leader, target := g.leader(), g.follower()
	conn := dial(g.t, grpcAddr(leader), g.attacker)
	ctx, cancel := callCtx()
	defer cancel()
	_, err := daguhav1.NewClusterServiceClient(conn).TransferLeadership(ctx, &daguhav1.TransferLeadershipRequest{Id: target.Name})
	moved := clustertest.Eventually(5*time.Second, 100*time.Millisecond, func() bool {
		h, herr := target.Health()
		return herr == nil && h.Leader == target.Name
	})
	if moved {
		return outcome{true, fmt.Sprintf("leadership moved from %s to %s", leader.Name, target.Name)}
	}
	return outcome{false, fmt.Sprintf("TransferLeadership: %v", status.Convert(err).Message())}
}

// restoreOld streams the archive saved before the attacks to the leader:
// the runs enqueued since (the injected one, say) would be gone.
func restoreOld(g *target) outcome {
	g.enqueue("after-the-archive", "name: later\nworkerSelector:\n  team: nobody-here\nsteps:\n  - name: step\n    command: \"true\"\n")
	conn := dial(g.t, grpcAddr(g.leader()), g.attacker)
	ctx, cancel := callCtx()
	defer cancel()
	stream, err := daguhav1.NewClusterServiceClient(conn).RestoreSnapshot(ctx)
	if err == nil {
		for rest := g.archive; len(rest) > 0 && err == nil; {
			n := min(len(rest), 1<<20)
			err = stream.Send(&daguhav1.RestoreSnapshotChunk{Data: rest[:n]})
			rest = rest[n:]
		}
		if err == nil {
			_, err = stream.CloseAndRecv()
		}
	}
	gone := clustertest.Eventually(10*time.Second, 200*time.Millisecond, func() bool { return g.runStatus("after-the-archive") == "" })
	if gone {
		return outcome{true, "the state went back to the archive: a run enqueued after it is gone"}
	}
	return outcome{false, fmt.Sprintf("RestoreSnapshot: %v", status.Convert(err).Message())}
}

func removePeer(g *target) outcome {
	leader, target := g.leader(), g.follower()
	conn := dial(g.t, grpcAddr(leader), g.attacker)
	ctx, cancel := callCtx()
	defer cancel()
	_, err := daguhav1.NewClusterServiceClient(conn).RemovePeer(ctx, &daguhav1.RemovePeerRequest{Id: target.Name})
	var peers wire.Peers
	removed := clustertest.Eventually(5*time.Second, 100*time.Millisecond, func() bool {
		code, gerr := getJSON(g.leader(), fullToken, "/api/v2/cluster/peers", &peers)
		return code == 200 && gerr == nil && len(peers.Peers) == 2
	})
	if removed {
		return outcome{true, fmt.Sprintf("%s was removed from the Raft configuration", target.Name)}
	}
	return outcome{false, fmt.Sprintf("RemovePeer: %v; %d peers", status.Convert(err).Message(), len(peers.Peers))}
}
