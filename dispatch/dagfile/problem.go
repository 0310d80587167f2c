package dagfile

import (
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Problem is one thing wrong with a DAG file.
type Problem struct {
	File string
	// Line is 1-based: the line of the key or value at fault.
	Line int
	// Key is the path of what is wrong, as written in the file:
	// "schedule[1]", "steps[2].depends", "workerSelector.gpu". It is empty
	// for problems with the file or a document as a whole.
	Key     string
	Message string
}

// Error is "FILE:LINE: KEY: MESSAGE", or "FILE:LINE: MESSAGE" when the
// problem has no key.
func (p Problem) Error() string {
	if p.Key == "" {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	}
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Key, p.Message)
}

// Problems is every problem found; it is an error. Error() joins them one
// per line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// collector gathers the problems of one file.
type collector struct {
	path     string
	problems Problems

	// Of the DAG being read: its defaults for its steps (the lines they
	// span), and its shell.
	defaults                 []defaultEntry
	defaultsFrom, defaultsTo int
	defaultsNodes            int
	dagShell                 []string
	// inContainer: the DAG has a container, which its command steps run in.
	inContainer bool
	// The rules of the params being read (paramSchema, richParam).
	paramRules []*daguhav1.ParamRule
}

func (c *collector) addLine(line int, key, format string, args ...any) {
	if line < 1 {
		line = 1
	}
	c.problems = append(c.problems, Problem{File: c.path, Line: line, Key: key, Message: fmt.Sprintf(format, args...)})
}

// add reports a problem at node's line.
func (c *collector) add(node *yaml.Node, key, format string, args ...any) {
	line := 1
	if node != nil {
		line = node.Line
	}
	c.addLine(line, key, format, args...)
}

// err returns the problems sorted by line (in the order found within a
// line), or nil — never a typed nil inside the error interface.
func (c *collector) err() error {
	if len(c.problems) == 0 {
		return nil
	}
	sort.SliceStable(c.problems, func(i, j int) bool { return c.problems[i].Line < c.problems[j].Line })
	return c.problems
}
