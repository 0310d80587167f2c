package api_test

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/daguha/daguha/ops/api"
)

// The paths daguha's API shares with Dagu 1.x's under /api/v2 keep
// answering daguha's clients as before and answer Dagu's too: the request
// form picks the answer where the bodies differ, the filters of both
// apply, and lists and details carry both shapes.
func TestSharedPathsAnswerDaguhaAndDaguClients(t *testing.T) {
	env := startDagu(t, api.Options{})
	env.seed(t)

	t.Run("POST dag-runs with daguha's body", func(t *testing.T) {
		code, data := env.do(t, "POST", "/api/v2/dag-runs", `{"dag_name": "dagu-other", "dag_run_id": "o-1"}`)
		if body := object(t, data); code != http.StatusCreated || body["dag_run_id"] != "o-1" || body["created"] != true {
			t.Fatalf("HTTP %d %v", code, body)
		}
	})
	t.Run("POST dag-runs with Dagu's body", func(t *testing.T) {
		code, data := env.do(t, "POST", "/api/v2/dag-runs", `{"spec": "steps:\n  - name: s\n    command: echo x\n", "name": "dagu-sent", "dagRunId": "o-2"}`)
		if body := object(t, data); code != http.StatusOK || body["dagRunId"] != "o-2" || body["dag_run_id"] != nil {
			t.Fatalf("HTTP %d %v: want Dagu's answer", code, body)
		}
	})
	t.Run("POST dag-runs mixing the bodies", func(t *testing.T) {
		code, data := env.do(t, "POST", "/api/v2/dag-runs", `{"spec": "steps: []", "dag_name": "x"}`)
		if body := object(t, data); code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(body["error"]), `unknown field "dag_name"`) || body["code"] != "bad_request" {
			t.Fatalf("HTTP %d %v: want 400 naming the field, in both error shapes", code, body)
		}
	})

	ids := func(list any, key string) string {
		var out []string
		for _, run := range list.([]any) {
			out = append(out, fmt.Sprint(run.(map[string]any)[key]))
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	for _, c := range []struct{ query, want string }{
		{"name=dagu-e", "r-done r-queued r-running"},
		{"name=ETL&status=5", "r-queued"},
		{"dag_name=dagu-other", "o-1"},
		{"status=queued&dag_name=dagu-etl", "r-queued"},
		{"dagRunId=o-", "o-1 o-2"},
		{"status=7", ""},
	} {
		t.Run("GET dag-runs?"+c.query, func(t *testing.T) {
			code, data := env.do(t, "GET", "/api/v2/dag-runs?"+c.query, "")
			body := object(t, data)
			if code != http.StatusOK || ids(body["runs"], "dag_run_id") != c.want || ids(body["dagRuns"], "dagRunId") != c.want {
				t.Fatalf("HTTP %d: runs %q, dagRuns %q; want %q in both", code, ids(body["runs"], "dag_run_id"), ids(body["dagRuns"], "dagRunId"), c.want)
			}
		})
	}
	t.Run("GET dag-runs pages by after and cursor alike", func(t *testing.T) {
		_, data := env.do(t, "GET", "/api/v2/dag-runs?limit=2", "")
		first := object(t, data)
		if first["truncated"] != true || first["next"] != first["nextCursor"] {
			t.Fatalf("first page %v %v %v", first["truncated"], first["next"], first["nextCursor"])
		}
		_, byAfter := env.do(t, "GET", "/api/v2/dag-runs?limit=2&after="+first["next"].(string), "")
		_, byCursor := env.do(t, "GET", "/api/v2/dag-runs?limit=2&cursor="+first["next"].(string), "")
		if string(byAfter) != string(byCursor) {
			t.Fatalf("after and cursor give different pages")
		}
	})

	t.Run("POST dags with daguha's files", func(t *testing.T) {
		code, data := env.do(t, "POST", "/api/v2/dags", pushBody(t, map[string]string{"pushed.yaml": "steps:\n  - name: s\n    command: echo p\n"}))
		if body := object(t, data); code != http.StatusOK || !strings.Contains(fmt.Sprint(body["dags"]), "name:pushed") {
			t.Fatalf("HTTP %d %v", code, body)
		}
	})
	t.Run("POST dags with Dagu's name and spec", func(t *testing.T) {
		code, data := env.do(t, "POST", "/api/v2/dags", `{"name": "dagu-made"}`)
		if body := object(t, data); code != http.StatusCreated || body["name"] != "dagu-made" {
			t.Fatalf("HTTP %d %v", code, body)
		}
	})
	t.Run("POST dags with both", func(t *testing.T) {
		code, data := env.do(t, "POST", "/api/v2/dags", `{"name": "x", "files": []}`)
		if body := object(t, data); code != http.StatusBadRequest || !strings.Contains(body["message"].(string), "not both") {
			t.Fatalf("HTTP %d %v", code, body)
		}
	})
	t.Run("GET dags in both shapes", func(t *testing.T) {
		_, data := env.do(t, "GET", "/api/v2/dags", "")
		body := object(t, data)
		requireFields(t, body, "dags[].name", "dags[].local_dags", "dags[].content_hash", "dags[].fileName", "dags[].dag.name", "dags[].latestDAGRun.statusLabel", "pagination.totalRecords", "errors")
		if n := len(body["dags"].([]any)); n != 4 || body["pagination"].(map[string]any)["totalRecords"] != 4.0 {
			t.Fatalf("%d DAGs: without page or perPage every DAG is listed", n)
		}
	})
	t.Run("GET a DAG in both shapes", func(t *testing.T) {
		_, data := env.do(t, "GET", "/api/v2/dags/dagu-etl", "")
		body := object(t, data)
		requireFields(t, body, "name", "source", "local_dags", "steps[].name", "spec", "dag.steps[].name", "localDags[].name", "latestDAGRun.nodes", "suspended", "errors")
	})
	t.Run("GET health with Dagu's fields", func(t *testing.T) {
		_, data := env.do(t, "GET", "/api/v2/health", "")
		body := object(t, data)
		requireFields(t, body, "status", "node", "role", "leader", "version", "uptime", "timestamp")
	})
	t.Run("GET workers stays the seed's", func(t *testing.T) {
		_, data := env.do(t, "GET", "/api/v2/workers", "")
		body := object(t, data)
		requireFields(t, body, "workers[].health_status", "workers[].running_tasks[].dag_run_id")
		if _, camel := body["workers"].([]any)[0].(map[string]any)["healthStatus"]; camel {
			t.Fatalf("the seed's workers shape gained Dagu's fields: %v", body)
		}
	})
	t.Run("GET a DAG-run list by Dagu's name is daguha's run detail", func(t *testing.T) {
		code, data := env.do(t, "GET", "/api/v2/dag-runs/r-done", "")
		if body := object(t, data); code != http.StatusOK || body["dag_run_id"] != "r-done" {
			t.Fatalf("HTTP %d %v", code, body)
		}
	})
	// daguha's bulk form on the same path: each run as if sent alone, its
	// outcome in order; sent again, the same runs.
	t.Run("POST dag-runs with a batch of runs", func(t *testing.T) {
		batch := `{"runs": [{"dag_name": "dagu-other", "dag_run_id": "b-1", "params": "X=1"},
			{"dag": {"name": "inline", "steps": [{"name": "s", "command": "true"}]}, "dag_run_id": "b-2"},
			{"dag_name": "no-such-dag", "dag_run_id": "b-3"}]}`
		code, data := env.do(t, "POST", "/api/v2/dag-runs", batch)
		body := object(t, data)
		runs, _ := body["runs"].([]any)
		if code != http.StatusOK || len(runs) != 3 || body["created"] != 2.0 || body["failed"] != 1.0 {
			t.Fatalf("HTTP %d %v", code, body)
		}
		want := []string{"b-1 true 201 ", "b-2 true 201 ", "b-3 false 404 no DAG named"}
		for i, run := range runs {
			r := run.(map[string]any)
			got := fmt.Sprint(r["dag_run_id"], " ", r["created"], " ", r["status"], " ", r["error"])
			if !strings.HasPrefix(strings.ReplaceAll(got, " <nil>", " "), want[i]) {
				t.Errorf("run %d: %s, want %s...", i, got, want[i])
			}
		}
		code, data = env.do(t, "POST", "/api/v2/dag-runs", batch)
		if body := object(t, data); code != http.StatusOK || body["existed"] != 2.0 || body["created"] != 0.0 || body["failed"] != 1.0 {
			t.Fatalf("sent again: HTTP %d %v, want the two runs there already", code, body)
		}
		_, data = env.do(t, "GET", "/api/v2/dag-runs/b-1", "")
		if run := object(t, data); run["params"] != "X=1" || run["dag_name"] != "dagu-other" {
			t.Errorf("b-1 %v", run)
		}
		tooMany := `{"runs": [` + strings.TrimSuffix(strings.Repeat(`{"dag_name": "dagu-other"},`, 1001), ",") + `]}`
		for _, bad := range []string{`{"runs": []}`, tooMany, `{"runs": [{"dag_name": "dagu-other"}], "dag_name": "x"}`} {
			if code, data := env.do(t, "POST", "/api/v2/dag-runs", bad); code != http.StatusBadRequest {
				t.Errorf("%.60s: HTTP %d %.200s, want 400", bad, code, data)
			}
		}
	})
}

// Dagu's calls need the same tokens as daguha's: a read token reads, a
// full token changes; refusals come in Dagu's error shape under /api/v1.
func TestDaguCallsNeedTheAPITokens(t *testing.T) {
	env := startDagu(t, api.Options{Tokens: []string{"full-token"}, ReadTokens: []string{"read-token"}})
	auth := func(token string) []string { return []string{"Authorization", "Bearer " + token} }
	if code, data := env.do(t, "POST", "/api/v2/dags", pushBody(t, map[string]string{"other.yaml": daguOtherYAML}), auth("full-token")...); code != http.StatusOK {
		t.Fatalf("push: HTTP %d %s", code, data)
	}
	// A queued run for Dagu's dequeue, which Dagu serves as a GET: a read
	// token, which passes GETs, must not end it.
	if code, data := env.do(t, "POST", "/api/v1/dags/dagu-other/enqueue", `{"dagRunId": "q-1"}`, auth("full-token")...); code != http.StatusOK {
		t.Fatalf("enqueue: HTTP %d %s", code, data)
	}
	cases := []struct {
		name, method, path, token string
		code                      int
		errorCode                 string
	}{
		{"v1 dequeue (a GET) with a read token", "GET", "/api/v1/dag-runs/dagu-other/q-1/dequeue", "read-token", 403, "forbidden"},
		{"v2 dequeue (a GET) with a read token", "GET", "/api/v2/dag-runs/dagu-other/q-1/dequeue", "read-token", 403, "forbidden"},
		{"v1 dequeue with a full token", "GET", "/api/v1/dag-runs/dagu-other/q-1/dequeue", "full-token", 200, ""},
		{"v1 health needs none", "GET", "/api/v1/health", "", 200, ""},
		{"v1 read without a token", "GET", "/api/v1/dags", "", 401, "unauthorized"},
		{"v1 read with a wrong token", "GET", "/api/v1/dags", "nope", 401, "unauthorized"},
		{"v1 read with a read token", "GET", "/api/v1/dags", "read-token", 200, ""},
		{"v1 start with a read token", "POST", "/api/v1/dags/dagu-other/start", "read-token", 403, "forbidden"},
		{"v2 start with a read token", "POST", "/api/v2/dags/dagu-other/start", "read-token", 403, "forbidden"},
		{"v1 start with a full token", "POST", "/api/v1/dags/dagu-other/start", "full-token", 200, ""},
		{"v1 no such call", "GET", "/api/v1/queues", "read-token", 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, env.srv.URL+c.path, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			resp, err := env.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = jsonDecode(resp, &body)
			if resp.StatusCode != c.code || (c.errorCode != "" && (body["code"] != c.errorCode || body["message"] == nil)) {
				t.Fatalf("HTTP %d %v, want %d %s", resp.StatusCode, body, c.code, c.errorCode)
			}
			if strings.HasPrefix(c.path, "/api/v2") && c.errorCode != "" && body["error"] == nil {
				t.Fatalf("%v: under /api/v2 a refusal carries daguha's error too", body)
			}
		})
	}
}
