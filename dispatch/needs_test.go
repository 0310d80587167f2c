package dispatch

import (
	"strings"
	"testing"
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
	"github.com/daguha/daguha/store"
)

func TestNeededExecutorsAreEachStepsAndTheContainers(t *testing.T) {
	dag := &daguhav1.DagSpec{Name: "d", ContainerJson: `{"image":"x"}`, Steps: []*daguhav1.StepSpec{
		{Name: "a", Command: "true"}, {Name: "b", Executor: "http"}, {Name: "c", Executor: "jq"}, {Name: "d", Executor: "http"},
	}, HandlerOn: &daguhav1.HandlerOn{Failure: &daguhav1.StepSpec{Name: "onFailure", Executor: "mail"}}}
	if got := strings.Join(NeededExecutors(dag), ","); got != "docker,http,jq,mail" {
		t.Fatalf("needs %s", got)
	}
	if got := strings.Join(MissingExecutors([]string{"http", "jq", "ssh"}, dag), ","); got != "docker,mail" {
		t.Fatalf("missing %s", got)
	}
	if NeededExecutors(&daguhav1.DagSpec{Steps: []*daguhav1.StepSpec{{Name: "a", Command: "true"}, {Name: "b", ChildDag: "x"}}}) != nil {
		t.Fatal("commands and child runs need an executor")
	}
}

// The leader never gives a worker a run that needs an executor the
// worker does not advertise; it takes the runs behind it instead, and a
// worker that runs the executor gets it.
func TestARunGoesOnlyToAWorkerThatRunsItsExecutors(t *testing.T) {
	state, err := store.NewStateStore()
	if err != nil {
		t.Fatal(err)
	}
	for i, run := range []*daguhav1.Run{
		{Id: "in-docker", DagName: "d", Dag: &daguhav1.DagSpec{Name: "d", Steps: []*daguhav1.StepSpec{{Name: "s", Executor: "docker"}}}},
		{Id: "plain", DagName: "e", Dag: &daguhav1.DagSpec{Name: "e", Steps: []*daguhav1.StepSpec{{Name: "s", Command: "true"}}}},
	} {
		if _, err := state.EnqueueRuns(uint64(i+1), []*daguhav1.Run{run}); err != nil {
			t.Fatal(err)
		}
	}
	st := &leaderState{reserved: map[string]bool{}, reservedByWorker: map[string]int{}, reservedByQueue: map[string]int{}}
	selectors, _, err := state.PendingSelectors()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	without := &daguhav1.WorkerInfo{Id: "without", MaxActiveRuns: 4, Executors: []string{"http", "jq"}}
	if run, _, _ := st.match(state, selectors, without, now); run.GetId() != "plain" {
		t.Fatalf("the worker without docker was matched with %v, want plain", run.GetId())
	}
	if run, _, _ := st.match(state, selectors, without, now); run != nil {
		t.Fatalf("the worker without docker was matched with %s", run.GetId())
	}
	with := &daguhav1.WorkerInfo{Id: "with", MaxActiveRuns: 4, Executors: []string{"docker", "http", "jq"}}
	if run, _, _ := st.match(state, selectors, with, now); run.GetId() != "in-docker" {
		t.Fatalf("the worker with docker was matched with %v, want in-docker", run.GetId())
	}
}
