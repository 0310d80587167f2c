package worker

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// childCluster plays the cluster for parallel steps with real child runs:
// each child is a run of its DAG executed by an engine of its own (real sh
// processes). As the leader does, it derives a child's id from the step,
// the retry and the params, and starts a child once per id: asking again
// returns the child that exists, running or ended.
type childCluster struct {
	fakeHost
	engine *Engine
	child  *daguhav1.DagSpec

	mu        sync.Mutex
	runs      map[string]*clusterChild
	created   []string // child ids in the order they were started
	active    int      // started and not ended
	maxActive int
}

type clusterChild struct {
	params string
	done   chan struct{}
	run    *daguhav1.Run
}

func newChildCluster(t *testing.T, child *daguhav1.DagSpec) *childCluster {
	return &childCluster{engine: testEngine(t), child: child, runs: map[string]*clusterChild{}}
}

func (c *childCluster) StartChild(ctx context.Context, step string, retry uint32, params string) (string, error) {
	sum := sha256.Sum256([]byte(params))
	id := fmt.Sprintf("%s-%d-%x", step, retry, sum[:6])
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.runs[id]; ok {
		return id, nil
	}
	child := &clusterChild{params: params, done: make(chan struct{})}
	c.runs[id] = child
	c.created = append(c.created, id)
	c.active++
	c.maxActive = max(c.maxActive, c.active)
	go func() {
		run := &daguhav1.Run{Id: id, DagName: c.child.GetName(), Params: params, Attempt: 1, Dag: c.child}
		status, message, outputs := c.engine.Execute(context.Background(), run, &fakeHost{})
		c.mu.Lock()
		child.run = &daguhav1.Run{Id: id, Status: status, Error: message, Outputs: outputs}
		c.active--
		c.mu.Unlock()
		close(child.done)
	}()
	return id, nil
}

func (c *childCluster) WaitChild(ctx context.Context, id string) (*daguhav1.Run, error) {
	c.mu.Lock()
	child, ok := c.runs[id]
	c.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no child run %s", id)
	}
	select {
	case <-child.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return child.run, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// childDag is the DAG each item runs: it records the params it got as
// $D/seen/<run id> and passes them on as its output RESULT; it fails for
// an item "fail".
func childDag(dir string) *daguhav1.DagSpec {
	return &daguhav1.DagSpec{Name: "per-item", Env: []*daguhav1.EnvVar{{Name: "D", Value: dir}}, Steps: []*daguhav1.StepSpec{{
		Name:   "work",
		Output: "RESULT",
		Command: `mkdir -p "$D/seen"; printf '%s|%s|%s|%s' "${1:-}" "${2:-}" "${FILE:-}${REGION:-}" "${N:-}" > "$D/seen/$DAG_RUN_ID"; ` +
			`sleep 0.2; [ "${1:-}${FILE:-}" != fail ] || exit 3; echo "done ${1:-}${FILE:-}${REGION:-}"`,
	}}}
}

func seen(t *testing.T, dir string, c *childCluster) []string {
	t.Helper()
	c.mu.Lock()
	ids := slices.Clone(c.created)
	c.mu.Unlock()
	var out []string
	for _, id := range ids {
		data, err := os.ReadFile(filepath.Join(dir, "seen", id))
		if err != nil {
			t.Fatalf("child %s left no record: %v", id, err)
		}
		out = append(out, string(data))
	}
	slices.Sort(out)
	return out
}

type summary struct {
	Summary struct{ Total, Succeeded, Failed int }
	Results []struct {
		RunID  string `json:"runId"`
		Params string
		Status string
		Output map[string]string
		Error  string
	}
	Outputs []map[string]string
}

// A parallel step starts one child run per distinct item, never more than
// maxConcurrent at once, passes each its item through the step's params,
// records the children in its state, and puts Dagu's summary in its
// output. Run again (as a new attempt after a failover does), it starts no
// child twice.
func TestParallelStepRunsAChildPerItemWithinMaxConcurrent(t *testing.T) {
	dir := t.TempDir()
	c := newChildCluster(t, childDag(dir))
	items := []*daguhav1.ParallelItem{{Value: "a.csv"}, {Value: "b.csv"}, {Value: "c d.csv"}, {Value: "a.csv"}, {Value: "${D}/e.csv"}, {Value: "f.csv"}}
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "fan-out", ChildDag: "per-item", ChildParams: "FILE=${ITEM}", Output: "RESULTS",
			Parallel: &daguhav1.ParallelSpec{Items: items, MaxConcurrent: 2}},
		&daguhav1.StepSpec{Name: "after", Depends: []string{"fan-out"}, Command: `printf '%s' "$RESULTS" > "$D/results.json"`},
	)
	r := execute(t, context.Background(), testEngine(t), run, c)
	if r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	want := []string{"||" + dir + "/e.csv|", "||a.csv|", "||b.csv|", "||c d.csv|", "||f.csv|"}
	if got := seen(t, dir, c); !slices.Equal(got, want) {
		t.Errorf("children saw\n %q\nwant one each (a.csv twice is one child; a value with a space stays one)\n %q", got, want)
	}
	if c.maxActive != 2 {
		t.Errorf("at most %d children were active at once, want maxConcurrent 2", c.maxActive)
	}

	var s summary
	data, _ := os.ReadFile(filepath.Join(dir, "results.json"))
	if err := json.Unmarshal(data, &s); err != nil || r.outputs["RESULTS"] != string(data) {
		t.Fatalf("summary %q (%v), run output %q", data, err, r.outputs["RESULTS"])
	}
	if s.Summary.Total != 5 || s.Summary.Succeeded != 5 || s.Summary.Failed != 0 || len(s.Results) != 5 || len(s.Outputs) != 5 {
		t.Fatalf("summary: %+v", s)
	}
	if !strings.Contains(string(data), `"total": 5`) {
		t.Errorf("summary is not indented as Dagu's: %s", data)
	}
	for i, file := range []string{"a.csv", "b.csv", `"c d.csv"`, dir + "/e.csv", "f.csv"} {
		res := s.Results[i]
		if res.Params != "FILE="+file || res.Status != "success" || res.Output["RESULT"] == "" || s.Outputs[i]["RESULT"] != res.Output["RESULT"] {
			t.Errorf("result %d: %+v, want params FILE=%s in the items' order", i, res, file)
		}
	}

	last := c.last()["fan-out"]
	recorded := last.GetParallelChildren()
	if last.GetStatus() != daguhav1.StepStatus_STEP_STATUS_SUCCEEDED || len(recorded) != 5 {
		t.Fatalf("fan-out: %v", last)
	}
	for i, child := range recorded {
		if child.GetChildRunId() != s.Results[i].RunID || child.GetStatus() != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED || child.GetParams() != s.Results[i].Params {
			t.Errorf("recorded child %d: %v, want %s succeeded", i, child, s.Results[i].RunID)
		}
	}
	progress := false
	for _, st := range c.of("fan-out") {
		progress = progress || st.GetStatus() == daguhav1.StepStatus_STEP_STATUS_RUNNING && len(st.GetParallelChildren()) > 0
	}
	if !progress {
		t.Error("no running report recorded the children started")
	}

	// The next attempt asks for the same children: none starts again.
	again := proto.Clone(run).(*daguhav1.Run)
	again.Attempt = 2
	if r := execute(t, context.Background(), testEngine(t), again, c); r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("second attempt: %s %q", r.status, r.message)
	}
	if n := len(c.created); n != 5 {
		t.Errorf("%d children after the second attempt, want the 5 of the first", n)
	}
}

// Items from a variable: a JSON array of strings, numbers and maps; maps
// are the child's named params, the rest its params string, as in Dagu
// when the step gives no params.
func TestParallelItemsFromAVariable(t *testing.T) {
	dir := t.TempDir()
	c := newChildCluster(t, childDag(dir))
	run := testRun(dir, &daguhav1.StepSpec{Name: "fan-out", ChildDag: "per-item",
		Parallel: &daguhav1.ParallelSpec{ItemsFrom: "${ITEMS}", MaxConcurrent: 10}})
	run.Dag.Params = []*daguhav1.Param{{Name: "ITEMS", Value: `["one", 2, {"REGION": "eu", "N": 3}, "x y"]`}}
	if r := execute(t, context.Background(), testEngine(t), run, c); r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	want := []string{"2|||", "one|||", "x|y||", "||eu|3"}
	if got := seen(t, dir, c); !slices.Equal(got, want) {
		t.Errorf("children saw %q, want %q", got, want)
	}

	// Lines, when the variable holds several; a variable not set fails the
	// step before any child starts.
	for _, tc := range []struct {
		name, from, want string
	}{
		{"lines", "${LIST}", ""},
		{"unset", "${NOPE}", "parallel: items ${NOPE}: NOPE is not set"},
	} {
		dir := t.TempDir()
		c := newChildCluster(t, childDag(dir))
		run := testRun(dir, &daguhav1.StepSpec{Name: "fan-out", ChildDag: "per-item", Parallel: &daguhav1.ParallelSpec{ItemsFrom: tc.from, MaxConcurrent: 1}})
		run.Dag.Env = append(run.Dag.Env, &daguhav1.EnvVar{Name: "LIST", Value: "first line\n\n  second  \n"})
		r := execute(t, context.Background(), testEngine(t), run, c)
		if tc.want != "" {
			if st := c.last()["fan-out"]; r.status != daguhav1.RunStatus_RUN_STATUS_FAILED || st.GetError() != tc.want || len(c.created) != 0 {
				t.Errorf("%s: %s %q, step %v, %d children", tc.name, r.status, r.message, st, len(c.created))
			}
			continue
		}
		if got := seen(t, dir, c); r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED || !slices.Equal(got, []string{"first|line||", "second|||"}) {
			t.Errorf("%s: %s %q, children saw %q", tc.name, r.status, r.message, got)
		}
	}
}

// A child that fails fails the step, after every other child ran (Dagu
// does not stop the others); with continueOn the summary still reaches
// the next step.
func TestParallelStepFailsWhenAChildFails(t *testing.T) {
	dir := t.TempDir()
	c := newChildCluster(t, childDag(dir))
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "fan-out", ChildDag: "per-item", Output: "RESULTS", ContinueOnFailure: true,
			Parallel: &daguhav1.ParallelSpec{Items: []*daguhav1.ParallelItem{{Value: "ok1"}, {Value: "fail"}, {Value: "ok2"}}, MaxConcurrent: 1}},
		&daguhav1.StepSpec{Name: "after", Depends: []string{"fan-out"}, Command: `printf '%s' "$RESULTS" > "$D/results.json"`},
	)
	r := execute(t, context.Background(), testEngine(t), run, c)
	if r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("run: %s %q (the failure is continued on)", r.status, r.message)
	}
	if got := seen(t, dir, c); len(got) != 3 {
		t.Errorf("children %q, want all three to run", got)
	}
	st := c.last()["fan-out"]
	if st.GetStatus() != daguhav1.StepStatus_STEP_STATUS_FAILED || !strings.HasPrefix(st.GetError(), "1 of 3 child runs failed; first: child run fan-out-1-") {
		t.Errorf("fan-out: %v", st)
	}
	var s summary
	data, _ := os.ReadFile(filepath.Join(dir, "results.json"))
	if err := json.Unmarshal(data, &s); err != nil || s.Summary.Failed != 1 || s.Summary.Succeeded != 2 || s.Results[1].Status != "failed" || len(s.Outputs) != 2 {
		t.Errorf("summary %s (%v)", data, err)
	}
}

// Cancelling the parent while children run ends the step CANCELLED at
// once, with the children it started recorded; no other child starts.
// (The cluster cancels the children with their parent.)
func TestParallelStepCancelledWithItsRun(t *testing.T) {
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	child := &daguhav1.DagSpec{Name: "waits", Steps: []*daguhav1.StepSpec{{Name: "w",
		Command: fmt.Sprintf(`while [ ! -e %s ]; do sleep 0.05; done`, gate)}}}
	c := newChildCluster(t, child)
	defer c.release(t, gate)
	items := []*daguhav1.ParallelItem{{Value: "1"}, {Value: "2"}, {Value: "3"}, {Value: "4"}, {Value: "5"}}
	run := testRun(dir, &daguhav1.StepSpec{Name: "fan-out", ChildDag: "waits", Parallel: &daguhav1.ParallelSpec{Items: items, MaxConcurrent: 2}})
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	go func() {
		waitFor(t, 5*time.Second, "two children", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return len(c.created) == 2
		})
		cancel(errCancelled)
	}()
	r := execute(t, ctx, testEngine(t), run, c)
	if r.status != daguhav1.RunStatus_RUN_STATUS_CANCELLED {
		t.Fatalf("run: %s %q", r.status, r.message)
	}
	st := c.last()["fan-out"]
	if st.GetStatus() != daguhav1.StepStatus_STEP_STATUS_CANCELLED || len(st.GetParallelChildren()) != 2 {
		t.Errorf("fan-out: %v, want cancelled with its 2 children", st)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.created) != 2 {
		t.Errorf("%d children started, want 2", len(c.created))
	}
}

// release opens the gate the children wait at and waits for them to end.
func (c *childCluster) release(t *testing.T, gate string) {
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Error(err)
	}
	c.mu.Lock()
	runs := slices.Collect(maps.Values(c.runs))
	c.mu.Unlock()
	for _, child := range runs {
		<-child.done
	}
}
