package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// Snapshot stream format, version 2 (version 1 had no DAG or schedule
// records, and is still read):
//
//	magic "DAGUHASNAP" | uvarint header length | SnapshotHeader
//	then per record: record type byte | uvarint length | protobuf body
//	then the end marker byte.
//
// Records are written table by table in index order, so two stores with
// equal contents write byte-equal snapshots.
const (
	snapshotMagic   = "DAGUHASNAP"
	SnapshotVersion = 2

	recordTableIndex  byte = 1
	recordRun         byte = 2
	recordWorker      byte = 3
	recordClusterMeta byte = 4
	recordDag         byte = 5
	recordSchedule    byte = 6
	recordEnd         byte = 0xff

	// maxRecordSize bounds one record so a damaged length cannot make a
	// restore allocate without limit.
	maxRecordSize = 64 << 20
)

type snapshot struct {
	state       *store.StateStore
	lastApplied uint64
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := WriteSnapshot(sink, s.state, s.lastApplied); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// Secrets says whether a snapshot carries the cluster's secrets: the
// signing key the first leader made up (ClusterMeta.signing_key).
type Secrets bool

const (
	// WithSecrets is for Raft's own snapshots, which go only from server
	// to server: a follower that catches up from one must verify the
	// lease tokens the leader signed, and lead with the same key later.
	WithSecrets Secrets = true
	// WithoutSecrets is for archives handed to operators: whoever reads
	// one must not be able to sign lease tokens.
	WithoutSecrets Secrets = false
)

// WriteSnapshot streams state to w with everything in it, secrets
// included: it is Raft's snapshot, sent only between servers.
func WriteSnapshot(w io.Writer, state *store.StateStore, lastApplied uint64) error {
	return writeSnapshot(w, state, lastApplied, WithSecrets)
}

func writeSnapshot(w io.Writer, state *store.StateStore, lastApplied uint64, secrets Secrets) error {
	buf := bufio.NewWriterSize(w, 256<<10)
	header := &daguhav1.SnapshotHeader{Version: SnapshotVersion, LastIndex: lastApplied}
	if err := state.EachRun(func(*daguhav1.Run) bool { header.Runs++; return true }); err != nil {
		return err
	}
	if err := state.EachWorker(func(*daguhav1.Worker) bool { header.Workers++; return true }); err != nil {
		return err
	}
	if err := state.EachDag(func(*daguhav1.StoredDag) bool { header.Dags++; return true }); err != nil {
		return err
	}
	if err := state.EachSchedule(func(*daguhav1.ScheduleRecord) bool { header.Schedules++; return true }); err != nil {
		return err
	}
	if _, err := buf.WriteString(snapshotMagic); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := writeFrame(buf, nil, header); err != nil {
		return err
	}
	var writeErr error
	if err := state.EachTableIndex(func(entry *daguhav1.TableIndex) bool {
		writeErr = writeFrame(buf, []byte{recordTableIndex}, entry)
		return writeErr == nil
	}); err != nil {
		return err
	}
	if writeErr != nil {
		return writeErr
	}
	if err := state.EachRun(func(run *daguhav1.Run) bool {
		writeErr = writeFrame(buf, []byte{recordRun}, run)
		return writeErr == nil
	}); err != nil {
		return err
	}
	if writeErr != nil {
		return writeErr
	}
	if err := state.EachWorker(func(w *daguhav1.Worker) bool {
		writeErr = writeFrame(buf, []byte{recordWorker}, w)
		return writeErr == nil
	}); err != nil {
		return err
	}
	if writeErr != nil {
		return writeErr
	}
	if err := state.EachDag(func(dag *daguhav1.StoredDag) bool {
		writeErr = writeFrame(buf, []byte{recordDag}, dag)
		return writeErr == nil
	}); err != nil {
		return err
	}
	if writeErr != nil {
		return writeErr
	}
	if err := state.EachSchedule(func(record *daguhav1.ScheduleRecord) bool {
		writeErr = writeFrame(buf, []byte{recordSchedule}, record)
		return writeErr == nil
	}); err != nil {
		return err
	}
	if writeErr != nil {
		return writeErr
	}
	if meta := clusterMetaFor(state.ClusterMeta(), secrets); meta != nil {
		if err := writeFrame(buf, []byte{recordClusterMeta}, meta); err != nil {
			return err
		}
	}
	if err := buf.WriteByte(recordEnd); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := buf.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// clusterMetaFor returns the cluster meta a snapshot may carry: all of it
// with secrets, else a copy without the signing key, or nil when nothing
// is left to write.
func clusterMetaFor(meta *daguhav1.ClusterMeta, secrets Secrets) *daguhav1.ClusterMeta {
	if meta == nil || secrets == WithSecrets {
		return meta
	}
	redacted := proto.Clone(meta).(*daguhav1.ClusterMeta)
	redacted.SigningKey = nil
	if proto.Size(redacted) == 0 {
		return nil
	}
	return redacted
}

func writeFrame(w *bufio.Writer, prefix []byte, msg proto.Message) error {
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode snapshot record: %w", err)
	}
	frame := append(prefix, binary.AppendUvarint(nil, uint64(len(body)))...)
	if _, err := w.Write(frame); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// ReadSnapshot reads a snapshot stream into a new state store and returns
// it with the index of the last command it contains.
func ReadSnapshot(r io.Reader) (*store.StateStore, uint64, error) {
	defer collectLessDuringRestore()()
	buf := bufio.NewReaderSize(r, 256<<10)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(buf, magic); err != nil {
		return nil, 0, fmt.Errorf("read snapshot magic: %w", err)
	}
	if string(magic) != snapshotMagic {
		return nil, 0, fmt.Errorf("not a daguha snapshot (magic %q)", magic)
	}
	header := &daguhav1.SnapshotHeader{}
	if err := readBody(buf, header); err != nil {
		return nil, 0, fmt.Errorf("snapshot header: %w", err)
	}
	if header.GetVersion() < 1 || header.GetVersion() > SnapshotVersion {
		return nil, 0, fmt.Errorf("snapshot version %d is not supported (this server reads version %d)", header.GetVersion(), SnapshotVersion)
	}
	restore, err := store.NewRestore()
	if err != nil {
		return nil, 0, err
	}
	if err := readRecords(buf, restore, header); err != nil {
		restore.Abort()
		return nil, 0, err
	}
	state, err := restore.Commit()
	if err != nil {
		return nil, 0, err
	}
	return state, header.GetLastIndex(), nil
}

// record is one decoded record of a snapshot's body.
type record struct {
	kind byte
	msg  proto.Message
}

// recordBatch is how many decoded records go from the decoder to the
// inserter at a time.
const recordBatch = 512

// readRecords reads every record after the header into restore and checks
// the counts against the header. Reading and decoding the records runs on
// a goroutine of its own, a batch ahead of the inserts into the store, so
// a restore uses two cores where it has them: for a large snapshot,
// decoding is a sixth of the work and the inserts most of the rest.
func readRecords(buf *bufio.Reader, restore *store.Restore, header *daguhav1.SnapshotHeader) error {
	batches := make(chan []record, 4)
	stop := make(chan struct{})
	decodeErr := make(chan error, 1)
	go func() {
		defer close(batches)
		decodeErr <- decodeRecords(buf, batches, stop)
	}()
	err := insertRecords(batches, restore, header)
	// Whether the inserts ended at the end marker or at a bad record, the
	// decoder stops and is waited for: a restore leaves no goroutine.
	close(stop)
	for range batches {
	}
	if derr := <-decodeErr; derr != nil {
		return derr
	}
	return err
}

// decodeRecords reads and decodes records until the end marker (which it
// passes on as the last record), an error, or stop.
func decodeRecords(buf *bufio.Reader, out chan<- []record, stop <-chan struct{}) error {
	var runs, workers, dags, schedules uint64
	batch := make([]record, 0, recordBatch)
	send := func() bool {
		select {
		case out <- batch:
			batch = make([]record, 0, recordBatch)
			return true
		case <-stop:
			return false
		}
	}
	for {
		kind, err := buf.ReadByte()
		if err != nil {
			send()
			return fmt.Errorf("snapshot ends without end marker after %d runs: %w", runs, err)
		}
		var msg proto.Message
		var what string
		switch kind {
		case recordEnd:
			batch = append(batch, record{kind: kind})
			send()
			return nil
		case recordTableIndex:
			msg, what = &daguhav1.TableIndex{}, "snapshot table index record"
		case recordRun:
			runs++
			msg, what = &daguhav1.Run{}, fmt.Sprintf("snapshot run record %d", runs)
		case recordWorker:
			workers++
			msg, what = &daguhav1.Worker{}, fmt.Sprintf("snapshot worker record %d", workers)
		case recordClusterMeta:
			msg, what = &daguhav1.ClusterMeta{}, "snapshot cluster meta record"
		case recordDag:
			dags++
			msg, what = &daguhav1.StoredDag{}, fmt.Sprintf("snapshot DAG record %d", dags)
		case recordSchedule:
			schedules++
			msg, what = &daguhav1.ScheduleRecord{}, fmt.Sprintf("snapshot schedule record %d", schedules)
		default:
			send()
			return fmt.Errorf("snapshot record type %d is unknown", kind)
		}
		if err := readBody(buf, msg); err != nil {
			send()
			return fmt.Errorf("%s: %w", what, err)
		}
		batch = append(batch, record{kind: kind, msg: msg})
		if len(batch) == recordBatch && !send() {
			return nil
		}
	}
}

// insertRecords puts decoded records into restore until the end marker,
// then checks the counts against the header. It returns nil without the
// end marker only when the decoder stopped with an error of its own.
func insertRecords(batches <-chan []record, restore *store.Restore, header *daguhav1.SnapshotHeader) error {
	var runs, workers, dags, schedules uint64
	for batch := range batches {
		for _, rec := range batch {
			var err error
			switch rec.kind {
			case recordEnd:
				if runs != header.GetRuns() {
					return fmt.Errorf("snapshot has %d runs, header says %d", runs, header.GetRuns())
				}
				if workers != header.GetWorkers() {
					return fmt.Errorf("snapshot has %d workers, header says %d", workers, header.GetWorkers())
				}
				if dags != header.GetDags() || schedules != header.GetSchedules() {
					return fmt.Errorf("snapshot has %d DAGs and %d schedules, header says %d and %d", dags, schedules, header.GetDags(), header.GetSchedules())
				}
				return nil
			case recordTableIndex:
				err = restore.TableIndex(rec.msg.(*daguhav1.TableIndex))
			case recordRun:
				err = restore.Run(rec.msg.(*daguhav1.Run))
				runs++
			case recordWorker:
				err = restore.Worker(rec.msg.(*daguhav1.Worker))
				workers++
			case recordClusterMeta:
				err = restore.ClusterMeta(rec.msg.(*daguhav1.ClusterMeta))
			case recordDag:
				err = restore.Dag(rec.msg.(*daguhav1.StoredDag))
				dags++
			case recordSchedule:
				err = restore.Schedule(rec.msg.(*daguhav1.ScheduleRecord))
				schedules++
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func readBody(r *bufio.Reader, msg proto.Message) error {
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return fmt.Errorf("read length: %w", err)
	}
	if size > maxRecordSize {
		return fmt.Errorf("record of %d bytes exceeds the %d byte limit", size, maxRecordSize)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("read %d byte record: %w", size, err)
	}
	return proto.Unmarshal(body, msg)
}

// restoreGCPercent is the garbage collector's target while a snapshot is
// read. A restore builds the whole state at once and nearly all it
// allocates stays live, so collecting at the usual pace (GOGC=100) is
// mostly wasted: it took a third of the CPU of a 1,000,000-run restore,
// and 400 cut the restore from 14.3 s to 9.9 s in one benchmark run
// (docs/performance.md), at the cost of a higher memory peak while it
// lasts.
const restoreGCPercent = 400

// collectLessDuringRestore raises the GC target for a restore and returns
// what puts it back. A target already higher (or GC off) is left alone.
func collectLessDuringRestore() func() {
	old := debug.SetGCPercent(restoreGCPercent)
	if old < 0 || old >= restoreGCPercent {
		debug.SetGCPercent(old)
		return func() {}
	}
	return func() { debug.SetGCPercent(old) }
}

// ReplaceClusterMeta copies the snapshot stream r to w with its cluster
// meta records taken out and meta (when not nil) put in their place, and
// returns how many bytes it wrote. A restore goes through it so that the
// restored cluster keeps its own settings, its signing key above all,
// whatever the archive carries: lease tokens out in the cluster go on
// verifying, and an archive cannot bring in a key its maker chose.
//
// It checks the stream's framing as it copies (the magic, known record
// types, lengths within bounds, the end marker last); ReadSnapshot checks
// the records themselves.
func ReplaceClusterMeta(w io.Writer, r io.Reader, meta *daguhav1.ClusterMeta) (int64, error) {
	in := bufio.NewReaderSize(r, 256<<10)
	counter := &countingWriter{w: w}
	out := bufio.NewWriterSize(counter, 256<<10)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(in, magic); err != nil {
		return 0, fmt.Errorf("read snapshot magic: %w", err)
	}
	if string(magic) != snapshotMagic {
		return 0, fmt.Errorf("not a daguha snapshot (magic %q)", magic)
	}
	if _, err := out.Write(magic); err != nil {
		return 0, fmt.Errorf("write snapshot: %w", err)
	}
	if err := copyBody(out, in, "snapshot header"); err != nil {
		return 0, err
	}
	for {
		kind, err := in.ReadByte()
		if err != nil {
			return 0, fmt.Errorf("snapshot ends without end marker: %w", err)
		}
		switch kind {
		case recordEnd:
			if _, err := in.ReadByte(); err != io.EOF {
				return 0, errors.New("snapshot has data after its end marker")
			}
			if meta != nil {
				if err := writeFrame(out, []byte{recordClusterMeta}, meta); err != nil {
					return 0, err
				}
			}
			if err := out.WriteByte(recordEnd); err != nil {
				return 0, fmt.Errorf("write snapshot: %w", err)
			}
			if err := out.Flush(); err != nil {
				return 0, fmt.Errorf("write snapshot: %w", err)
			}
			return counter.n, nil
		case recordClusterMeta:
			if err := copyBody(io.Discard, in, "snapshot cluster meta record"); err != nil {
				return 0, err
			}
		case recordTableIndex, recordRun, recordWorker, recordDag, recordSchedule:
			if err := out.WriteByte(kind); err != nil {
				return 0, fmt.Errorf("write snapshot: %w", err)
			}
			if err := copyBody(out, in, fmt.Sprintf("snapshot record of type %d", kind)); err != nil {
				return 0, err
			}
		default:
			return 0, fmt.Errorf("snapshot record type %d is unknown", kind)
		}
	}
}

// copyBody copies one length-prefixed body from in to out unread.
func copyBody(out io.Writer, in *bufio.Reader, what string) error {
	size, err := binary.ReadUvarint(in)
	if err != nil {
		return fmt.Errorf("%s: read length: %w", what, err)
	}
	if size > maxRecordSize {
		return fmt.Errorf("%s: record of %d bytes exceeds the %d byte limit", what, size, maxRecordSize)
	}
	if _, err := out.Write(binary.AppendUvarint(nil, size)); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if _, err := io.CopyN(out, in, int64(size)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%s: copy %d byte record: %w", what, size, err)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
