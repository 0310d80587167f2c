package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/fsm"
	"github.com/daguha/daguha/ops/api"
	"github.com/daguha/daguha/ops/wire"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// clusterKey is the signing key the test cluster "made up".
var clusterKey = []byte("this-clusters-own-made-up-signing-key")

// startKeyedAPI is one in-process server whose state holds clusterKey,
// behind an API with a full and a read-only token. Temporary files of
// restores go to the directory it returns (an in-memory server has no
// data directory: it uses the system's temporary one).
func startKeyedAPI(t *testing.T) (*httptest.Server, *cluster.Server, string) {
	t.Helper()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second).Server
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := leader.Apply(ctx, fsm.SetClusterMetaType, &daguhav1.SetClusterMetaCommand{Meta: &daguhav1.ClusterMeta{SigningKey: clusterKey}}); err != nil {
		t.Fatal(err)
	}
	handler := newAPI(t, leader, nil, api.Options{Tokens: []string{"full-token"}, ReadTokens: []string{"read-token"}})
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv, leader, tmp
}

func send(t *testing.T, srv *httptest.Server, method, token string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+"/api/v2/operator/snapshot", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

func errorOf(body []byte) string {
	var answer wire.Error
	_ = json.Unmarshal(body, &answer)
	return answer.Error
}

func TestSnapshotSaveNeedsAFullTokenAndHoldsNoKey(t *testing.T) {
	srv, _, _ := startKeyedAPI(t)
	code, body := send(t, srv, "GET", "read-token", nil)
	if code != http.StatusForbidden || !strings.Contains(errorOf(body), "full API token") {
		t.Fatalf("a read-only token saving a snapshot: HTTP %d (%d bytes, error %q); want 403 naming the full token", code, len(body), errorOf(body))
	}
	if bytes.Contains(body, clusterKey) {
		t.Fatal("the refusal holds the signing key")
	}
	code, archive := send(t, srv, "GET", "full-token", nil)
	if code != http.StatusOK {
		t.Fatalf("a full token saving a snapshot: HTTP %d %s", code, archive)
	}
	if _, _, err := fsm.InspectArchive(bytes.NewReader(archive), int64(len(archive))); err != nil {
		t.Fatalf("the archive saved: %v", err)
	}
	if bytes.Contains(archive, clusterKey) {
		t.Fatal("the archive holds the cluster's signing key")
	}
}

// oldArchive is an archive of another cluster's state, as servers before
// this rule wrote them: with that cluster's signing key in it.
func oldArchive(t *testing.T, key []byte, runs ...string) []byte {
	t.Helper()
	f, err := fsm.New()
	if err != nil {
		t.Fatal(err)
	}
	var batch []*daguhav1.Run
	for _, id := range runs {
		batch = append(batch, &daguhav1.Run{Id: id, DagName: "d"})
	}
	enqueue, err := fsm.Encode(fsm.EnqueueRunsType, &daguhav1.EnqueueRunsCommand{Runs: batch})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := fsm.Encode(fsm.SetClusterMetaType, &daguhav1.SetClusterMetaCommand{Meta: &daguhav1.ClusterMeta{SigningKey: key}})
	if err != nil {
		t.Fatal(err)
	}
	for i, command := range [][]byte{enqueue, meta} {
		f.Apply(&raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: command})
	}
	var buf bytes.Buffer
	if err := fsm.WriteArchive(&buf, fsm.ArchiveHeader{Index: 2, Term: 1, Node: "old"}, f.State(), 2, fsm.WithSecrets); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), key) {
		t.Fatal("the old archive lacks its key")
	}
	return buf.Bytes()
}

func leftIn(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestSnapshotRestoreKeepsTheClustersKeyAndLeavesNoFiles(t *testing.T) {
	srv, server, tmp := startKeyedAPI(t)
	otherKey := []byte("another-clusters-signing-key-from-an-old-archive")
	archive := oldArchive(t, otherKey, "restored-1", "restored-2")

	if code, body := send(t, srv, "POST", "read-token", bytes.NewReader(archive)); code != http.StatusForbidden {
		t.Fatalf("a read-only token restoring: HTTP %d %s", code, body)
	}
	code, body := send(t, srv, "POST", "full-token", bytes.NewReader(archive))
	if code != http.StatusOK {
		t.Fatalf("restore: HTTP %d %s", code, body)
	}
	state := server.FSM().State()
	if run, err := state.Run("restored-2"); err != nil || run == nil {
		t.Fatalf("the archive's runs are not in the state: %v %v", run, err)
	}
	if got := state.ClusterMeta().GetSigningKey(); !bytes.Equal(got, clusterKey) {
		t.Fatalf("after the restore the signing key is %q, want the cluster's own", got)
	}
	if left := leftIn(t, tmp); len(left) != 0 {
		t.Fatalf("a restore left files behind: %v", left)
	}

	for _, bad := range []struct {
		name, want string
		body       []byte
	}{
		{"garbage", "truncated or altered", bytes.Repeat([]byte("garbage!"), 1<<16)},
		{"truncated", "truncated or altered", archive[:len(archive)-1]},
	} {
		code, body := send(t, srv, "POST", "full-token", bytes.NewReader(bad.body))
		if code != http.StatusConflict || !strings.Contains(errorOf(body), bad.want) {
			t.Fatalf("restore of %s: HTTP %d %s; want 409 %q", bad.name, code, body, bad.want)
		}
		if left := leftIn(t, tmp); len(left) != 0 {
			t.Fatalf("a refused restore of %s left files behind: %v", bad.name, left)
		}
	}
}

func TestSnapshotRestoreRefusesAnArchiveOverTheLimit(t *testing.T) {
	srv, _, tmp := startKeyedAPI(t)
	code, body := send(t, srv, "POST", "full-token", io.LimitReader(zeros{}, cluster.MaxArchiveBytes+1))
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(errorOf(body), "256 MiB") {
		t.Fatalf("an archive one byte over the limit: HTTP %d %s; want 413 naming the limit", code, body)
	}
	if left := leftIn(t, tmp); len(left) != 0 {
		t.Fatalf("a refused restore left files behind: %v", left)
	}
}

// zeros reads as an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
