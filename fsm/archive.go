package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// An archive is a snapshot taken for an operator (`daguha snapshot save`):
//
//	"DAGUHA-ARCHIVE\n" | header JSON | "\n" | snapshot stream | SHA-256 of all before
//
// The checksum lets `inspect` and `restore` refuse a truncated or altered
// file before anything reads its records. Archives leave the servers, so
// they carry no secrets: the cluster's signing key stays out.
const archiveMagic = "DAGUHA-ARCHIVE\n"

// maxArchiveHeader bounds the header line: it is a few dozen bytes of
// JSON, and a file without a newline near its start is no archive.
const maxArchiveHeader = 64 << 10

// ArchiveHeader describes an archive.
type ArchiveHeader struct {
	Version   int    `json:"version"`
	Index     uint64 `json:"index"`
	Term      uint64 `json:"term"`
	Node      string `json:"node"`
	CreatedAt string `json:"created_at"`
}

// WriteArchive writes state as an archive to w. secrets is WithoutSecrets
// for every archive an operator gets; only the security suite's broken
// build (identity.Enforced false) asks for the signing key in it.
func WriteArchive(w io.Writer, header ArchiveHeader, state *store.StateStore, lastApplied uint64, secrets Secrets) error {
	header.Version = SnapshotVersion
	sum := sha256.New()
	out := io.MultiWriter(w, sum)
	encoded, err := json.Marshal(header)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(out, archiveMagic); err != nil {
		return err
	}
	if _, err := out.Write(append(encoded, '\n')); err != nil {
		return err
	}
	if err := writeSnapshot(out, state, lastApplied, secrets); err != nil {
		return err
	}
	_, err = w.Write(sum.Sum(nil))
	return err
}

// ErrCorruptArchive is returned for an archive whose checksum or layout
// is wrong.
var ErrCorruptArchive = errors.New("snapshot archive is truncated or altered")

// OpenArchive checks an archive's layout and checksum, reading it once
// from start to end without holding it in memory, and returns its header
// and the snapshot stream inside it (a window onto archive).
func OpenArchive(archive io.ReaderAt, size int64) (ArchiveHeader, *io.SectionReader, error) {
	var header ArchiveHeader
	if size < int64(len(archiveMagic)+sha256.Size) {
		return header, nil, fmt.Errorf("%w: not a daguha snapshot archive (%d bytes)", ErrCorruptArchive, size)
	}
	magic := make([]byte, len(archiveMagic))
	if _, err := archive.ReadAt(magic, 0); err != nil {
		return header, nil, fmt.Errorf("read snapshot archive: %w", err)
	}
	if string(magic) != archiveMagic {
		return header, nil, fmt.Errorf("%w: not a daguha snapshot archive", ErrCorruptArchive)
	}
	bodySize := size - sha256.Size
	sum := make([]byte, sha256.Size)
	if _, err := archive.ReadAt(sum, bodySize); err != nil {
		return header, nil, fmt.Errorf("read snapshot archive: %w", err)
	}
	hash := sha256.New()
	if _, err := io.Copy(hash, io.NewSectionReader(archive, 0, bodySize)); err != nil {
		return header, nil, fmt.Errorf("read snapshot archive: %w", err)
	}
	if !bytes.Equal(hash.Sum(nil), sum) {
		return header, nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptArchive)
	}
	window := make([]byte, min(maxArchiveHeader, bodySize-int64(len(archiveMagic))))
	if _, err := archive.ReadAt(window, int64(len(archiveMagic))); err != nil && !errors.Is(err, io.EOF) {
		return header, nil, fmt.Errorf("read snapshot archive: %w", err)
	}
	end := bytes.IndexByte(window, '\n')
	if end < 0 {
		return header, nil, fmt.Errorf("%w: no header line in the first %d bytes", ErrCorruptArchive, len(window))
	}
	line := window[:end+1]
	if err := json.Unmarshal(line[:len(line)-1], &header); err != nil {
		return header, nil, fmt.Errorf("%w: header: %v", ErrCorruptArchive, err)
	}
	if header.Version != SnapshotVersion {
		return header, nil, fmt.Errorf("snapshot archive version %d is not supported (this server reads version %d)", header.Version, SnapshotVersion)
	}
	start := int64(len(archiveMagic) + len(line))
	return header, io.NewSectionReader(archive, start, bodySize-start), nil
}

// ArchiveCounts are the records per table in a snapshot.
type ArchiveCounts struct {
	Runs        int  `json:"runs"`
	Workers     int  `json:"workers"`
	Dags        int  `json:"dags"`
	Schedules   int  `json:"schedules"`
	ClusterMeta bool `json:"cluster_meta"`
}

// InspectArchive checks an archive fully (the checksum, then every record
// decodes into a store) and counts its records.
func InspectArchive(archive io.ReaderAt, size int64) (ArchiveHeader, ArchiveCounts, error) {
	header, snapshot, err := OpenArchive(archive, size)
	if err != nil {
		return header, ArchiveCounts{}, err
	}
	counts, err := CheckSnapshot(snapshot)
	return header, counts, err
}

// CheckSnapshot reads a snapshot stream into a store that it then drops,
// so a restore meets no record Raft's restore would fail on (a failure
// there stops the server), and counts the records.
func CheckSnapshot(snapshot io.Reader) (ArchiveCounts, error) {
	state, _, err := ReadSnapshot(snapshot)
	if err != nil {
		return ArchiveCounts{}, fmt.Errorf("%w: %v", ErrCorruptArchive, err)
	}
	var counts ArchiveCounts
	_ = state.EachRun(func(*daguhav1.Run) bool { counts.Runs++; return true })
	_ = state.EachWorker(func(*daguhav1.Worker) bool { counts.Workers++; return true })
	_ = state.EachDag(func(*daguhav1.StoredDag) bool { counts.Dags++; return true })
	_ = state.EachSchedule(func(*daguhav1.ScheduleRecord) bool { counts.Schedules++; return true })
	counts.ClusterMeta = state.ClusterMeta() != nil
	return counts, nil
}
