package fsm

import (
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
)

// Every MessageType constant of commands.go, and every type the FSM
// decodes, has a row in commandSchemas: a new command type without one
// would be written to servers that cannot apply it. The constants are read
// from the source, so a new one fails here before anything uses it.
func TestEveryCommandTypeHasASchemaRow(t *testing.T) {
	file, err := parser.ParseFile(token.NewFileSet(), "commands.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	constants := 0
	for _, decl := range file.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			value := spec.(*ast.ValueSpec)
			if ident, ok := value.Type.(*ast.Ident); !ok || ident.Name != "MessageType" {
				continue
			}
			for _, name := range value.Names {
				if name.Name == "IgnoreUnknown" {
					continue
				}
				constants++
				if _, ok := commandTypeByName[name.Name]; !ok {
					t.Errorf("MessageType constant %s is not in this test's list: add it below and a row to commandSchemas", name.Name)
				}
			}
		}
	}
	if constants != len(commandTypeByName) {
		t.Errorf("commands.go declares %d MessageType constants, this test lists %d", constants, len(commandTypeByName))
	}
	for name, typ := range commandTypeByName {
		if _, ok := commandSchemas[typ]; !ok {
			t.Errorf("%s (type %d) has no row in commandSchemas: say which state schema introduced it", name, typ)
		}
	}
	for typ := range messageTypes {
		row, ok := commandSchemas[typ]
		if !ok {
			t.Errorf("command type %d has a body but no row in commandSchemas", typ)
			continue
		}
		if row.schema > SchemaVersion {
			t.Errorf("command type %d needs state schema %d, beyond this build's %d", typ, row.schema, SchemaVersion)
		}
	}
}

// commandTypeByName is every MessageType constant by its name, so that
// the test above can match the source's constants to their values.
var commandTypeByName = map[string]MessageType{
	"NoopType": NoopType, "EnqueueRunsType": EnqueueRunsType, "GrantLeasesType": GrantLeasesType,
	"ReclaimRunsType": ReclaimRunsType, "ReportStepsType": ReportStepsType, "FinishRunsType": FinishRunsType,
	"CancelRunsType": CancelRunsType, "RegisterWorkersType": RegisterWorkersType, "SetClusterMetaType": SetClusterMetaType,
	"MarkWorkersOfflineType": MarkWorkersOfflineType, "RemoveWorkersType": RemoveWorkersType, "PutDagsType": PutDagsType,
	"DeleteDagsType": DeleteDagsType, "FireSchedulesType": FireSchedulesType, "PruneRunsType": PruneRunsType,
	"RetryRunsType": RetryRunsType, "DequeueRunsType": DequeueRunsType,
}

func TestSchemaOf(t *testing.T) {
	for _, c := range []struct {
		typ    MessageType
		name   string
		schema int
	}{
		{EnqueueRunsType, "enqueue", 0},
		{PruneRunsType, "prune runs", 0},
		{RetryRunsType, "retry", 1},
		{DequeueRunsType, "dequeue", 1},
		{IgnoreUnknown | 0x7e, "command type 254", 0},
		{0x7e, "command type 126", SchemaVersion + 1},
	} {
		if name, schema := SchemaOf(c.typ); name != c.name || schema != c.schema {
			t.Errorf("SchemaOf(%d) = %q, %d; want %q, %d", c.typ, name, schema, c.name, c.schema)
		}
	}
}
