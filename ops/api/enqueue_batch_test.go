package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
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

// Listing pages through every run exactly once, newest first, even when
// runs enqueued in one command share a create index across a page edge.
func TestListRunsPagesThroughEveryRunOnce(t *testing.T) {
	srv := startAPI(t)
	const runs = 25
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"dag": {"name": "page", "steps": [{"name": "s", "command": "true"}]}, "dag_run_id": "p%02d"}`, i)
			if code, out := call(t, srv, "POST", "/api/v2/dag-runs", body); code != http.StatusCreated {
				t.Errorf("enqueue p%02d: HTTP %d %v", i, code, out)
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	lastIndex := -1.0
	after, pages := "", 0
	for {
		path := "/api/v2/dag-runs?limit=7"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		code, body := call(t, srv, "GET", path, "")
		if code != http.StatusOK {
			t.Fatalf("GET %s: HTTP %d %v", path, code, body)
		}
		pages++
		for _, item := range body["runs"].([]any) {
			run := item.(map[string]any)
			id := run["dag_run_id"].(string)
			if seen[id] {
				t.Fatalf("run %s listed twice", id)
			}
			seen[id] = true
			index := run["create_index"].(float64)
			if lastIndex >= 0 && index > lastIndex {
				t.Fatalf("run %s (create index %v) after one of index %v: not newest first", id, index, lastIndex)
			}
			lastIndex = index
		}
		next, _ := body["next"].(string)
		if body["truncated"] != true {
			if next != "" {
				t.Fatalf("last page has a next cursor %q", next)
			}
			break
		}
		if next == "" || pages > runs {
			t.Fatalf("truncated page without a usable next cursor: %v", body)
		}
		after = next
	}
	if len(seen) != runs || pages != 4 {
		t.Fatalf("paged through %d runs in %d pages, want %d in 4", len(seen), pages, runs)
	}
	if code, body := call(t, srv, "GET", "/api/v2/dag-runs?after=nonsense", ""); code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(body["error"]), "nonsense") {
		t.Fatalf("bad cursor: HTTP %d %v", code, body)
	}
}
