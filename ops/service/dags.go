package service

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/dispatch/valid"
	"github.com/daguha/daguha/fsm"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// DagSource is one DAG file: its name (for messages and the default DAG
// name) and its YAML text.
type DagSource struct {
	Name    string
	Content string
}

// DagOutcome says what a push did with one DAG: Result is created,
// updated or unchanged.
type DagOutcome struct {
	Name   string
	File   string
	Result string
}

// ParseDags parses DAG files and checks them together against the stored
// DAGs: every problem of every file is reported, each with its file and
// line. A run/call step may name a DAG of its own file, of another file
// of the same push, or a stored one.
func ParseDags(state *store.StateStore, sources []DagSource) ([]*dagfile.File, error) {
	var (
		problems dagfile.Problems
		other    []string
		files    []*dagfile.File
	)
	// Which DAGs the push defines comes first, so that a file may call a
	// DAG of a file after it; each file is then parsed and checked once,
	// with every problem it has.
	byName := map[string]string{}
	for _, source := range sources {
		if f, err := dagfile.Parse(source.Name, []byte(source.Content)); err == nil {
			if _, dup := byName[f.Dags[0].GetName()]; !dup {
				byName[f.Dags[0].GetName()] = source.Name
			}
		}
	}
	known := func(name string) bool {
		if _, ok := byName[name]; ok {
			return true
		}
		stored, err := state.Dag(name)
		return err == nil && stored != nil
	}
	defined := map[string]string{}
	for _, source := range sources {
		file, err := dagfile.Check(source.Name, []byte(source.Content), known)
		if err != nil {
			var p dagfile.Problems
			if errors.As(err, &p) {
				problems = append(problems, p...)
			} else {
				other = append(other, err.Error())
			}
			continue
		}
		name := file.Dags[0].GetName()
		if first, dup := defined[name]; dup {
			problems = append(problems, dagfile.Problem{File: source.Name, Line: 1, Key: "name",
				Message: fmt.Sprintf("DAG %q is also defined by %s in this push", name, first)})
			continue
		}
		defined[name] = source.Name
		files = append(files, file)
	}
	if len(problems) > 0 || len(other) > 0 {
		return nil, &dagErrors{problems: problems, other: other}
	}
	return files, nil
}

// dagErrors is every problem a set of DAG files has.
type dagErrors struct {
	problems dagfile.Problems
	other    []string
}

func (e *dagErrors) Error() string {
	lines := append([]string(nil), e.other...)
	for _, p := range e.problems {
		lines = append(lines, p.Error())
	}
	return strings.Join(lines, "\n")
}

// PushDags stores DAG files in the replicated state: a DAG whose content
// is unchanged is left as it is. Invalid files are refused, all of them
// together, with every problem, as an Invalid error.
func (s *Service) PushDags(ctx context.Context, sources []DagSource) ([]DagOutcome, error) {
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
	// The DAGs go in commands of at most valid.MaxBatchBytes each, so a
	// command forwarded to the leader fits in one message (a DAG is at
	// most valid.MaxDagBytes). Should a later command fail, the earlier
	// ones stay applied: pushing again stores the rest.
	now := s.now().UnixNano()
	var commands []*daguhav1.PutDagsCommand
	batchBytes := 0
	fileOf := map[string]string{}
	for _, file := range files {
		stored := file.Stored()
		size := proto.Size(stored)
		if len(commands) == 0 || batchBytes > 0 && batchBytes+size > valid.MaxBatchBytes {
			commands = append(commands, &daguhav1.PutDagsCommand{NowUnixNano: now})
			batchBytes = 0
		}
		cmd := commands[len(commands)-1]
		cmd.Dags = append(cmd.Dags, stored)
		batchBytes += size
		fileOf[file.Dags[0].GetName()] = file.Path
	}
	var outcomes []DagOutcome
	for _, cmd := range commands {
		result, _, err := s.cluster.Apply(ctx, fsm.PutDagsType, cmd)
		if err != nil {
			return nil, err
		}
		for _, o := range result.(*daguhav1.PutDagsResult).GetOutcomes() {
			outcomes = append(outcomes, DagOutcome{Name: o.GetName(), File: fileOf[o.GetName()], Result: o.GetResult()})
		}
	}
	return outcomes, nil
}

// DeleteDagsIf deletes each named DAG while its stored content hash is
// the one given (a hex SHA-256 of its file, as pushed), and returns the
// names it deleted: a DAG stored again since, from other content, stays.
func (s *Service) DeleteDagsIf(ctx context.Context, hashes map[string]string) ([]string, error) {
	if len(hashes) == 0 {
		return nil, nil
	}
	cmd := &daguhav1.DeleteDagsCommand{IfContentHash: hashes}
	for name := range hashes {
		cmd.Names = append(cmd.Names, name)
	}
	sort.Strings(cmd.Names)
	result, _, err := s.cluster.Apply(ctx, fsm.DeleteDagsType, cmd)
	if err != nil {
		return nil, err
	}
	return result.(*daguhav1.DeleteDagsResult).GetDeleted(), nil
}

// DeleteDag deletes a stored DAG, whatever its content; its runs stay.
func (s *Service) DeleteDag(ctx context.Context, name string) error {
	if !utf8.ValidString(name) {
		// No DAG has such a name, and no command can carry it.
		return errorf(NotFound, "no DAG named %q is stored (not UTF-8)", name)
	}
	result, _, err := s.cluster.Apply(ctx, fsm.DeleteDagsType, &daguhav1.DeleteDagsCommand{Names: []string{name}})
	if err != nil {
		return err
	}
	if len(result.(*daguhav1.DeleteDagsResult).GetDeleted()) == 0 {
		return errorf(NotFound, "no DAG named %q is stored", name)
	}
	return nil
}

// Dag is a stored DAG with the last cron slot fired for it (nil: none).
type Dag struct {
	Stored   *daguhav1.StoredDag
	Schedule *daguhav1.ScheduleRecord
}

// Source is the DAG's YAML as pushed, with every literal SMTP password
// masked (dagfile.MaskSecrets): the one form the API, and so the web UI
// and the command line, show to anyone who may read DAGs.
func (d Dag) Source() string {
	return dagfile.MaskSecrets(d.Stored.GetSource())
}

// dagOf pairs a stored DAG with its schedule record.
func dagOf(state *store.StateStore, stored *daguhav1.StoredDag) Dag {
	dag := Dag{Stored: stored}
	if record, err := state.Schedule(stored.GetSpec().GetName()); err == nil && record != nil {
		dag.Schedule = record
	}
	return dag
}

// Dags lists the stored DAGs by name; stale reads this server's state as
// it is, without first catching up with the leader.
func (s *Service) Dags(ctx context.Context, stale bool) ([]Dag, error) {
	if err := s.consistent(ctx, stale); err != nil {
		return nil, err
	}
	state := s.cluster.FSM().State()
	dags := []Dag{}
	_ = state.EachDag(func(stored *daguhav1.StoredDag) bool {
		dags = append(dags, dagOf(state, stored))
		return true
	})
	sort.Slice(dags, func(i, j int) bool {
		return dags[i].Stored.GetSpec().GetName() < dags[j].Stored.GetSpec().GetName()
	})
	return dags, nil
}

// GetDag returns the stored DAG of that name.
func (s *Service) GetDag(ctx context.Context, name string, stale bool) (Dag, error) {
	if err := s.consistent(ctx, stale); err != nil {
		return Dag{}, err
	}
	state := s.cluster.FSM().State()
	stored, err := state.Dag(name)
	if err != nil {
		return Dag{}, errorOf(Internal, err)
	}
	if stored == nil {
		return Dag{}, errorf(NotFound, "no DAG named %q is stored", name)
	}
	return dagOf(state, stored), nil
}
