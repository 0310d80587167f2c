package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"

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

// The records of a snapshot go through three stages: one goroutine reads
// their frames (type, length, body) in batches, decoders turn the bodies
// into messages, a batch each at a time, and the caller's goroutine
// inserts the batches into the store in the order they were read. The
// store takes one writer, so its inserts are the one stage that cannot
// be spread; the protobuf decoding, a third of a large restore's CPU, can.

// chunk is one batch of records on its way through the stages.
type chunk struct {
	// Set by the reader.
	kinds []byte
	ords  []uint64 // the record's number among those of its type, from 1
	ends  []int    // where each body ends in arena
	arena []byte
	end   bool  // the batch ends with the end marker
	err   error // the reader's error after the batch's records
	// Set by a decoder, then ready is closed.
	msgs  []proto.Message // up to the first that did not decode
	derr  error           // why that one did not
	ready chan struct{}
}

// chunkRecords and chunkBytes bound a batch: by count, so a decoder gets
// its work in pieces, and by bytes, so batches in flight stay small.
const (
	chunkRecords = 512
	chunkBytes   = 256 << 10
)

// restoreDecoders is how many goroutines decode records: one per core
// beside the one that inserts, at least one, at most four (beyond that
// the inserts are the bound).
func restoreDecoders() int {
	return min(max(runtime.GOMAXPROCS(0)-1, 1), 4)
}

// readRecords reads every record after the header into restore and checks
// the counts against the header. The first error in the stream's order
// wins, as if the records were read and inserted one by one; whatever
// happens, every goroutine it started has ended when it returns.
func readRecords(buf *bufio.Reader, restore *store.Restore, header *daguhav1.SnapshotHeader) error {
	decoders := restoreDecoders()
	work := make(chan *chunk, decoders)
	order := make(chan *chunk, 2*decoders+2)
	free := make(chan []byte, 2*decoders+4)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1 + decoders)
	go func() {
		defer wg.Done()
		defer close(work)
		defer close(order)
		readFrames(buf, work, order, free, stop)
	}()
	for range decoders {
		go func() {
			defer wg.Done()
			dags := newDagCache()
			for c := range work {
				decodeChunk(c, dags)
				// The messages hold copies of what they read (protobuf
				// copies strings and bytes), so the arena can be reused.
				if cap(c.arena) <= 4*chunkBytes {
					select {
					case free <- c.arena[:0]:
					default:
					}
				}
				c.arena = nil
				close(c.ready)
			}
		}()
	}
	err := insertChunks(order, restore, header)
	close(stop)
	for range order {
	}
	wg.Wait()
	return err
}

// readFrames reads records' frames into chunks until the end marker, an
// error (carried by the last chunk) or stop. Each chunk goes to order,
// in sequence, and to a decoder.
func readFrames(buf *bufio.Reader, work, order chan<- *chunk, free chan []byte, stop <-chan struct{}) {
	var counts [256]uint64
	next := func() *chunk {
		c := &chunk{ready: make(chan struct{})}
		select {
		case c.arena = <-free:
		default:
			c.arena = make([]byte, 0, chunkBytes)
		}
		return c
	}
	send := func(c *chunk) bool {
		select {
		case order <- c:
		case <-stop:
			return false
		}
		select {
		case work <- c:
			return true
		case <-stop:
			// Nothing will decode it: the inserter, which stopped, does
			// not wait on it either.
			return false
		}
	}
	c := next()
	for {
		kind, err := buf.ReadByte()
		if err != nil {
			c.err = fmt.Errorf("snapshot ends without end marker after %d runs: %w", counts[recordRun], err)
			send(c)
			return
		}
		switch kind {
		case recordEnd:
			c.end = true
			send(c)
			return
		case recordTableIndex, recordRun, recordWorker, recordClusterMeta, recordDag, recordSchedule:
		default:
			c.err = fmt.Errorf("snapshot record type %d is unknown", kind)
			send(c)
			return
		}
		counts[kind]++
		if err := readFrameBody(buf, c); err != nil {
			c.err = fmt.Errorf("%s: %w", recordName(kind, counts[kind]), err)
			send(c)
			return
		}
		c.kinds = append(c.kinds, kind)
		c.ords = append(c.ords, counts[kind])
		if len(c.kinds) == chunkRecords || len(c.arena) >= chunkBytes {
			if !send(c) {
				return
			}
			c = next()
		}
	}
}

// readFrameBody reads one length-prefixed body onto the end of c's arena.
func readFrameBody(r *bufio.Reader, c *chunk) error {
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return fmt.Errorf("read length: %w", err)
	}
	if size > maxRecordSize {
		return fmt.Errorf("record of %d bytes exceeds the %d byte limit", size, maxRecordSize)
	}
	start := len(c.arena)
	c.arena = slices.Grow(c.arena, int(size))[:start+int(size)]
	if _, err := io.ReadFull(r, c.arena[start:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("read %d byte record: %w", size, err)
	}
	c.ends = append(c.ends, len(c.arena))
	return nil
}

// decodeChunk decodes a chunk's bodies, up to the first that fails; runs
// share the DAG specs dags holds (shareddags.go).
func decodeChunk(c *chunk, dags *dagCache) {
	c.msgs = make([]proto.Message, 0, len(c.kinds))
	start := 0
	for i, kind := range c.kinds {
		msg := newRecordMessage(kind)
		var err error
		if run, ok := msg.(*daguhav1.Run); ok {
			err = dags.decodeRun(c.arena[start:c.ends[i]], run)
		} else {
			err = proto.Unmarshal(c.arena[start:c.ends[i]], msg)
		}
		if err != nil {
			c.derr = fmt.Errorf("%s: %w", recordName(kind, c.ords[i]), err)
			return
		}
		start = c.ends[i]
		c.msgs = append(c.msgs, msg)
	}
}

func newRecordMessage(kind byte) proto.Message {
	switch kind {
	case recordTableIndex:
		return &daguhav1.TableIndex{}
	case recordRun:
		return &daguhav1.Run{}
	case recordWorker:
		return &daguhav1.Worker{}
	case recordClusterMeta:
		return &daguhav1.ClusterMeta{}
	case recordDag:
		return &daguhav1.StoredDag{}
	case recordSchedule:
		return &daguhav1.ScheduleRecord{}
	}
	panic(fmt.Sprintf("snapshot record type %d has no message", kind))
}

// recordName names a record in errors: its type and number.
func recordName(kind byte, ord uint64) string {
	switch kind {
	case recordTableIndex:
		return "snapshot table index record"
	case recordRun:
		return fmt.Sprintf("snapshot run record %d", ord)
	case recordWorker:
		return fmt.Sprintf("snapshot worker record %d", ord)
	case recordClusterMeta:
		return "snapshot cluster meta record"
	case recordDag:
		return fmt.Sprintf("snapshot DAG record %d", ord)
	case recordSchedule:
		return fmt.Sprintf("snapshot schedule record %d", ord)
	}
	return fmt.Sprintf("snapshot record of type %d", kind)
}

// insertChunks puts the decoded records into restore, chunk by chunk in
// the order they were read, until the end marker, then checks the counts
// against the header.
func insertChunks(order <-chan *chunk, restore *store.Restore, header *daguhav1.SnapshotHeader) error {
	var runs, workers, dags, schedules uint64
	for c := range order {
		<-c.ready
		for _, msg := range c.msgs {
			var err error
			switch m := msg.(type) {
			case *daguhav1.TableIndex:
				err = restore.TableIndex(m)
			case *daguhav1.Run:
				err = restore.Run(m)
				runs++
			case *daguhav1.Worker:
				err = restore.Worker(m)
				workers++
			case *daguhav1.ClusterMeta:
				err = restore.ClusterMeta(m)
			case *daguhav1.StoredDag:
				err = restore.Dag(m)
				dags++
			case *daguhav1.ScheduleRecord:
				err = restore.Schedule(m)
				schedules++
			}
			if err != nil {
				return err
			}
		}
		switch {
		case c.derr != nil:
			return c.derr
		case c.err != nil:
			return c.err
		case c.end:
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
		}
	}
	return errors.New("snapshot ends without end marker")
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
