package fsm

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Runs of one DAG carry the same DagSpec, and a snapshot has a copy of it
// in every run's record: decoding each copy was most of what decoding a
// run allocates (the spec, its steps, its selector map), and all of it
// stayed live. A restore decodes each distinct spec once per decoder and
// shares it among the runs whose records carry the same bytes for it.
// Sharing is safe because stored records and the messages they point to
// are never changed in place (see store's copyRun, which shares the DAG
// between a run's versions the same way); proto.Equal cannot tell a
// shared spec from a copy.

// runDagField is the field number of Run.dag.
var runDagField = (&daguhav1.Run{}).ProtoReflect().Descriptor().Fields().ByName("dag").Number()

// Bounds on what a decoder remembers: the distinct specs it keeps, the
// size of one (a larger one is decoded for each run, as before), and the
// bytes of the keys it holds (copies of the encoded specs) all together.
const (
	maxSharedDags     = 4096
	maxSharedDagBytes = 64 << 10
	sharedDagsBudget  = 16 << 20
)

// dagCache is one decoder's specs by their encoded bytes.
type dagCache struct {
	specs   map[string]*daguhav1.DagSpec
	budget  int // bytes of keys it may still take
	scratch []byte
}

func newDagCache() *dagCache {
	return &dagCache{specs: map[string]*daguhav1.DagSpec{}, budget: sharedDagsBudget}
}

// decodeRun decodes a run's record into run, with a spec decoded before
// for the same bytes when there is one. A record without exactly one dag
// field, or not well formed, is decoded as it is.
func (c *dagCache) decodeRun(body []byte, run *daguhav1.Run) error {
	start, end, dag, ok := dagField(body)
	if !ok || len(dag) > maxSharedDagBytes {
		return proto.Unmarshal(body, run)
	}
	if spec, hit := c.specs[string(dag)]; hit {
		c.scratch = append(append(c.scratch[:0], body[:start]...), body[end:]...)
		if err := proto.Unmarshal(c.scratch, run); err != nil {
			return err
		}
		run.Dag = spec
		return nil
	}
	if err := proto.Unmarshal(body, run); err != nil {
		return err
	}
	if run.Dag != nil && len(c.specs) < maxSharedDags && len(dag) <= c.budget {
		c.specs[string(dag)] = run.Dag
		c.budget -= len(dag)
	}
	return nil
}

// dagField finds the dag field of a run's record: where the field (tag,
// length, value) starts and ends, and its value. ok is false when the
// record has no dag field, more than one (they would merge), or is not
// well formed.
func dagField(body []byte) (start, end int, value []byte, ok bool) {
	for off := 0; off < len(body); {
		num, typ, n := protowire.ConsumeTag(body[off:])
		if n < 0 {
			return 0, 0, nil, false
		}
		if num == runDagField && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(body[off+n:])
			if m < 0 || ok {
				return 0, 0, nil, false
			}
			start, end, value, ok = off, off+n+m, v, true
			off = end
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, body[off+n:])
		if m < 0 {
			return 0, 0, nil, false
		}
		off += n + m
	}
	return start, end, value, ok
}
