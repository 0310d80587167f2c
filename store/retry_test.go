package store_test

import (
	"testing"
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// A root run whose DAG has a retry policy is queued again when it fails,
// not before the policy's wait, as many times as its limit; a repeated
// finish of the failed attempt is taken and changes nothing; a child run
// is not retried by its DAG's policy.
func TestAFailedRunIsQueuedAgainByItsDagsRetryPolicy(t *testing.T) {
	s := newStore(t)
	policy := &daguhav1.RetryPolicy{Limit: 1, IntervalSec: 10, Backoff: 2}
	enqueue(t, s, 1, &daguhav1.Run{Id: "r", DagName: "d", Dag: &daguhav1.DagSpec{Name: "d", RetryPolicy: policy}},
		&daguhav1.Run{Id: "p", DagName: "p"})
	if o := enqueue(t, s, 2, &daguhav1.Run{Id: "c", DagName: "d", ParentDagRunId: "p", RootDagRunId: "p", Dag: &daguhav1.DagSpec{Name: "d", RetryPolicy: policy}}); !o[0].GetCreated() {
		t.Fatalf("enqueue of the child: %v", o)
	}
	token := grant(t, s, 3, "r", "w")
	fail := func(index uint64, token uint64, now int64) *daguhav1.RunOutcome {
		t.Helper()
		outcomes, err := s.FinishRuns(index, []*daguhav1.Finish{{RunId: "r", FencingToken: token, Status: daguhav1.RunStatus_RUN_STATUS_FAILED,
			Error: "step a failed", NowUnixNano: now}})
		if err != nil || len(outcomes) != 1 {
			t.Fatalf("finish: %v %v", outcomes, err)
		}
		return outcomes[0]
	}
	if o := fail(4, token, 1000); !o.GetApplied() {
		t.Fatalf("finish refused: %v", o)
	}
	run := status(t, s, "r")
	if run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_QUEUED || run.GetDagRetries() != 1 || run.GetWorkerId() != "" ||
		run.GetRetryAfterUnixNano() != 1000+int64(10*time.Second) || run.GetError() != "step a failed" ||
		len(run.GetAttempts()) != 1 || run.GetAttempts()[0].GetOutcome() != "failed" {
		t.Fatalf("after the first failure: %v", run)
	}
	if ids, count := pending(t, s, ""); len(ids) != 3 || count != 3 {
		t.Fatalf("pending %v (count %d), want r back beside p and c", ids, count)
	}
	if o := fail(5, token, 2000); !o.GetApplied() || status(t, s, "r").GetModifyIndex() != 4 {
		t.Fatalf("a repeated finish: %v, run %v", o, status(t, s, "r"))
	}

	// The second attempt fails too: the limit is reached, the run fails.
	outcomes, err := s.GrantLeases(6, []*daguhav1.Grant{{RunId: "r", WorkerId: "w", Attempt: 2, MaxActiveRuns: 10, NowUnixNano: 5}})
	if err != nil || !outcomes[0].GetGranted() {
		t.Fatalf("grant of the retry: %v %v", outcomes, err)
	}
	if o := fail(7, outcomes[0].GetFencingToken(), 3000); !o.GetApplied() {
		t.Fatalf("second finish: %v", o)
	}
	if run := status(t, s, "r"); run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_FAILED || run.GetDagRetries() != 1 || len(run.GetAttempts()) != 2 {
		t.Fatalf("after the second failure: %v", run)
	}

	// A child's retries are its parent step's.
	childToken := grant(t, s, 8, "c", "w")
	if outcomes, err := s.FinishRuns(9, []*daguhav1.Finish{{RunId: "c", FencingToken: childToken, Status: daguhav1.RunStatus_RUN_STATUS_FAILED, NowUnixNano: 9}}); err != nil || !outcomes[0].GetApplied() {
		t.Fatalf("child finish: %v %v", outcomes, err)
	}
	if run := status(t, s, "c"); run.GetStatus() != daguhav1.RunStatus_RUN_STATUS_FAILED {
		t.Fatalf("a child run was retried by its DAG's policy: %v", run)
	}
}
