package main

// Issue 20: the signing key never leaves the servers through snapshots,
// and restores stream to disk instead of into memory.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/dispatch"
	"github.com/daguha/daguha/fsm"
	"github.com/daguha/daguha/ops/client"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// memoryKiB reads a field of /proc/PID/status (VmRSS: resident memory
// now; VmHWM: its peak) in KiB.
func memoryKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if value, ok := strings.CutPrefix(scanner.Text(), field+":"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("/proc/%d/status %s: %v", pid, field, err)
			}
			return kib
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// checksummed reads body, then the SHA-256 of everything body gave: an
// archive's trailer, computed as the bytes stream past.
type checksummed struct {
	body    io.Reader
	sum     hash.Hash
	trailer []byte
	done    bool
}

func newChecksummed(body io.Reader) *checksummed {
	return &checksummed{body: body, sum: sha256.New()}
}

func (c *checksummed) Read(p []byte) (int, error) {
	if !c.done {
		n, err := c.body.Read(p)
		c.sum.Write(p[:n])
		if err == io.EOF {
			c.done, c.trailer = true, c.sum.Sum(nil)
			err = nil
		}
		return n, err
	}
	if len(c.trailer) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.trailer)
	c.trailer = c.trailer[n:]
	return n, nil
}

// filler reads as n bytes of b.
type filler struct {
	b byte
	n int64
}

func (f *filler) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), f.n)]
	for i := range p {
		p[i] = f.b
	}
	f.n -= int64(len(p))
	return len(p), nil
}

// bogusArchive is an archive of about size bytes that passes every check
// but the last: the magic, the header and the checksum are right, and the
// snapshot inside is framed right, but its run records are not protobuf.
// The server it is sent to takes it whole and forwards it whole to the
// leader, which copies it whole before its records are read.
func bogusArchive(size int64) io.Reader {
	header, _ := proto.Marshal(&daguhav1.SnapshotHeader{Version: fsm.SnapshotVersion, LastIndex: 1, Runs: 100})
	var head bytes.Buffer
	head.WriteString("DAGUHA-ARCHIVE\n")
	fmt.Fprintf(&head, `{"version":%d,"index":1,"term":1,"node":"bogus"}`+"\n", fsm.SnapshotVersion)
	head.WriteString("DAGUHASNAP")
	head.Write(binary.AppendUvarint(nil, uint64(len(header))))
	head.Write(header)
	const record = 1 << 20
	parts := []io.Reader{&head}
	for written := int64(head.Len()); written < size; written += record {
		parts = append(parts, bytes.NewReader(binary.AppendUvarint([]byte{2}, record)), &filler{b: 0xff, n: record})
	}
	parts = append(parts, bytes.NewReader([]byte{0xff}))
	return newChecksummed(io.MultiReader(parts...))
}

// postArchive restores an archive through a server with a token, and
// returns the status and the API's error message.
func postArchive(t *testing.T, a *clustertest.Agent, token string, body io.Reader) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err := client.New(a.HTTPAddr(), client.Options{Token: token}).RestoreSnapshot(ctx, body)
	var refused *client.Error
	switch {
	case errors.As(err, &refused):
		return refused.Status, refused.Message
	case err != nil:
		t.Fatal(err)
	}
	return http.StatusOK, ""
}

// noRestoreFilesLeft fails if a restore left a temporary file in a data
// directory.
func noRestoreFilesLeft(t *testing.T, c *clustertest.Cluster) {
	t.Helper()
	for _, a := range c.Agents {
		left, err := filepath.Glob(filepath.Join(a.DataDir, "restore-*"))
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 0 {
			t.Errorf("%s: restores left %v behind", a.Name, left)
		}
	}
}

// Acceptance 4 of issue 20, row "100 MB restore": a 100 MB body of
// garbage, and a 100 MB archive that is checksummed and framed right but
// bogus inside, sent to a follower (which spools it and streams it to
// the leader), are refused, and no server's resident memory grows by
// 64 MiB.
func TestRestoreOf100MBKeepsServersMemoryFlat(t *testing.T) {
	c := clustertest.NewCluster(t, clustertest.ClusterOptions{Servers: 3, Token: "full-token", ExtraArgs: []string{"-api-token=full-token", "-cluster-token=restore-test-cluster-token"}})
	// A restore that a kill interrupted left its files behind: a server
	// removes them when it starts.
	for _, a := range c.Agents {
		if err := os.MkdirAll(a.DataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"restore-1.archive", "restore-2.snapshot"} {
			if err := os.WriteFile(filepath.Join(a.DataDir, name), []byte("interrupted"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.WaitLeader(t, 30*time.Second)
	follower := followerOf(c, leader)
	noRestoreFilesLeft(t, c)
	mustEnqueue(t, leader, "before-the-restores", map[string]string{"zone": "nowhere"}, "true")

	rss := func(field string) map[string]int64 {
		out := map[string]int64{}
		for _, a := range c.Agents {
			out[a.Name] = memoryKiB(t, a.Pid(), field)
		}
		return out
	}
	beforeRSS, beforeHWM := rss("VmRSS"), rss("VmHWM")
	const size = 100 << 20
	code, msg := postArchive(t, follower, "full-token", &filler{b: 'x', n: size})
	if code != http.StatusConflict || !strings.Contains(msg, "truncated or altered") {
		t.Fatalf("100 MB of garbage: HTTP %d %q; want 409 truncated or altered", code, msg)
	}
	code, msg = postArchive(t, follower, "full-token", bogusArchive(size))
	if code != http.StatusConflict || !strings.Contains(msg, "run record 1") {
		t.Fatalf("a 100 MB bogus archive: HTTP %d %q; want 409 naming run record 1 (refused by the leader)", code, msg)
	}
	afterRSS, afterHWM := rss("VmRSS"), rss("VmHWM")
	for _, a := range c.Agents {
		growth := afterRSS[a.Name] - beforeRSS[a.Name]
		role := "follower"
		if a == leader {
			role = "leader"
		} else if a == follower {
			role = "follower that took the body"
		}
		t.Logf("%s (%s): VmRSS %d -> %d KiB (%+d KiB), peak VmHWM %d -> %d KiB (%+d KiB)", a.Name, role,
			beforeRSS[a.Name], afterRSS[a.Name], growth, beforeHWM[a.Name], afterHWM[a.Name], afterHWM[a.Name]-beforeHWM[a.Name])
		if growth >= 64<<10 {
			t.Errorf("%s: resident memory grew by %d KiB during two 100 MB restores; want under 64 MiB", a.Name, growth)
		}
	}
	noRestoreFilesLeft(t, c)
	if run, err := getRun(leader, "before-the-restores"); err != nil || run.Status != "queued" {
		t.Fatalf("the refused restores changed the state: %+v %v", run, err)
	}
}

// rewrapArchive returns archive with its snapshot's cluster meta replaced
// by meta and a fresh checksum: an archive as old servers wrote them, with
// a signing key inside, here one an attacker chose.
func rewrapArchive(t *testing.T, archive []byte, meta *daguhav1.ClusterMeta) []byte {
	t.Helper()
	header, snapshot, err := fsm.OpenArchive(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	encoded, _ := json.Marshal(header)
	out.WriteString("DAGUHA-ARCHIVE\n")
	out.Write(append(encoded, '\n'))
	if _, err := fsm.ReplaceClusterMeta(&out, snapshot, meta); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(out.Bytes())
	return append(out.Bytes(), sum[:]...)
}

// Issue 20, row "read-only token": the archive needs a full token and
// holds no signing key; restoring an archive that carries a key (here an
// attacker's) leaves the cluster's own key in force: the leases out keep
// verifying, also on a follower that got the restored state as a Raft
// snapshot and then leads, and a token signed with the archive's key is
// refused.
func TestSnapshotHoldsNoKeyAndRestoreKeepsTheClustersKey(t *testing.T) {
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 3, Token: "full-token", ExtraArgs: []string{
		"-api-token=full-token", "-api-read-token=read-token", "-cluster-token=restore-test-cluster-token", "-lease-ttl=5m",
		"-health-warning=3m", "-health-unhealthy=4m", "-health-offline=5m",
	}})
	leader := c.WaitLeader(t, 30*time.Second)
	follower := followerOf(c, leader)
	for _, id := range []string{"held-a", "held-b"} {
		mustEnqueue(t, leader, id, map[string]string{"only": "test"}, "true")
	}
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", follower.GRPCPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	coordinator := daguhav1.NewCoordinatorServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tasks := map[string]*daguhav1.Task{}
	for len(tasks) < 2 {
		resp, err := coordinator.Poll(ctx, &daguhav1.PollRequest{Worker: &daguhav1.WorkerInfo{Id: "test-worker", Labels: map[string]string{"only": "test"}, MaxActiveRuns: 2}, WaitMillis: 10000})
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		if task := resp.GetTask(); task != nil {
			tasks[task.GetRun().GetId()] = task
		}
	}

	// Saving: a read-only token is refused; a full token's archive holds
	// no cluster meta, so no key.
	if _, err := client.New(follower.HTTPAddr(), client.Options{Token: "read-token"}).SaveSnapshot(ctx); client.StatusCode(err) != http.StatusForbidden {
		t.Fatalf("a read-only token saving a snapshot: %v; want HTTP 403", err)
	}
	stream, err := client.New(follower.HTTPAddr(), client.Options{Token: "full-token"}).SaveSnapshot(ctx)
	if err != nil {
		t.Fatalf("a full token saving a snapshot: %v", err)
	}
	archive, err := io.ReadAll(stream)
	stream.Close()
	if err != nil {
		t.Fatalf("a full token saving a snapshot: %v", err)
	}
	_, snapshot, err := fsm.OpenArchive(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatal(err)
	}
	state, _, err := fsm.ReadSnapshot(snapshot)
	if err != nil {
		t.Fatal(err)
	}
	if meta := state.ClusterMeta(); meta != nil {
		t.Fatalf("the archive holds cluster meta (%d bytes of key)", len(meta.GetSigningKey()))
	}
	if run, err := state.Run("held-a"); err != nil || run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_RUNNING {
		t.Fatalf("the archive's held-a: %v %v", run, err)
	}

	// Restoring an archive that carries an attacker's key.
	attackerKey := []byte("a-key-the-attacker-chose-for-the-archive")
	poisoned := rewrapArchive(t, archive, &daguhav1.ClusterMeta{SigningKey: attackerKey})
	if code, msg := postArchive(t, follower, "read-token", bytes.NewReader(poisoned)); code != http.StatusForbidden {
		t.Fatalf("a read-only token restoring: HTTP %d %q", code, msg)
	}
	if code, msg := postArchive(t, follower, "full-token", bytes.NewReader(poisoned)); code != http.StatusOK {
		t.Fatalf("restore: HTTP %d %q", code, msg)
	}
	noRestoreFilesLeft(t, c)
	attacker, _ := dispatch.NewSigner(attackerKey)
	forge := func(task *daguhav1.Task) string {
		return mustSign(t, attacker, dispatch.LeaseClaims{RunID: task.GetRun().GetId(), Attempt: task.GetRun().GetAttempt(), WorkerID: "test-worker", FencingToken: task.GetRun().GetFencingToken()})
	}
	finish := func(token string) error {
		var err error
		for range 100 {
			_, err = coordinator.FinishRun(ctx, &daguhav1.FinishRunRequest{LeaseToken: token, Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED})
			if status.Code(err) != codes.Unavailable {
				return err
			}
			time.Sleep(100 * time.Millisecond) // a leader is being elected or its dispatcher starting
		}
		return err
	}
	if err := finish(forge(tasks["held-a"])); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a lease token signed with the archive's key after the restore: %v; want PermissionDenied", err)
	}
	if err := finish(tasks["held-a"].GetLeaseToken()); err != nil {
		t.Fatalf("the lease held before the restore no longer verifies: %v", err)
	}

	// A follower that got the restored state as a Raft snapshot leads,
	// and verifies the other lease with the cluster's key.
	next := followerOf(c, leader)
	var moved map[string]string
	if code, err := leader.PostJSON("/api/v2/operator/raft/transfer-leadership", map[string]string{"id": next.Name}, &moved); err != nil || code != 200 {
		t.Fatalf("transfer leadership to %s: HTTP %d %v", next.Name, code, err)
	}
	clustertest.WaitFor(t, 30*time.Second, next.Name+" to lead", func() (bool, string) {
		h, err := next.Health()
		return err == nil && h.Role == "leader", fmt.Sprintf("%+v %v", h, err)
	})
	if err := finish(forge(tasks["held-b"])); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a token signed with the archive's key on the new leader: %v; want PermissionDenied", err)
	}
	if err := finish(tasks["held-b"].GetLeaseToken()); err != nil {
		t.Fatalf("the new leader does not verify a lease signed before the restore: %v", err)
	}
	waitFinished(t, c, []string{"held-a", "held-b"}, "succeeded", 30*time.Second)
}
