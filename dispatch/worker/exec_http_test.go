package worker

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// Dagu's http executor against a real HTTP server on loopback.

// echoServer answers /echo with a JSON of what it was sent, /status/N
// with status N, and /slow after a second.
func echoServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Seen", "yes")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"method": r.Method, "query": r.URL.Query(), "auth": r.Header.Get("Authorization"), "body": string(body),
		})
	})
	mux.HandleFunc("/status/", func(w http.ResponseWriter, r *http.Request) {
		var code int
		fmt.Sscanf(strings.TrimPrefix(r.URL.Path, "/status/"), "%d", &code)
		w.WriteHeader(code)
		_, _ = io.WriteString(w, "no luck")
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(make([]byte, maxHTTPBody+10))
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func TestHTTPExecutorSendsTheRequestInBothSyntaxes(t *testing.T) {
	s := echoServer(t)
	for _, tc := range []struct{ name, dag string }{
		{"1.x", `env:
  - TOKEN: t0ken
  - WHO: ann
steps:
  - name: call
    executor:
      type: http
      config:
        silent: true
        headers: {Authorization: "Bearer ${TOKEN}"}
        query: {who: "${WHO}", n: 2}
        body: '{"who": "$WHO"}'
    command: POST URL/echo
    output: RESP
  - name: use
    command: printf '%s' "$RESP" > $D/got
    depends: call
`},
		{"type and with", `env:
  - TOKEN: t0ken
  - WHO: ann
steps:
  - name: call
    type: http
    with:
      method: POST
      url: URL/echo
      silent: true
      headers: {Authorization: "Bearer ${TOKEN}"}
      query: {who: "${WHO}", n: 2}
      body: '{"who": "$WHO"}'
    output: RESP
  - name: use
    command: printf '%s' "$RESP" > $D/got
    depends: call
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r, host := runYAML(t, dir, strings.ReplaceAll(tc.dag, "URL", s.URL))
			wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
			var got map[string]any
			if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "got"))), &got); err != nil {
				t.Fatalf("output variable: %v", err)
			}
			want := map[string]any{"method": "POST", "auth": "Bearer t0ken", "body": `{"who": "ann"}`,
				"query": map[string]any{"who": []any{"ann"}, "n": []any{"2"}}}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("the server saw %v, want %v", got, want)
			}
		})
	}
}

func TestHTTPExecutorOutputForms(t *testing.T) {
	s := echoServer(t)
	run := func(t *testing.T, settings string) string {
		t.Helper()
		r, host := runYAML(t, t.TempDir(), "steps:\n  - name: get\n    executor: {type: http, config: "+settings+"}\n    command: GET "+s.URL+"/echo\n")
		wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
		return host.last()["get"].GetOutputTail()
	}
	if out := run(t, "{}"); !strings.HasPrefix(out, "200 OK\n") || !strings.Contains(out, "X-Seen: yes") || !strings.Contains(out, `"method":"GET"`) {
		t.Errorf("plain output: %q", out)
	}
	if out := run(t, "{silent: true}"); !strings.HasPrefix(out, `{"auth"`) {
		t.Errorf("silent output: %q", out)
	}
	var j struct {
		StatusCode int                 `json:"status_code"`
		Headers    map[string][]string `json:"headers"`
		Body       map[string]any      `json:"body"`
	}
	if err := json.Unmarshal([]byte(run(t, "{json: true}")), &j); err != nil || j.StatusCode != 200 || j.Headers["X-Seen"][0] != "yes" || j.Body["method"] != "GET" {
		t.Errorf("json output: %+v %v", j, err)
	}
	j.StatusCode, j.Headers = 0, nil
	if err := json.Unmarshal([]byte(run(t, "{json: true, silent: true}")), &j); err != nil || j.StatusCode != 0 || j.Headers != nil || j.Body["method"] != "GET" {
		t.Errorf("json silent output: %+v %v", j, err)
	}
}

func TestHTTPExecutorFailures(t *testing.T) {
	s := echoServer(t)
	for _, tc := range []struct{ name, step, err, tail string }{
		{"not 2xx", "executor: {type: http, config: {silent: true}}\n    command: GET URL/status/503", "status 503 Service Unavailable", "503 Service Unavailable\n"},
		{"timeout", "type: http\n    with: {timeout: 1}\n    command: GET URL/slow", "within the timeout of 1s", ""},
		{"no url", "type: http\n    with: {silent: true}", "needs a url", ""},
		{"bad scheme", "executor: http\n    command: GET ftp://x", "want http:// or https://", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, host := runYAML(t, t.TempDir(), "steps:\n  - name: s\n    "+strings.ReplaceAll(tc.step, "URL", s.URL)+"\n")
			wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_FAILED, "")
			st := host.last()["s"]
			if st.GetStatus() != daguhav1.StepStatus_STEP_STATUS_FAILED || !strings.Contains(st.GetError(), tc.err) || !strings.HasPrefix(st.GetOutputTail(), tc.tail) {
				t.Errorf("step %s %q tail %q, want failed …%s… tail %q…", st.GetStatus(), st.GetError(), st.GetOutputTail(), tc.err, tc.tail)
			}
		})
	}
}

func TestHTTPExecutorCutsABigBody(t *testing.T) {
	s := echoServer(t)
	r, host := runYAML(t, t.TempDir(), "steps:\n  - name: s\n    type: http\n    with: {silent: true}\n    command: GET "+s.URL+"/big\n")
	wantRun(t, r, host, daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, "")
	if tail := host.last()["s"].GetOutputTail(); !strings.Contains(tail, "the response body was cut at 16777216 bytes") {
		t.Errorf("tail %q", tail)
	}
}
