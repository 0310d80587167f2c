package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Operation kinds of the run lifecycle.
const (
	OpEnqueue = "enqueue"
	OpRead    = "read"
	OpCancel  = "cancel"
	OpFinish  = "finish"
)

// Results an operation can have.
const (
	// ResultOK: an enqueue created the run or found it there (a retry);
	// a cancel was applied.
	ResultOK = "ok"
	// ResultUnknown: no answer (time-out, server error): the operation
	// may or may not have taken effect.
	ResultUnknown = "unknown"
	// ResultConflict: an enqueue refused as another run with the id.
	ResultConflict = "conflict"
	// ResultNotFound: the run does not exist.
	ResultNotFound = "notfound"
	// ResultFinished: a cancel refused because the run has ended.
	ResultFinished = "finished"
)

// Never is the return time of an operation whose answer never came: it
// may take effect at any time after its call.
const Never = math.MaxInt64

// Op is one recorded operation: what a client (or a worker, for finish)
// asked, when, and what came back. A read's result is the run's status
// or notfound; a finish's result is the status the cluster accepted.
type Op struct {
	Client int    `json:"client"`
	Kind   string `json:"kind"`
	RunID  string `json:"run"`
	Call   int64  `json:"call"`
	Return int64  `json:"return"`
	Result string `json:"result"`
	Server string `json:"server,omitempty"`
	Detail string `json:"detail,omitempty"`
}

func (op Op) String() string {
	ret := "never"
	if op.Return != Never {
		ret = time.Unix(0, op.Return).Format("15:04:05.000")
	}
	s := fmt.Sprintf("%s..%s client %d %s %s -> %s", time.Unix(0, op.Call).Format("15:04:05.000"), ret, op.Client, op.Kind, op.RunID, op.Result)
	if op.Server != "" {
		s += " (" + op.Server + ")"
	}
	if op.Detail != "" {
		s += ": " + op.Detail
	}
	return s
}

// History collects operations from concurrent clients.
type History struct {
	mu  sync.Mutex
	ops []Op
}

// Add records an operation.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns the operations so far, by call time.
func (h *History) Ops() []Op {
	h.mu.Lock()
	ops := append([]Op(nil), h.ops...)
	h.mu.Unlock()
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	return ops
}

// logLine is a line of a daguha process's JSON log, the fields the
// checkers read.
type logLine struct {
	Time         time.Time `json:"time"`
	Msg          string    `json:"msg"`
	Run          string    `json:"run"`
	Attempt      uint32    `json:"attempt"`
	FencingToken uint64    `json:"fencing_token"`
	Status       string    `json:"status"`
	CalledAt     int64     `json:"called_at_unix_nano"`
	Step         string    `json:"step"`
	Dag          string    `json:"dag"`
	Slot         string    `json:"slot"`
	Worker       string    `json:"worker"`
}

// readLog returns the JSON lines of a process log (other lines, such as
// the harness's start markers, are skipped).
func readLog(path string) ([]logLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []logLine
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 16<<20)
	for scanner.Scan() {
		text := scanner.Bytes()
		if len(text) == 0 || text[0] != '{' {
			continue
		}
		var line logLine
		if json.Unmarshal(text, &line) == nil {
			lines = append(lines, line)
		}
	}
	return lines, scanner.Err()
}

// Finish is a run end a worker saw the cluster accept.
type Finish struct {
	Worker       string
	RunID        string
	Attempt      uint32
	FencingToken uint64
	Status       string // succeeded, failed, cancelled
	Call, Return int64
}

// workerFinishes reads the accepted run ends from a worker's log.
func workerFinishes(worker, path string) ([]Finish, error) {
	lines, err := readLog(path)
	if err != nil {
		return nil, err
	}
	var out []Finish
	for _, l := range lines {
		if l.Msg != "run finished" {
			continue
		}
		out = append(out, Finish{Worker: worker, RunID: l.Run, Attempt: l.Attempt, FencingToken: l.FencingToken,
			Status: strings.ToLower(strings.TrimPrefix(l.Status, "RUN_STATUS_")), Call: l.CalledAt, Return: l.Time.UnixNano()})
	}
	return out, nil
}

// Firing is a cron slot a server logged as fired.
type Firing struct {
	Server, Dag, Slot, RunID string
}

// serverFirings reads the slots a server fired.
func serverFirings(server, path string) ([]Firing, error) {
	lines, err := readLog(path)
	if err != nil {
		return nil, err
	}
	var out []Firing
	for _, l := range lines {
		if l.Msg == "schedule fired" {
			out = append(out, Firing{Server: server, Dag: l.Dag, Slot: l.Slot, RunID: l.Run})
		}
	}
	return out, nil
}

// Execution is one line a step appended to its worker's exec file.
type Execution struct {
	RunID, Step, Worker string
	Attempt             uint32
	FencingToken        uint64
}

// execLine is what a chaos step prints and appends: enough to tell which
// attempt, under which lease, executed it.
const execLine = `echo "exec run=$DAG_RUN_ID step=$DAG_RUN_STEP_NAME attempt=$DAG_RUN_ATTEMPT token=$DAG_RUN_FENCING_TOKEN worker=$CHAOS_WORKER" | tee -a "$CHAOS_EXEC_FILE"`

// parseExec reads the fields of an exec line, wherever it is in text.
func parseExec(text string) (Execution, bool) {
	i := strings.Index(text, "exec run=")
	if i < 0 {
		return Execution{}, false
	}
	line := text[i:]
	if j := strings.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	var e Execution
	n, err := fmt.Sscanf(line, "exec run=%s step=%s attempt=%d token=%d worker=%s", &e.RunID, &e.Step, &e.Attempt, &e.FencingToken, &e.Worker)
	return e, err == nil && n == 5
}

// readExecutions reads a worker's exec file (missing: none yet).
func readExecutions(path string) ([]Execution, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Execution
	for _, line := range strings.Split(string(data), "\n") {
		if e, ok := parseExec(line); ok {
			out = append(out, e)
		}
	}
	return out, nil
}
