package store_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

// A batch transition is its items applied in order in one transaction: a
// batch must leave the store, through every index, and answer each item,
// exactly as the same items applied one transaction each. Batches read
// the runs they change apart from their write transaction (batchreads.go);
// a read that missed an earlier write of its own batch (the same run
// enqueued, granted or finished twice in one entry, a parent and its
// child ending together) shows here as a difference. Random batches over
// a few run ids, so that items of one batch meet often.
func TestBatchesAnswerAsTheirItemsOneByOne(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		batched, single := newStore(t), newStore(t)
		index := uint64(1)
		ids := []string{"a", "b", "c", "d", "e", "f"}
		dag := func(retries uint32) *daguhav1.DagSpec {
			d := &daguhav1.DagSpec{Name: "x", Steps: []*daguhav1.StepSpec{{Name: "s", Command: "true"}}}
			if retries > 0 {
				d.RetryPolicy = &daguhav1.RetryPolicy{Limit: retries}
			}
			return d
		}
		for step := 0; step < 60; step++ {
			n := 1 + rng.IntN(6)
			var (
				answerBatched, answerSingle []string
				err                         error
			)
			apply := func(s *store.StateStore, idx uint64, batch any) []string {
				var answers []string
				switch items := batch.(type) {
				case []*daguhav1.Run:
					o, e := s.EnqueueRuns(idx, items)
					answers, err = sprintEach(o), e
				case []*daguhav1.Grant:
					o, e := s.GrantLeases(idx, items)
					answers, err = sprintEach(o), e
				case []*daguhav1.StepReport:
					o, e := s.ReportSteps(idx, items)
					answers, err = sprintEach(o), e
				case []*daguhav1.Finish:
					o, e := s.FinishRuns(idx, items)
					answers, err = sprintEach(o), e
				}
				if err != nil {
					t.Fatalf("seed %d step %d: %v", seed, step, err)
				}
				return answers
			}
			// token is the fencing token a run holds now (its grant's
			// index), or a wrong one now and then.
			token := func(id string) uint64 {
				run, _ := batched.Run(id)
				if rng.IntN(8) == 0 {
					return run.GetFencingToken() + 1
				}
				return run.GetFencingToken()
			}
			var batch any
			switch rng.IntN(4) {
			case 0:
				var runs []*daguhav1.Run
				for range n {
					id := ids[rng.IntN(len(ids))]
					run := &daguhav1.Run{Id: id, DagName: "x", Dag: dag(uint32(rng.IntN(2))), EnqueuedAtUnixNano: int64(step)}
					if rng.IntN(3) == 0 {
						// A child of another run (refused unless that one
						// is queued or running).
						run.Id, run.ParentDagRunId, run.RootDagRunId = id+"-child", ids[rng.IntN(len(ids))], "root"
					}
					runs = append(runs, run)
				}
				batch = runs
			case 1:
				var grants []*daguhav1.Grant
				for range n {
					id := ids[rng.IntN(len(ids))]
					if rng.IntN(3) == 0 {
						id += "-child"
					}
					run, _ := batched.Run(id)
					grants = append(grants, &daguhav1.Grant{RunId: id, WorkerId: fmt.Sprintf("w%d", rng.IntN(2)), Attempt: run.GetAttempt() + 1,
						MaxActiveRuns: uint32(2 + rng.IntN(4)), NowUnixNano: int64(step)})
				}
				batch = grants
			case 2:
				var reports []*daguhav1.StepReport
				for range n {
					id := ids[rng.IntN(len(ids))]
					reports = append(reports, &daguhav1.StepReport{RunId: id, FencingToken: token(id),
						Step: &daguhav1.StepState{Name: "s", Status: daguhav1.StepStatus_STEP_STATUS_RUNNING, Retry: uint32(step)}})
				}
				batch = reports
			case 3:
				var finishes []*daguhav1.Finish
				statuses := []daguhav1.RunStatus{daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, daguhav1.RunStatus_RUN_STATUS_FAILED, daguhav1.RunStatus_RUN_STATUS_CANCELLED}
				for range n {
					id := ids[rng.IntN(len(ids))]
					if rng.IntN(3) == 0 {
						id += "-child"
					}
					finishes = append(finishes, &daguhav1.Finish{RunId: id, FencingToken: token(id), Status: statuses[rng.IntN(len(statuses))], NowUnixNano: int64(step),
						Steps: []*daguhav1.StepState{{Name: "s", Status: daguhav1.StepStatus_STEP_STATUS_SUCCEEDED, Retry: uint32(step)}}})
				}
				batch = finishes
			}
			answerBatched = apply(batched, index, batch)
			// The same items one at a time, each in its own transaction at
			// the same Raft index.
			switch items := batch.(type) {
			case []*daguhav1.Run:
				for _, x := range items {
					answerSingle = append(answerSingle, apply(single, index, []*daguhav1.Run{x})...)
				}
			case []*daguhav1.Grant:
				for _, x := range items {
					answerSingle = append(answerSingle, apply(single, index, []*daguhav1.Grant{x})...)
				}
			case []*daguhav1.StepReport:
				for _, x := range items {
					answerSingle = append(answerSingle, apply(single, index, []*daguhav1.StepReport{x})...)
				}
			case []*daguhav1.Finish:
				for _, x := range items {
					answerSingle = append(answerSingle, apply(single, index, []*daguhav1.Finish{x})...)
				}
			}
			index++
			if !slices.Equal(answerBatched, answerSingle) {
				t.Fatalf("seed %d step %d: a batch of %T answered\n%v\none by one:\n%v", seed, step, batch, answerBatched, answerSingle)
			}
			if err := store.SameContents(batched, single); err != nil {
				t.Fatalf("seed %d step %d: after a batch of %T the stores differ: %v", seed, step, batch, err)
			}
		}
	}
}

// sprintEach prints each outcome of a batch.
func sprintEach[T any](outcomes []T) []string {
	answers := make([]string, 0, len(outcomes))
	for _, o := range outcomes {
		answers = append(answers, fmt.Sprint(o))
	}
	return answers
}
