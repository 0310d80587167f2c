package api_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// Concurrent enqueues share commands (the batcher) without losing or
// mixing up any: each caller gets its own run's answer, a run id sent
// twice at once is one run, and every run reads back as enqueued.
func TestConcurrentEnqueuesAreBatchedWithoutMixingAnswers(t *testing.T) {
	srv := startAPI(t)
	const runs = 96
	type answer struct {
		code int
		id   any
	}
	answers := make([]answer, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Runs 0 and 1 share an id with other params: one creates
			// it, the other is told of the conflict.
			id := fmt.Sprintf("b%d", i)
			if i == 1 {
				id = "b0"
			}
			body := fmt.Sprintf(`{"dag": {"name": "batch", "steps": [{"name": "s", "command": "true"}]}, "dag_run_id": %q, "params": "N=%d"}`, id, min(i, 1)*i)
			code, out := call(t, srv, "POST", "/api/v2/dag-runs", body)
			answers[i] = answer{code, out["dag_run_id"]}
		}()
	}
	wg.Wait()
	created := 0
	for i, a := range answers {
		want := fmt.Sprintf("b%d", i)
		if i == 1 {
			want = "b0"
		}
		if a.id != want && a.code != http.StatusConflict {
			t.Errorf("enqueue %d got the answer for %v, want %s", i, a.id, want)
		}
		switch {
		case i <= 1 && a.code == http.StatusCreated:
			created++
		case i <= 1 && a.code == http.StatusConflict:
		case i <= 1 || a.code != http.StatusCreated:
			t.Errorf("enqueue %d: HTTP %d", i, a.code)
		}
	}
	if created != 1 {
		t.Errorf("run b0 sent twice at once was created %d times", created)
	}
	indexes := map[any]bool{}
	for i := 2; i < runs; i++ {
		code, body := call(t, srv, "GET", fmt.Sprintf("/api/v2/dag-runs/b%d", i), "")
		if code != http.StatusOK || body["params"] != fmt.Sprintf("N=%d", i) {
			t.Fatalf("b%d read back: HTTP %d %v", i, code, body)
		}
		indexes[body["create_index"]] = true
	}
	t.Logf("%d runs took %d commands", runs-2, len(indexes))
}
