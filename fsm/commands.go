package fsm

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// SchemaVersion is the version of the replicated state's schema: the
// command types and their bodies in the Raft log, and the records of a
// snapshot (SnapshotVersion is that stream's own format). Bump it when a
// command type or snapshot record is added, or when what one means or
// holds changes, so that servers and operators can tell builds that
// write state an older server cannot read (docs/upgrades.md). daguha
// 0.1.0 is 1: command types 0 to 16, snapshot version 2.
const SchemaVersion = 1

// SchemaReleases names, for each state schema, the first daguha release
// whose servers read it, for messages that tell an operator what to
// upgrade to. Bumping SchemaVersion adds an entry.
var SchemaReleases = [SchemaVersion + 1]string{0: "before 0.1.0", 1: "0.1.0"}

// MessageType is the first byte of every Raft command.
type MessageType uint8

// IgnoreUnknown marks a command that a server which does not know its type
// may skip. Only commands whose loss cannot make replicas disagree on
// anything an older server reads may carry it.
const IgnoreUnknown MessageType = 0x80

// Command types. Numbers are forever: add new ones at the end.
const (
	NoopType               MessageType = 0
	EnqueueRunsType        MessageType = 1
	GrantLeasesType        MessageType = 2
	ReclaimRunsType        MessageType = 3
	ReportStepsType        MessageType = 4
	FinishRunsType         MessageType = 5
	CancelRunsType         MessageType = 6
	RegisterWorkersType    MessageType = 7
	SetClusterMetaType     MessageType = 8
	MarkWorkersOfflineType MessageType = 9
	RemoveWorkersType      MessageType = 10
	PutDagsType            MessageType = 11
	DeleteDagsType         MessageType = 12
	FireSchedulesType      MessageType = 13
	PruneRunsType          MessageType = 14
	RetryRunsType          MessageType = 15
	DequeueRunsType        MessageType = 16
)

// ErrEmptyCommand is returned for a command without a type byte.
var ErrEmptyCommand = errors.New("empty command: no type byte")

// messageTypes pairs each command type with its body and result messages.
var messageTypes = map[MessageType]struct{ body, result func() proto.Message }{
	NoopType: {func() proto.Message { return &daguhav1.NoopCommand{} }, func() proto.Message { return &daguhav1.NoopResult{} }},
	EnqueueRunsType: {func() proto.Message { return &daguhav1.EnqueueRunsCommand{} },
		func() proto.Message { return &daguhav1.EnqueueRunsResult{} }},
	GrantLeasesType: {func() proto.Message { return &daguhav1.GrantLeasesCommand{} },
		func() proto.Message { return &daguhav1.GrantLeasesResult{} }},
	ReclaimRunsType: {func() proto.Message { return &daguhav1.ReclaimRunsCommand{} },
		func() proto.Message { return &daguhav1.ReclaimRunsResult{} }},
	ReportStepsType: {func() proto.Message { return &daguhav1.ReportStepsCommand{} },
		func() proto.Message { return &daguhav1.ReportStepsResult{} }},
	FinishRunsType: {func() proto.Message { return &daguhav1.FinishRunsCommand{} },
		func() proto.Message { return &daguhav1.FinishRunsResult{} }},
	CancelRunsType: {func() proto.Message { return &daguhav1.CancelRunsCommand{} },
		func() proto.Message { return &daguhav1.CancelRunsResult{} }},
	RegisterWorkersType: {func() proto.Message { return &daguhav1.RegisterWorkersCommand{} },
		func() proto.Message { return &daguhav1.RegisterWorkersResult{} }},
	SetClusterMetaType: {func() proto.Message { return &daguhav1.SetClusterMetaCommand{} },
		func() proto.Message { return &daguhav1.SetClusterMetaResult{} }},
	MarkWorkersOfflineType: {func() proto.Message { return &daguhav1.MarkWorkersOfflineCommand{} },
		func() proto.Message { return &daguhav1.MarkWorkersOfflineResult{} }},
	RemoveWorkersType: {func() proto.Message { return &daguhav1.RemoveWorkersCommand{} },
		func() proto.Message { return &daguhav1.RemoveWorkersResult{} }},
	PutDagsType: {func() proto.Message { return &daguhav1.PutDagsCommand{} },
		func() proto.Message { return &daguhav1.PutDagsResult{} }},
	DeleteDagsType: {func() proto.Message { return &daguhav1.DeleteDagsCommand{} },
		func() proto.Message { return &daguhav1.DeleteDagsResult{} }},
	FireSchedulesType: {func() proto.Message { return &daguhav1.FireSchedulesCommand{} },
		func() proto.Message { return &daguhav1.FireSchedulesResult{} }},
	PruneRunsType: {func() proto.Message { return &daguhav1.PruneRunsCommand{} },
		func() proto.Message { return &daguhav1.PruneRunsResult{} }},
	RetryRunsType: {func() proto.Message { return &daguhav1.RetryRunsCommand{} },
		func() proto.Message { return &daguhav1.RetryRunsResult{} }},
	DequeueRunsType: {func() proto.Message { return &daguhav1.DequeueRunsCommand{} },
		func() proto.Message { return &daguhav1.DequeueRunsResult{} }},
}

// commandBody returns a new, empty body message for a known type, or nil.
func commandBody(t MessageType) proto.Message {
	if m, ok := messageTypes[t]; ok {
		return m.body()
	}
	return nil
}

// resultBody returns a new, empty result message for a known type, so a
// forwarded command's encoded result can be decoded by the caller.
func resultBody(t MessageType) proto.Message {
	if m, ok := messageTypes[t]; ok {
		return m.result()
	}
	return nil
}

// Encode builds a command: the type byte, then the protobuf body.
func Encode(t MessageType, body proto.Message) ([]byte, error) {
	encoded, err := proto.MarshalOptions{Deterministic: true}.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode command type %d: %w", t, err)
	}
	return append([]byte{byte(t)}, encoded...), nil
}

// Decode splits a command into its type and decoded body. It fails for an
// unknown type, with or without the ignorable bit: callers that may skip
// ignorable commands check the bit themselves.
func Decode(command []byte) (MessageType, proto.Message, error) {
	if len(command) == 0 {
		return 0, nil, ErrEmptyCommand
	}
	t := MessageType(command[0])
	body := commandBody(t)
	if body == nil {
		return t, nil, unknownType(t)
	}
	if err := proto.Unmarshal(command[1:], body); err != nil {
		return t, nil, fmt.Errorf("decode command type %d: %w", t, err)
	}
	return t, body, nil
}

// Validate checks that a command is one this server can apply, before it is
// written to the log: a leader must never append an entry that would make
// every replica panic.
func Validate(command []byte) error {
	t, body, err := Decode(command)
	if err != nil {
		return err
	}
	return checkBody(t, body)
}

// ValidateBody is Validate for a command not yet encoded: the same rules,
// without decoding what the caller has in hand (the leader's own batches
// spent a decode of every entry on it). body must be the message type t
// carries, which Decode ensures for Validate.
func ValidateBody(t MessageType, body proto.Message) error {
	want := commandBody(t)
	if want == nil {
		return unknownType(t)
	}
	if got, wantName := body.ProtoReflect().Descriptor().FullName(), want.ProtoReflect().Descriptor().FullName(); got != wantName {
		return fmt.Errorf("command type %d carries %s, not %s", t, wantName, got)
	}
	return checkBody(t, body)
}

// unknownType is the error for a command type this build does not know.
func unknownType(t MessageType) error {
	return fmt.Errorf("unknown command type %d (ignorable: %t)", t&^IgnoreUnknown, t&IgnoreUnknown != 0)
}

// checkBody holds Validate's rules for a body of the type t carries.
func checkBody(t MessageType, body proto.Message) error {
	switch cmd := body.(type) {
	case *daguhav1.EnqueueRunsCommand:
		for i, run := range cmd.GetRuns() {
			if err := validateRun(t, i, run); err != nil {
				return err
			}
		}
	case *daguhav1.FireSchedulesCommand:
		for i, firing := range cmd.GetFirings() {
			switch firing.GetKind() {
			case daguhav1.FiringKind_FIRING_KIND_START, daguhav1.FiringKind_FIRING_KIND_RESTART:
			case daguhav1.FiringKind_FIRING_KIND_STOP:
				// A stop slot starts nothing.
				if firing.GetRun() != nil {
					return fmt.Errorf("command type %d: stop firing %d of DAG %q carries a run", t, i, firing.GetDagName())
				}
				continue
			default:
				return fmt.Errorf("command type %d: firing %d of DAG %q has unknown kind %d", t, i, firing.GetDagName(), firing.GetKind())
			}
			if err := validateRun(t, i, firing.GetRun()); err != nil {
				return err
			}
			if firing.GetRun().GetDagName() != firing.GetDagName() {
				return fmt.Errorf("command type %d: firing %d of DAG %q carries a run of %q", t, i, firing.GetDagName(), firing.GetRun().GetDagName())
			}
		}
	case *daguhav1.PruneRunsCommand:
		if cmd.GetEndedBeforeUnixNano() <= 0 {
			return fmt.Errorf("command type %d: prune runs without a cutoff time", t)
		}
	case *daguhav1.RetryRunsCommand:
		for i, retry := range cmd.GetRetries() {
			if retry.GetRunId() == "" {
				return fmt.Errorf("command type %d: retry %d has no run id", t, i)
			}
		}
	case *daguhav1.PutDagsCommand:
		for i, dag := range cmd.GetDags() {
			if dag.GetSpec().GetName() == "" {
				return fmt.Errorf("command type %d: DAG %d has no name", t, i)
			}
		}
	}
	return nil
}

func validateRun(t MessageType, i int, run *daguhav1.Run) error {
	if run.GetId() == "" {
		return fmt.Errorf("command type %d: run %d has no id", t, i)
	}
	if run.GetDagName() == "" {
		return fmt.Errorf("command type %d: run %q has no DAG name", t, run.GetId())
	}
	return nil
}

// DecodeResult decodes the encoded result of a command of type t.
func DecodeResult(t MessageType, encoded []byte) (proto.Message, error) {
	result := resultBody(t)
	if result == nil {
		return nil, fmt.Errorf("no result type for command type %d", t)
	}
	if err := proto.Unmarshal(encoded, result); err != nil {
		return nil, fmt.Errorf("decode result of command type %d: %w", t, err)
	}
	return result, nil
}

// Command names and the state schema that introduced each command type:
// a server whose build reads an older schema panics on the type (unless
// it carries IgnoreUnknown), so the leader writes a command only once
// every server reads its schema (cluster's version check). Every command
// type has a row: TestEveryCommandTypeHasASchemaRow fails for one without.
var commandSchemas = map[MessageType]struct {
	name   string
	schema int
}{
	NoopType:               {"noop", 0},
	EnqueueRunsType:        {"enqueue", 0},
	GrantLeasesType:        {"grant leases", 0},
	ReclaimRunsType:        {"reclaim runs", 0},
	ReportStepsType:        {"report steps", 0},
	FinishRunsType:         {"finish runs", 0},
	CancelRunsType:         {"cancel", 0},
	RegisterWorkersType:    {"register workers", 0},
	SetClusterMetaType:     {"set cluster meta", 0},
	MarkWorkersOfflineType: {"mark workers offline", 0},
	RemoveWorkersType:      {"remove workers", 0},
	PutDagsType:            {"put DAGs", 0},
	DeleteDagsType:         {"delete DAGs", 0},
	FireSchedulesType:      {"fire schedules", 0},
	PruneRunsType:          {"prune runs", 0},
	RetryRunsType:          {"retry", 1},
	DequeueRunsType:        {"dequeue", 1},
}

// SchemaOf returns the state schema a server must read to apply a command
// of type t, and the command's name for messages. A command type carrying
// IgnoreUnknown needs schema 0 whatever its row says: a server that does
// not know it skips it. An unknown type needs a schema beyond this
// build's (Validate refuses such a command before this is asked).
func SchemaOf(t MessageType) (name string, schema int) {
	row, ok := commandSchemas[t]
	if !ok {
		name, row.schema = fmt.Sprintf("command type %d", t), SchemaVersion+1
	} else {
		name = row.name
	}
	if t&IgnoreUnknown != 0 {
		return name, 0
	}
	return name, row.schema
}
