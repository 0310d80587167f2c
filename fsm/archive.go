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
// file before anything reads its records.
const archiveMagic = "DAGUHA-ARCHIVE\n"

// ArchiveHeader describes an archive.
type ArchiveHeader struct {
	Version   int    `json:"version"`
	Index     uint64 `json:"index"`
	Term      uint64 `json:"term"`
	Node      string `json:"node"`
	CreatedAt string `json:"created_at"`
}

// WriteArchive writes state as an archive to w.
func WriteArchive(w io.Writer, header ArchiveHeader, state *store.StateStore, lastApplied uint64) error {
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
	if err := WriteSnapshot(out, state, lastApplied); err != nil {
		return err
	}
	_, err = w.Write(sum.Sum(nil))
	return err
}

// ErrCorruptArchive is returned for an archive whose checksum or layout
// is wrong.
var ErrCorruptArchive = errors.New("snapshot archive is truncated or altered")

// ReadArchive checks an archive and returns its header and the snapshot
// stream inside it.
func ReadArchive(data []byte) (ArchiveHeader, []byte, error) {
	var header ArchiveHeader
	if len(data) < len(archiveMagic)+sha256.Size || !bytes.HasPrefix(data, []byte(archiveMagic)) {
		return header, nil, fmt.Errorf("%w: not a daguha snapshot archive", ErrCorruptArchive)
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return header, nil, fmt.Errorf("%w: checksum mismatch", ErrCorruptArchive)
	}
	rest := body[len(archiveMagic):]
	line, snapshot, ok := bytes.Cut(rest, []byte("\n"))
	if !ok {
		return header, nil, fmt.Errorf("%w: no header", ErrCorruptArchive)
	}
	if err := json.Unmarshal(line, &header); err != nil {
		return header, nil, fmt.Errorf("%w: header: %v", ErrCorruptArchive, err)
	}
	if header.Version != SnapshotVersion {
		return header, nil, fmt.Errorf("snapshot archive version %d is not supported (this server reads version %d)", header.Version, SnapshotVersion)
	}
	return header, snapshot, nil
}

// ArchiveCounts are the records per table in a snapshot.
type ArchiveCounts struct {
	Runs        int  `json:"runs"`
	Workers     int  `json:"workers"`
	Dags        int  `json:"dags"`
	Schedules   int  `json:"schedules"`
	ClusterMeta bool `json:"cluster_meta"`
}

// InspectArchive checks an archive fully (every record decodes) and
// counts its records.
func InspectArchive(data []byte) (ArchiveHeader, ArchiveCounts, error) {
	header, snapshot, err := ReadArchive(data)
	if err != nil {
		return header, ArchiveCounts{}, err
	}
	state, _, err := ReadSnapshot(bytes.NewReader(snapshot))
	if err != nil {
		return header, ArchiveCounts{}, fmt.Errorf("%w: %v", ErrCorruptArchive, err)
	}
	var counts ArchiveCounts
	_ = state.EachRun(func(*daguhav1.Run) bool { counts.Runs++; return true })
	_ = state.EachWorker(func(*daguhav1.Worker) bool { counts.Workers++; return true })
	_ = state.EachDag(func(*daguhav1.StoredDag) bool { counts.Dags++; return true })
	_ = state.EachSchedule(func(*daguhav1.ScheduleRecord) bool { counts.Schedules++; return true })
	counts.ClusterMeta = state.ClusterMeta() != nil
	return header, counts, nil
}
