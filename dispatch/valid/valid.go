// Package valid is the one home of the rules for what comes into the
// cluster from outside: names and ids, worker labels and selectors, and
// the sizes of DAGs, params, reports and messages. The HTTP API, DAG
// files, the worker's flags and config, and the RPCs all check their input
// here, so a name or a label is accepted or refused identically, with the
// same message, whichever way it comes in.
//
// Every check returns nil or an *Error that names the input (quoted, cut
// short when long) and the rule it broke. Callers add where the input was
// (a file and line, a JSON field, a flag) in front of it. Labels are read
// from and written in their k=v,k=v form here too (ParseLabels,
// FormatLabels), and reported texts are cut to their limits (ClipError,
// ClipTail), by workers before they send them and by servers after.
//
// This package is a leaf: it imports nothing of daguha, keeps no state and
// does no I/O.
package valid

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on names and ids.
const (
	// MaxNameBytes bounds DAG names, run ids, step names and output
	// names: they end up in keys, URLs, file names and logs.
	MaxNameBytes = 128
	// MaxIDBytes bounds worker ids and server node names, as long as a
	// DNS name (a worker's default id is its host name and PID).
	MaxIDBytes = 253
	// MaxLabelKeyBytes and MaxLabelValueBytes bound worker labels and
	// selector entries (the lengths DAG files have always allowed, as
	// Kubernetes labels do).
	MaxLabelKeyBytes   = 253
	MaxLabelValueBytes = 63
	// MaxLabels bounds a worker's labels and a selector's entries: a
	// selector with more could match no worker.
	MaxLabels = 64
	// MaxAddrBytes bounds a host:port address: a DNS name, brackets, a
	// colon and a port.
	MaxAddrBytes = MaxIDBytes + 8
)

// Limits on DAGs and runs.
const (
	// MaxDagSteps bounds the steps of one DAG, pushed, inline or sent as
	// YAML with an enqueue.
	MaxDagSteps = 1000
	// MaxDagBytes bounds one DAG as stored (its file's text, its parsed
	// form and its local DAGs), so that a run carrying it fits in one
	// message to a worker.
	MaxDagBytes = 2 << 20
	// MaxCommandBytes bounds a step's command or script.
	MaxCommandBytes = 64 << 10
	// MaxParamsBytes bounds the params given to a run or a child run.
	MaxParamsBytes = 64 << 10
)

// Limits on what workers report.
const (
	// MaxOutputTailBytes is how much of a step's output a worker keeps
	// and reports.
	MaxOutputTailBytes = 64 << 10
	// MaxErrorBytes bounds the error text of a step or a run: workers
	// cut longer messages to it.
	MaxErrorBytes = 8 << 10
	// MaxOutputValueBytes bounds what one step may capture into an
	// output variable.
	MaxOutputValueBytes = 1 << 20
	// MaxOutputsBytes bounds a run's output variables together (names
	// and values), so its end fits in one message.
	MaxOutputsBytes = 2 << 20
)

// Limits on messages.
const (
	// MaxMessageBytes is the largest gRPC message a server accepts, from
	// workers and from other servers alike, and the largest one a worker
	// sends or accepts.
	MaxMessageBytes = 4 << 20
	// MaxBatchBytes bounds what a server gathers into one command (runs
	// of an enqueue batch, DAGs of a push), so that the command, forwarded
	// to the leader, fits in one message with room to spare.
	MaxBatchBytes = 3 << 20
	// MaxTasksPerPoll bounds the runs one poll takes: a worker asks for
	// at most this many, the leader grants at most this many.
	MaxTasksPerPoll = 64
)

// Error is an input that breaks a rule.
type Error struct {
	// Field is what the input is ("DAG name", "label key"); empty when
	// the rule says it (counts).
	Field string
	// Value is the input; Quoted says whether it is shown (a count or a
	// size is not).
	Value  string
	Quoted bool
	// Of is what the input belongs to, when that helps find it (the key
	// of a label value).
	Of string
	// Rule says what was expected.
	Rule string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Rule
	}
	var b strings.Builder
	b.WriteString(e.Field)
	if e.Quoted {
		b.WriteString(" " + Quote(e.Value))
	}
	if e.Of != "" {
		b.WriteString(" of " + Quote(e.Of))
	}
	b.WriteString(": " + e.Rule)
	return b.String()
}

// quoteLimit is how much of a long input an error shows.
const quoteLimit = 64

// Quote writes s for a message: Go-quoted, and cut to its first bytes,
// with its length, when it is long (a 20 MB label must not make a 20 MB
// error).
func Quote(s string) string {
	if len(s) <= quoteLimit {
		return strconv.Quote(s)
	}
	cut := quoteLimit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

func refuse(field, value, rule string) *Error {
	return &Error{Field: field, Value: value, Quoted: true, Rule: rule}
}

// orNil turns a nil *Error into a nil error: in an error interface, a nil
// *Error would not compare equal to nil.
func orNil(err *Error) error {
	if err == nil {
		return nil
	}
	return err
}

// DagName: 1-128 ASCII letters, digits, '_', '.' and '-', starting with a
// letter, a digit or '_' (Dagu's DAG names, which are file names; no
// leading '-' or '.', so never "." or "..").
func DagName(name string) error {
	return simpleName("DAG name", name, MaxNameBytes, "", "must be 1-128 letters, digits, '_', '.' or '-', starting with a letter, a digit or '_'")
}

// QueueName: a queue's name follows the rule of DAG names (a DAG that
// names no queue is its own queue, named after it).
func QueueName(name string) error {
	return simpleName("queue name", name, MaxNameBytes, "", "must be 1-128 letters, digits, '_', '.' or '-', starting with a letter, a digit or '_'")
}

// WorkerID: 1-253 ASCII letters, digits, '_', '.', '-' and '@', starting
// with a letter, a digit or '_' (a host name, and host@PID, the default).
func WorkerID(id string) error {
	return simpleName("worker id", id, MaxIDBytes, "@", "must be 1-253 letters, digits, '_', '.', '-' or '@', starting with a letter, a digit or '_'")
}

// NodeName: a server's node name follows the rule of worker ids: both are
// names in the gossip pool and in certificates.
func NodeName(name string) error {
	return simpleName("node name", name, MaxIDBytes, "@", "must be 1-253 letters, digits, '_', '.', '-' or '@', starting with a letter, a digit or '_'")
}

func simpleName(field, name string, maxBytes int, extra, rule string) error {
	if name == "" || len(name) > maxBytes {
		return refuse(field, name, rule)
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		ok := ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			i > 0 && (ch == '.' || ch == '-' || strings.IndexByte(extra, ch) >= 0)
		if !ok {
			return refuse(field, name, rule)
		}
	}
	return nil
}

// RunID: 1-128 ASCII letters, digits, '_', '.', ':' and '-', and neither
// "." nor ".." (a URL would clean them away). Server-made ids (UUIDs)
// follow it too.
func RunID(id string) error {
	const rule = "must be 1-128 letters, digits, '_', '.', ':' or '-', and not . or .."
	if id == "" || len(id) > MaxNameBytes || id == "." || id == ".." {
		return refuse("run id", id, rule)
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch == '_' || ch == '.' || ch == ':' || ch == '-' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			return refuse("run id", id, rule)
		}
	}
	return nil
}

// StepName: 1-128 bytes of UTF-8 text without control characters and
// without a space at either end.
func StepName(name string) error {
	switch {
	case name == "":
		return refuse("step name", name, "must not be empty")
	case len(name) > MaxNameBytes:
		return refuse("step name", name, "must be at most 128 bytes")
	}
	return orNil(text("step name", name))
}

// text is the rule names and labels share: UTF-8, no control character,
// no space at either end.
func text(field, s string) *Error {
	switch {
	case !utf8.ValidString(s):
		return refuse(field, s, "must be UTF-8 text")
	case strings.ContainsFunc(s, isControl):
		return refuse(field, s, "must not contain control characters")
	case strings.TrimSpace(s) != s:
		return refuse(field, s, "must not start or end with a space")
	}
	return nil
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

// LabelKey: 1-253 bytes of text without '=' or ',' (labels are written
// k=v,k=v, and runs are queued under that form).
func LabelKey(key string) error {
	return orNil(label("label key", key, MaxLabelKeyBytes))
}

// LabelValue: 1-63 bytes of text without '=' or ','. A value is never
// empty: `gpu:` in a DAG file is a mistake, not a label. The error names
// the key too.
func LabelValue(key, value string) error {
	if err := label("label value", value, MaxLabelValueBytes); err != nil {
		err.Of = key
		return err
	}
	return nil
}

func label(field, s string, maxBytes int) *Error {
	switch {
	case s == "":
		return refuse(field, s, "must not be empty")
	case len(s) > maxBytes:
		return refuse(field, s, "must be at most "+strconv.Itoa(maxBytes)+" bytes")
	case strings.ContainsAny(s, "=,"):
		return refuse(field, s, "must not contain '=' or ','")
	}
	return text(field, s)
}

// LabelCount: at most 64 labels on a worker or entries in a selector.
func LabelCount(n int) error {
	if n > MaxLabels {
		return &Error{Rule: fmt.Sprintf("%d labels, more than the limit of %d", n, MaxLabels)}
	}
	return nil
}

// Labels checks a worker's labels or a selector: the count, then each
// key and value in key order. It returns the first problem.
func Labels(labels map[string]string) error {
	if err := LabelCount(len(labels)); err != nil {
		return err
	}
	for _, key := range sortedKeys(labels) {
		if err := LabelKey(key); err != nil {
			return err
		}
		if err := LabelValue(key, labels[key]); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Insertion sort: at most MaxLabels keys reach here (the count is
	// checked first), and this package imports nothing it need not.
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// StepCount: a DAG has 1-1000 steps, however it comes in.
func StepCount(n int) error {
	switch {
	case n == 0:
		return &Error{Rule: "a DAG needs at least one step"}
	case n > MaxDagSteps:
		return &Error{Rule: fmt.Sprintf("%d steps, more than the limit of %d per DAG", n, MaxDagSteps)}
	}
	return nil
}

// DagSize: a DAG as stored (text, parsed form and local DAGs) is at most
// MaxDagBytes.
func DagSize(n int) error {
	if n > MaxDagBytes {
		return &Error{Field: "DAG size", Rule: fmt.Sprintf("%d bytes, more than the limit of %d", n, MaxDagBytes)}
	}
	return nil
}

// Command: a step's command or script is at most 64 KiB.
func Command(s string) error {
	return size("command", s, MaxCommandBytes)
}

// Script: a step's script is at most 64 KiB, as a command is.
func Script(s string) error {
	return size("script", s, MaxCommandBytes)
}

// Params: a run's params are at most 64 KiB.
func Params(s string) error {
	return size("params", s, MaxParamsBytes)
}

func size(field, s string, maxBytes int) error {
	if len(s) > maxBytes {
		return &Error{Field: field, Rule: fmt.Sprintf("%d bytes, more than the limit of %d", len(s), maxBytes)}
	}
	return nil
}

// LogAddr: a worker's step log address is empty (no log service) or
// host:port, at most 261 bytes.
func LogAddr(addr string) error {
	if addr == "" {
		return nil
	}
	if len(addr) > MaxAddrBytes {
		return refuse("log address", addr, "must be at most "+strconv.Itoa(MaxAddrBytes)+" bytes")
	}
	colon := strings.LastIndexByte(addr, ':')
	port, err := strconv.Atoi(addr[colon+1:])
	if colon <= 0 || err != nil || port < 1 || port > 65535 || strings.ContainsFunc(addr, isControl) {
		return refuse("log address", addr, "want host:port")
	}
	return nil
}

// OutputName: a step's output variable is a shell variable name, at most
// 128 bytes: ASCII letters, digits and '_', not starting with a digit.
func OutputName(name string) error {
	const rule = "a variable name is letters, digits and underscores, starting with a letter or an underscore"
	if name == "" || len(name) > MaxNameBytes || name[0] >= '0' && name[0] <= '9' {
		return refuse("output name", name, rule)
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		if !(ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			return refuse("output name", name, rule)
		}
	}
	return nil
}

// Outputs: a run's outputs are at most MaxDagSteps variables (one per
// step), each named by OutputName, each value at most 1 MiB, all together
// at most 2 MiB.
func Outputs(outputs map[string]string) error {
	if len(outputs) > MaxDagSteps {
		return &Error{Field: "outputs", Rule: fmt.Sprintf("%d given, more than the limit of %d", len(outputs), MaxDagSteps)}
	}
	total := 0
	for name, value := range outputs {
		if err := OutputName(name); err != nil {
			return err
		}
		if err := size("output "+name, value, MaxOutputValueBytes); err != nil {
			return err
		}
		total += len(name) + len(value)
	}
	if total > MaxOutputsBytes {
		return &Error{Field: "outputs", Rule: fmt.Sprintf("%d bytes together, more than the limit of %d", total, MaxOutputsBytes)}
	}
	return nil
}

// OutputTail: a reported step output tail is at most 64 KiB.
func OutputTail(s string) error {
	return size("output tail", s, MaxOutputTailBytes)
}

// ErrorText: a reported step or run error is at most 8 KiB.
func ErrorText(s string) error {
	return size("error", s, MaxErrorBytes)
}

// ClipError cuts an error text to MaxErrorBytes (on a rune boundary,
// marking the cut), as workers do before they report it.
func ClipError(s string) string {
	if len(s) <= MaxErrorBytes {
		return s
	}
	const mark = " …(cut)"
	cut := MaxErrorBytes - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// ClipTail keeps the last MaxOutputTailBytes of an output tail, starting
// on a character: a worker cuts what it reports to it, and a server cuts
// what a worker sent.
func ClipTail(tail string) string {
	if len(tail) <= MaxOutputTailBytes {
		return tail
	}
	cut := len(tail) - MaxOutputTailBytes
	for cut < len(tail) && !utf8.RuneStart(tail[cut]) {
		cut++
	}
	return tail[cut:]
}

// MaxExecutors bounds the executors a worker may advertise.
const MaxExecutors = 32

// ExecutorName: an executor's name (http, jq, docker, ...) follows the
// rule of queue names, at most 63 bytes.
func ExecutorName(name string) error {
	return simpleName("executor name", name, 63, "", "must be 1-63 letters, digits, '_', '.' or '-', starting with a letter, a digit or '_'")
}

// WorkerCapabilities checks what a worker says of itself beside its
// labels: at most MaxExecutors executors, each named by the rule, and
// fingerprinted label keys that are keys of its labels.
func WorkerCapabilities(executors, autoLabels []string, labels map[string]string) error {
	if len(executors) > MaxExecutors {
		return &Error{Rule: fmt.Sprintf("%d executors, more than the limit of %d", len(executors), MaxExecutors)}
	}
	for _, e := range executors {
		if err := ExecutorName(e); err != nil {
			return err
		}
	}
	if len(autoLabels) > len(labels) {
		return &Error{Rule: fmt.Sprintf("%d fingerprinted labels of %d labels", len(autoLabels), len(labels))}
	}
	for _, k := range autoLabels {
		if _, ok := labels[k]; !ok {
			return refuse("fingerprinted label", k, "must be the key of one of the worker's labels")
		}
	}
	return nil
}
