package store

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// filled returns a Run with every field set, whatever fields Run has.
func filled(t *testing.T) *daguhav1.Run {
	run := &daguhav1.Run{}
	m := run.ProtoReflect()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			mp.Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfString("v"))
		case fd.IsList():
			list := m.Mutable(fd).List()
			list.Append(list.NewElement())
		case fd.Kind() == protoreflect.MessageKind:
			m.Mutable(fd)
		case fd.Kind() == protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString("x"))
		case fd.Kind() == protoreflect.BoolKind:
			m.Set(fd, protoreflect.ValueOfBool(true))
		case fd.Kind() == protoreflect.EnumKind:
			m.Set(fd, protoreflect.ValueOfEnum(1))
		case fd.Kind() == protoreflect.Uint32Kind:
			m.Set(fd, protoreflect.ValueOfUint32(7))
		case fd.Kind() == protoreflect.Uint64Kind:
			m.Set(fd, protoreflect.ValueOfUint64(7))
		case fd.Kind() == protoreflect.Int32Kind:
			m.Set(fd, protoreflect.ValueOfInt32(7))
		case fd.Kind() == protoreflect.Int64Kind:
			m.Set(fd, protoreflect.ValueOfInt64(7))
		default:
			t.Fatalf("field %s of kind %s: teach this test to fill it", fd.Name(), fd.Kind())
		}
		if !m.Has(fd) {
			t.Fatalf("field %s is not set", fd.Name())
		}
	}
	return run
}

// A transition's copy of a run has every field of the run, and slices of
// its own: replacing a step or adding an attempt leaves the stored record
// as it was.
func TestCopyRunCopiesEveryField(t *testing.T) {
	run := filled(t)
	copied := copyRun(run)
	if !proto.Equal(run, copied) {
		t.Fatalf("copyRun lost fields:\n%v\n%v", run, copied)
	}
	copied.Steps[0] = &daguhav1.StepState{Name: "replaced"}
	copied.Attempts = append(copied.Attempts, &daguhav1.Attempt{Attempt: 9})
	copied.Attempts[0] = &daguhav1.Attempt{Attempt: 8}
	if run.Steps[0].GetName() == "replaced" || len(run.Attempts) != 1 || run.Attempts[0].GetAttempt() == 8 {
		t.Fatalf("the copy's slices are the record's: %v", run)
	}
}
