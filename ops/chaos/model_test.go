package chaos

import "testing"

// op builds an operation of run "r" over [call, ret].
func op(kind string, call, ret int64, result string) Op {
	return Op{Kind: kind, RunID: "r", Call: call, Return: ret, Result: result}
}

// The model accepts the histories a correct cluster can produce and
// rejects the ones that break a promise, each named after the rule.
func TestModelAcceptsGoodHistoriesAndRejectsBadOnes(t *testing.T) {
	cases := []struct {
		name string
		ops  []Op
		good bool
	}{
		{"enqueue, read, finish, read", []Op{
			op(OpEnqueue, 0, 10, ResultOK), op(OpRead, 11, 12, "queued"), op(OpFinish, 13, 20, "succeeded"), op(OpRead, 21, 22, "succeeded"),
		}, true},
		{"a read concurrent with the enqueue may miss the run", []Op{
			op(OpEnqueue, 0, 10, ResultOK), op(OpRead, 5, 6, ResultNotFound), op(OpRead, 11, 12, "running"),
		}, true},
		{"an enqueue that timed out may have happened", []Op{
			op(OpEnqueue, 0, Never, ResultUnknown), op(OpRead, 20, 21, "queued"),
		}, true},
		{"an enqueue that timed out may not have happened", []Op{
			op(OpEnqueue, 0, Never, ResultUnknown), op(OpRead, 20, 21, ResultNotFound),
		}, true},
		{"a retried enqueue finds the run there", []Op{
			op(OpEnqueue, 0, 10, ResultOK), op(OpEnqueue, 11, 20, ResultOK), op(OpRead, 21, 22, "queued"),
		}, true},
		{"a run may end unseen before a read", []Op{
			op(OpEnqueue, 0, 10, ResultOK), op(OpRead, 11, 12, "cancelled"),
		}, true},
		{"cancel of a live run, then its end", []Op{
			op(OpEnqueue, 0, 10, ResultOK), op(OpCancel, 11, 12, ResultOK), op(OpFinish, 13, 14, "cancelled"), op(OpCancel, 15, 16, ResultFinished),
		}, true},
		{"an acknowledged enqueue is lost", []Op{
			op(OpEnqueue, 0, 10, ResultOK), op(OpRead, 11, 12, ResultNotFound),
		}, false},
		{"a run finished twice", []Op{
			op(OpEnqueue, 0, 10, ResultOK), op(OpFinish, 11, 12, "succeeded"), op(OpFinish, 13, 14, "succeeded"),
		}, false},
		{"an ended run runs again", []Op{
			op(OpEnqueue, 0, 10, ResultOK), op(OpRead, 11, 12, "failed"), op(OpRead, 13, 14, "running"),
		}, false},
		{"an end changes", []Op{
			op(OpEnqueue, 0, 10, ResultOK), op(OpFinish, 11, 12, "succeeded"), op(OpRead, 13, 14, "failed"),
		}, false},
		{"a retried enqueue is refused as a conflict", []Op{
			op(OpEnqueue, 0, 10, ResultOK), op(OpEnqueue, 11, 20, ResultConflict),
		}, false},
		{"a finish of a run never enqueued", []Op{
			op(OpFinish, 0, 10, "succeeded"),
		}, false},
		{"a cancel says finished before any end", []Op{
			op(OpEnqueue, 0, 10, ResultOK), op(OpCancel, 11, 12, ResultFinished), op(OpRead, 13, 14, "queued"),
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad, checked := CheckLinearizable(tc.ops, 0)
			if checked != 1 {
				t.Fatalf("checked %d runs, want 1", checked)
			}
			if good := len(bad) == 0; good != tc.good {
				t.Fatalf("linearizable: %v, want %v; verdicts %+v", good, tc.good, bad)
			}
		})
	}
}

// Exec lines are read back whatever surrounds them in a step's output.
func TestExecLineParses(t *testing.T) {
	e, ok := parseExec("noise\nexec run=r-1 step=a attempt=2 token=77 worker=worker3\nmore")
	if !ok || e != (Execution{RunID: "r-1", Step: "a", Attempt: 2, FencingToken: 77, Worker: "worker3"}) {
		t.Fatalf("parsed %+v %v", e, ok)
	}
	if _, ok := parseExec("exec run=r-1 step=a attempt= token= worker="); ok {
		t.Fatal("an exec line without attempt and token parsed")
	}
}
