package service

import (
	"context"
	"errors"
	"strings"

	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/dispatch/valid"
)

// One DAG file at a time, by the DAG's name, as Dagu's API creates,
// checks and rewrites them: the same parse and checks as a push.

// CheckDags parses and checks DAG files as a push would, storing nothing:
// an Invalid error has every problem (see Problems).
func (s *Service) CheckDags(ctx context.Context, sources []DagSource) ([]*dagfile.File, error) {
	if len(sources) == 0 {
		return nil, errorOf(Invalid, errors.New("no DAG files given"))
	}
	if err := s.cluster.ConsistentRead(ctx); err != nil {
		return nil, err
	}
	files, err := ParseDags(s.cluster.FSM().State(), sources)
	if err != nil {
		return nil, errorOf(Invalid, err)
	}
	return files, nil
}

// Problems lists what a check or push found wrong, one problem each
// (with its file and line where it has one).
func Problems(err error) []string {
	var all *dagErrors
	if !errors.As(err, &all) {
		return []string{err.Error()}
	}
	problems := append([]string{}, all.other...)
	for _, p := range all.problems {
		problems = append(problems, p.Error())
	}
	return problems
}

// DefaultDagSpec is the file of a DAG created without one: a single
// step, as Dagu creates it.
const DefaultDagSpec = "steps:\n  - name: hello\n    command: echo hello\n"

// CreateDag stores a new DAG named name from a whole DAG file (content
// "": DefaultDagSpec). The file must define that name, or none (it takes
// the name then); a DAG of that name already stored is a Conflict. The
// check and the store are two steps: two creates at the same moment may
// both store, the second an update.
func (s *Service) CreateDag(ctx context.Context, name, content string) ([]DagOutcome, error) {
	file, err := DagFileName("name", name)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(content) == "" {
		content = DefaultDagSpec
	}
	if _, err := s.GetDag(ctx, name, false); err == nil {
		return nil, errorf(Conflict, "a DAG named %q is already stored", name)
	} else if KindOf(err) != NotFound {
		return nil, err
	}
	return s.pushOne(ctx, name, DagSource{Name: file, Content: content})
}

// ReplaceDag stores a new file for the stored DAG named name, under the
// file name it was pushed with. The file must define that name, or none.
func (s *Service) ReplaceDag(ctx context.Context, name, content string) ([]DagOutcome, error) {
	dag, err := s.GetDag(ctx, name, false)
	if err != nil {
		return nil, err
	}
	file := dag.Stored.GetSpec().GetSourceFile()
	if file == "" {
		file = name + ".yaml"
	}
	return s.pushOne(ctx, name, DagSource{Name: file, Content: content})
}

// pushOne checks that source defines the DAG name (a file without a name
// takes its own file name's, which callers make name) and pushes it.
func (s *Service) pushOne(ctx context.Context, name string, source DagSource) ([]DagOutcome, error) {
	files, err := s.CheckDags(ctx, []DagSource{source})
	if err != nil {
		return nil, err
	}
	if defined := files[0].Dags[0].GetName(); defined != name {
		return nil, errorf(Invalid, "%s: the file defines DAG %q, not %q: remove its name: key or make it %q", source.Name, defined, name, name)
	}
	return s.PushDags(ctx, []DagSource{source})
}

// DagFileName is the file name under which a DAG file without a name of
// its own takes the name name (for files sent with a name beside them,
// as Dagu's API sends them); field names the name in the error.
func DagFileName(field, name string) (string, error) {
	if err := valid.DagName(name); err != nil {
		return "", errorf(Invalid, "%s: %w", field, err)
	}
	return name + ".yaml", nil
}
