package api_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/daguha/daguha/dispatch/dagfile"
	"github.com/daguha/daguha/dispatch/valid"
	"github.com/daguha/daguha/dispatch/worker"
)

// One rule, every way in (#21): a DAG name or a selector label is
// accepted or refused identically, with the same message, by the API's
// enqueue, a DAG file and a worker's --labels flag. The message is
// package valid's; each path only says where the input was.
func TestOneRuleForNamesAndLabelsOnEveryPath(t *testing.T) {
	srv := startAPI(t)
	ok := `{"name": "a", "command": "true"}`

	names := []string{"etl", "etl_daily.v2-final", "_1", "-x", ".hidden", "..", "a/b", "my dag", "données", strings.Repeat("n", 128), strings.Repeat("n", 129)}
	for _, name := range names {
		t.Run("DAG name "+strconv.Quote(name), func(t *testing.T) {
			want := valid.DagName(name)
			paths := map[string]error{}

			code, body := call(t, srv, "POST", "/api/v2/dag-runs", `{"dag": {"name": `+jsonString(name)+`, "steps": [`+ok+`]}}`)
			paths["API"] = apiOutcome(code, body)

			_, err := dagfile.Parse("d.yaml", []byte("name: "+jsonString(name)+"\nsteps:\n  - name: a\n    command: \"true\"\n"))
			paths["DAG file name"] = err

			_, err = dagfile.Parse("d.yaml", []byte("steps:\n  - name: a\n    run: "+jsonString(name)+"\n---\nname: other\nsteps:\n  - name: b\n    command: x\n"))
			if err != nil && !strings.Contains(err.Error(), "steps[0].run") {
				err = nil // the child is unknown, which is another rule
			}
			paths["DAG file run:"] = err
			sameOutcome(t, want, paths)
		})
	}

	labels := []struct{ key, value string }{
		{"gpu", "true"},
		{"example.com/cuda", "12.4"},
		{"ключ", "значение"},
		{strings.Repeat("k", 253), "v"},
		{strings.Repeat("k", 254), "v"},
		{"zone", strings.Repeat("z", 63)},
		{"zone", strings.Repeat("z", 64)},
		{"zone", strings.Repeat("z", 900_000)},
		{"tier", ""},
		{"a", "b=c"},
		{"k", "a\x00b"},
	}
	for _, l := range labels {
		t.Run("label "+valid.Quote(l.key)+"="+valid.Quote(l.value), func(t *testing.T) {
			want := valid.LabelKey(l.key)
			if want == nil {
				want = valid.LabelValue(l.key, l.value)
			}
			paths := map[string]error{}
			selector := `{` + jsonString(l.key) + `: ` + jsonString(l.value) + `}`

			code, body := call(t, srv, "POST", "/api/v2/dag-runs", `{"dag": {"name": "etl", "workerSelector": `+selector+`, "steps": [`+ok+`]}}`)
			paths["API"] = apiOutcome(code, body)

			_, err := dagfile.Parse("d.yaml", []byte("workerSelector: "+selector+"\nsteps:\n  - name: a\n    command: \"true\"\n"))
			paths["DAG file"] = err

			_, err = worker.Settings("w1", l.key+"="+l.value, 1)
			paths["worker --labels"] = err
			sameOutcome(t, want, paths)
		})
	}

	// Ids: a run id is the caller's on an enqueue and names the parent of
	// a child; a worker id is the worker's flag (and its certificate's
	// name). Each is refused by its rule with the rule's message wherever
	// it comes in.
	ids := []string{"r1", "2026-03-01T12:00:00", "etl.v2_final-1", "host@123", "-x", ".hidden", ".", "..", "a/b", "a b", "ü", strings.Repeat("i", 128), strings.Repeat("i", 129), strings.Repeat("w", 253), strings.Repeat("w", 254)}
	for _, id := range ids {
		t.Run("run id "+strconv.Quote(id), func(t *testing.T) {
			want := valid.RunID(id)
			paths := map[string]error{}
			code, body := call(t, srv, "POST", "/api/v2/dag-runs", `{"dag_run_id": `+jsonString(id)+`, "dag": {"name": "etl", "steps": [`+ok+`]}}`)
			paths["API dag_run_id"] = apiOutcome(code, body)
			code, body = call(t, srv, "POST", "/api/v2/dag-runs", `{"parent_dag_run_id": `+jsonString(id)+`, "dag": {"name": "etl", "steps": [`+ok+`]}}`)
			err := apiOutcome(code, body)
			if err != nil && strings.Contains(err.Error(), "no such run") {
				err = nil // a well-formed id of no run: another rule
			}
			paths["API parent_dag_run_id"] = err
			sameOutcome(t, want, paths)
		})
		t.Run("worker id "+strconv.Quote(id), func(t *testing.T) {
			want := valid.WorkerID(id)
			paths := map[string]error{}
			_, paths["worker --worker-id"] = worker.Settings(id, "", 1)
			sameOutcome(t, want, paths)
		})
	}

	t.Run("65 selector entries", func(t *testing.T) {
		want := valid.LabelCount(65)
		paths := map[string]error{}
		code, body := call(t, srv, "POST", "/api/v2/dag-runs", `{"dag": {"name": "etl", "workerSelector": {`+jsonLabels(65)+`}, "steps": [`+ok+`]}}`)
		paths["API"] = apiOutcome(code, body)
		_, paths["DAG file"] = dagfile.Parse("d.yaml", []byte("workerSelector: {"+jsonLabels(65)+"}\nsteps:\n  - name: a\n    command: \"true\"\n"))
		flag := make([]string, 65)
		for i := range flag {
			flag[i] = "k" + strconv.Itoa(i) + "=v"
		}
		_, paths["worker --labels"] = worker.Settings("w1", strings.Join(flag, ","), 1)
		sameOutcome(t, want, paths)
	})
}

// apiOutcome is an enqueue's answer as an error: nil when it was taken.
func apiOutcome(code int, body map[string]any) error {
	if code < 300 {
		return nil
	}
	msg, _ := body["error"].(string)
	return &apiError{code: code, msg: msg}
}

type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return "HTTP " + strconv.Itoa(e.code) + ": " + e.msg }

// sameOutcome fails unless every path accepted (want nil) or every path
// refused with want's message.
func sameOutcome(t *testing.T, want error, paths map[string]error) {
	t.Helper()
	for path, got := range paths {
		switch {
		case want == nil && got != nil:
			t.Errorf("%s refused what the rules accept: %v", path, got)
		case want != nil && got == nil:
			t.Errorf("%s accepted what the rules refuse (%v)", path, want)
		case want != nil && !strings.Contains(got.Error(), want.Error()):
			t.Errorf("%s refused with %q, not with the rule's message %q", path, got, want)
		}
		if api, isAPI := got.(*apiError); isAPI && api.code != http.StatusBadRequest {
			t.Errorf("API answered %d, want 400: %s", api.code, api.msg)
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
