package fsm

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

func marshalRun(t testing.TB, run *daguhav1.Run) []byte {
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(run)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// requireDecodesAsUnmarshal fails unless decodeRun gives what
// proto.Unmarshal gives for body: an equal run, or an error both times.
func requireDecodesAsUnmarshal(t testing.TB, c *dagCache, body []byte) *daguhav1.Run {
	t.Helper()
	want, got := &daguhav1.Run{}, &daguhav1.Run{}
	werr := proto.Unmarshal(body, want)
	gerr := c.decodeRun(body, got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("decodeRun error %v, proto.Unmarshal error %v", gerr, werr)
	}
	if werr == nil && !proto.Equal(want, got) {
		t.Fatalf("decodeRun gave %v, proto.Unmarshal %v", got, want)
	}
	return got
}

func TestRunsWithTheSameDagBytesShareOneSpec(t *testing.T) {
	c := newDagCache()
	spec := &daguhav1.DagSpec{Name: "etl", WorkerSelector: map[string]string{"gpu": "true", "zone": "a"},
		Steps: []*daguhav1.StepSpec{{Name: "a", Command: "true"}, {Name: "b", Command: "false"}}}
	first := requireDecodesAsUnmarshal(t, c, marshalRun(t, &daguhav1.Run{Id: "a", DagName: "etl", Params: "X=1", Dag: spec, CreateIndex: 3}))
	second := requireDecodesAsUnmarshal(t, c, marshalRun(t, &daguhav1.Run{Id: "b", DagName: "etl", Dag: spec, Status: daguhav1.RunStatus_RUN_STATUS_RUNNING, WorkerId: "w"}))
	if first.GetDag() != second.GetDag() {
		t.Fatal("two runs with the same DAG bytes decoded two specs")
	}
	other := requireDecodesAsUnmarshal(t, c, marshalRun(t, &daguhav1.Run{Id: "c", Dag: &daguhav1.DagSpec{Name: "etl"}}))
	if other.GetDag() == first.GetDag() {
		t.Fatal("a different DAG got the shared spec")
	}
	// An empty spec is a spec: the run has one, shared or not.
	empty := requireDecodesAsUnmarshal(t, c, marshalRun(t, &daguhav1.Run{Id: "d", Dag: &daguhav1.DagSpec{}}))
	again := requireDecodesAsUnmarshal(t, c, marshalRun(t, &daguhav1.Run{Id: "e", Dag: &daguhav1.DagSpec{}}))
	if empty.GetDag() == nil || empty.GetDag() != again.GetDag() {
		t.Fatalf("empty specs: %p and %p", empty.GetDag(), again.GetDag())
	}
	if none := requireDecodesAsUnmarshal(t, c, marshalRun(t, &daguhav1.Run{Id: "f"})); none.Dag != nil {
		t.Fatal("a run without a DAG got one")
	}
}

// Records the cache must not take apart decode exactly as they are: two
// dag fields (protobuf merges them), a dag field of another wire type, a
// record cut short, and unknown fields around the dag field.
func TestUnusualRunRecordsDecodeAsUnmarshal(t *testing.T) {
	c := newDagCache()
	spec := marshalDag(t, &daguhav1.DagSpec{Name: "etl", Steps: []*daguhav1.StepSpec{{Name: "a"}}})
	base := marshalRun(t, &daguhav1.Run{Id: "a", DagName: "etl"})
	withDag := func(body []byte, dag []byte) []byte {
		body = protowire.AppendTag(append([]byte(nil), body...), runDagField, protowire.BytesType)
		return protowire.AppendBytes(body, dag)
	}
	// Prime the cache with both specs, so the cases below would hit it.
	queue := marshalDag(t, &daguhav1.DagSpec{Queue: "q"})
	requireDecodesAsUnmarshal(t, c, withDag(base, spec))
	requireDecodesAsUnmarshal(t, c, withDag(base, queue))
	twice := withDag(withDag(base, spec), queue)
	if got := requireDecodesAsUnmarshal(t, c, twice); got.GetDag().GetQueue() != "q" || got.GetDag().GetName() != "etl" {
		t.Fatalf("two dag fields did not merge: %v", got.GetDag())
	}
	varint := protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), base...), runDagField, protowire.VarintType), 7)
	requireDecodesAsUnmarshal(t, c, withDag(varint, spec))
	requireDecodesAsUnmarshal(t, c, withDag(base, spec)[:len(base)+3])
	unknown := protowire.AppendString(protowire.AppendTag(append([]byte(nil), base...), 999, protowire.BytesType), "later")
	got := requireDecodesAsUnmarshal(t, c, protowire.AppendVarint(protowire.AppendTag(withDag(unknown, spec), 998, protowire.VarintType), 1))
	if len(got.ProtoReflect().GetUnknown()) == 0 {
		t.Fatal("unknown fields were lost")
	}
}

// The cache stops taking specs when its key bytes are spent (and at its
// count), and runs decode as before past that point.
func TestDagCacheIsBounded(t *testing.T) {
	c := newDagCache()
	c.budget = 100
	for i := 0; i < 20; i++ {
		requireDecodesAsUnmarshal(t, c, marshalRun(t, &daguhav1.Run{Id: "a", Dag: &daguhav1.DagSpec{Name: fmt.Sprintf("dag-%02d", i)}}))
	}
	if len(c.specs) == 0 || len(c.specs) >= 20 || c.budget < 0 {
		t.Fatalf("%d specs kept, %d bytes of budget left", len(c.specs), c.budget)
	}
	for i := 0; i < maxSharedDags+10; i++ {
		c.specs[fmt.Sprint(i)] = &daguhav1.DagSpec{}
	}
	c.budget = 1 << 20
	before := len(c.specs)
	requireDecodesAsUnmarshal(t, c, marshalRun(t, &daguhav1.Run{Id: "b", Dag: &daguhav1.DagSpec{Name: "one more"}}))
	if len(c.specs) != before {
		t.Fatal("a spec was kept past the count")
	}
}

func marshalDag(t testing.TB, spec *daguhav1.DagSpec) []byte {
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// FuzzDecodeRunMatchesUnmarshal: for any bytes, decoding with the cache
// (primed with the DAG bytes the input carries) gives what proto.Unmarshal
// gives.
func FuzzDecodeRunMatchesUnmarshal(f *testing.F) {
	f.Add(marshalRun(f, &daguhav1.Run{Id: "a", Dag: &daguhav1.DagSpec{Name: "etl", WorkerSelector: map[string]string{"k": "v"}}}))
	f.Add(marshalRun(f, &daguhav1.Run{Id: "b", DagName: "d", Status: daguhav1.RunStatus_RUN_STATUS_QUEUED}))
	f.Add([]byte{0x62, 0x02, 0x0a, 0x00, 0x62, 0x00})
	f.Fuzz(func(t *testing.T, body []byte) {
		c := newDagCache()
		requireDecodesAsUnmarshal(t, c, body)
		requireDecodesAsUnmarshal(t, c, body)
	})
}
