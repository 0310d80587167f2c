package fsm_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// madeKey stands for the signing key a leader makes up: long and
// distinctive, so a search of the bytes cannot find it by chance.
var madeKey = []byte("made-up-signing-key-0123456789abcdef")

// keyedState is smallState with madeKey as the cluster's signing key.
func keyedState(t *testing.T) *fsm.FSM {
	t.Helper()
	f := smallState(t, false)
	f.Apply(entry(4, encode(t, fsm.SetClusterMetaType, &daguhav1.SetClusterMetaCommand{Meta: &daguhav1.ClusterMeta{SigningKey: madeKey}})))
	return f
}

func archiveBytes(t *testing.T, f *fsm.FSM, secrets fsm.Secrets) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := fsm.WriteArchive(&buf, fsm.ArchiveHeader{Index: f.LastApplied(), Term: 1, Node: "n1"}, f.State(), f.LastApplied(), secrets); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func inspect(data []byte) (fsm.ArchiveHeader, fsm.ArchiveCounts, error) {
	return fsm.InspectArchive(bytes.NewReader(data), int64(len(data)))
}

func TestArchiveForOperatorsHoldsNoSigningKey(t *testing.T) {
	f := keyedState(t)
	archive := archiveBytes(t, f, fsm.WithoutSecrets)
	if bytes.Contains(archive, madeKey) {
		t.Fatal("the operator's archive holds the signing key")
	}
	header, counts, err := inspect(archive)
	if err != nil {
		t.Fatal(err)
	}
	if counts.ClusterMeta || counts.Runs != 3 || counts.Workers != 1 || header.Index != 4 {
		t.Fatalf("archive holds %+v at %+v; want 3 runs, 1 worker, no cluster meta, index 4", counts, header)
	}
	// The search above can fail: the same state with secrets has the key.
	if !bytes.Contains(archiveBytes(t, f, fsm.WithSecrets), madeKey) {
		t.Fatal("an archive with secrets lacks the key: the search proves nothing")
	}
}

func TestRaftSnapshotCarriesTheMadeKeyToFollowers(t *testing.T) {
	leader := keyedState(t)
	snap, err := leader.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memorySink{}
	if err := snap.Persist(sink); err != nil || !sink.closed {
		t.Fatalf("persist: %v (closed %v)", err, sink.closed)
	}
	if !bytes.Contains(sink.Bytes(), madeKey) {
		t.Fatal("Raft's snapshot lacks the signing key")
	}
	follower := newFSM(t)
	if err := follower.Restore(readCloser(sink.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got := follower.State().ClusterMeta().GetSigningKey(); !bytes.Equal(got, madeKey) {
		t.Fatalf("a follower restored from Raft's snapshot has signing key %q, want the leader's", got)
	}
}

// snapshotOf returns the snapshot stream inside an archive.
func snapshotOf(t *testing.T, archive []byte) []byte {
	t.Helper()
	_, section, err := fsm.OpenArchive(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(section); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReplaceClusterMetaKeepsTheRestoringClustersKey(t *testing.T) {
	ours := &daguhav1.ClusterMeta{SigningKey: []byte("the-restoring-clusters-own-key")}
	oldArchive := snapshotOf(t, archiveBytes(t, keyedState(t), fsm.WithSecrets))
	newArchive := snapshotOf(t, archiveBytes(t, keyedState(t), fsm.WithoutSecrets))
	cases := []struct {
		name     string
		snapshot []byte
		meta     *daguhav1.ClusterMeta
		want     *daguhav1.ClusterMeta
	}{
		{"an old archive's key gives way to ours", oldArchive, ours, ours},
		{"an archive without key takes ours", newArchive, ours, ours},
		{"an old archive's key is dropped when we have none", oldArchive, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			n, err := fsm.ReplaceClusterMeta(&out, bytes.NewReader(tc.snapshot), tc.meta)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(out.Len()) {
				t.Fatalf("said %d bytes, wrote %d", n, out.Len())
			}
			if bytes.Contains(out.Bytes(), madeKey) {
				t.Fatal("the archive's key survived")
			}
			state, last, err := fsm.ReadSnapshot(bytes.NewReader(out.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(state.ClusterMeta(), tc.want) {
				t.Fatalf("restored meta %v, want %v", state.ClusterMeta(), tc.want)
			}
			if last != 4 || len(allRuns(t, state)) != 3 || len(allWorkers(t, state)) != 1 {
				t.Fatal("records were lost on the way")
			}
		})
	}
}

func TestReplaceClusterMetaRefusesBadFraming(t *testing.T) {
	good := snapshotOf(t, archiveBytes(t, keyedState(t), fsm.WithoutSecrets))
	withRecord := func(record ...byte) []byte {
		return append(append(append([]byte(nil), good[:len(good)-1]...), record...), 0xff)
	}
	cases := []struct {
		name, wantErr string
		stream        []byte
	}{
		{"wrong magic", "not a daguha snapshot", append([]byte("NOTASNAPSH"), good[10:]...)},
		{"no end marker", "without end marker", good[:len(good)-1]},
		{"data after the end marker", "after its end marker", append(append([]byte(nil), good...), 0)},
		{"an unknown record type", "record type 66 is unknown", withRecord(0x42, 0)},
		{"a record longer than the limit", "exceeds", withRecord(recordRun, 0x80, 0x80, 0x80, 0x80, 0x10)},
		{"a record cut short", "unexpected EOF", append(append([]byte(nil), good[:len(good)-1]...), recordRun, 10, 1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fsm.ReplaceClusterMeta(&bytes.Buffer{}, bytes.NewReader(tc.stream), nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestOpenArchiveRefusesDamagedFiles(t *testing.T) {
	good := archiveBytes(t, keyedState(t), fsm.WithoutSecrets)
	resum := func(body []byte) []byte {
		sum := sha256.Sum256(body)
		return append(append([]byte(nil), body...), sum[:]...)
	}
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 0x20
	noNewline := resum([]byte("DAGUHA-ARCHIVE\n" + strings.Repeat("x", 70<<10)))
	futureVersion := resum([]byte("DAGUHA-ARCHIVE\n{\"version\":99}\nDAGUHASNAP"))
	// A checksum that matches over a snapshot that does not: only the
	// full check finds it.
	badSnapshot := resum([]byte("DAGUHA-ARCHIVE\n{\"version\":2}\nDAGUHASNAPgarbage"))
	cases := []struct {
		name, wantErr string
		data          []byte
	}{
		{"empty", "not a daguha snapshot archive", nil},
		{"wrong magic", "not a daguha snapshot archive", append([]byte("NOT-AN-ARCHIVE\n"), good[15:]...)},
		{"truncated", "checksum mismatch", good[:len(good)-10]},
		{"altered", "checksum mismatch", flipped},
		{"no header line", "no header line", noNewline},
		{"a future version", "version 99 is not supported", futureVersion},
		{"a bad snapshot inside", "snapshot header", badSnapshot},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := inspect(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if tc.name != "a future version" && !errors.Is(err, fsm.ErrCorruptArchive) {
				t.Fatalf("error %v is not ErrCorruptArchive", err)
			}
		})
	}
}
