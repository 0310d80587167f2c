package client_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/daguha/daguha/ops/client"
	"github.com/daguha/daguha/ops/wire"
)

// fakeAPI serves handler and returns a client of it.
func fakeAPI(t *testing.T, options client.Options, handler http.HandlerFunc) *client.Client {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return client.New(srv.URL+"/", options)
}

func TestTokenIsSentAsBearerOnlyWhenSet(t *testing.T) {
	for _, tc := range []struct{ token, want string }{{"s3cret", "Bearer s3cret"}, {"", ""}} {
		var got string
		api := fakeAPI(t, client.Options{Token: tc.token}, func(w http.ResponseWriter, r *http.Request) {
			got = r.Header.Get("Authorization")
			_, _ = io.WriteString(w, `{"workers": []}`)
		})
		if _, err := api.Workers(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("token %q: Authorization %q, want %q", tc.token, got, tc.want)
		}
	}
}

func TestErrorAnswerIsATypedErrorWithTheAPIsMessage(t *testing.T) {
	api := fakeAPI(t, client.Options{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error": "no DAG run with id \"r-1\""}`)
	})
	_, err := api.Run(context.Background(), "r-1")
	var apiErr *client.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("error %v (%T), want a *client.Error", err, err)
	}
	if apiErr.Status != 404 || apiErr.Message != `no DAG run with id "r-1"` || apiErr.Method != "GET" || apiErr.Path != "/api/v2/dag-runs/r-1" || apiErr.Header.Get("Retry-After") != "1" {
		t.Errorf("error %+v", apiErr)
	}
	if want := `no DAG run with id "r-1" (HTTP 404)`; err.Error() != want {
		t.Errorf("error text %q, want %q", err.Error(), want)
	}
	if client.StatusCode(err) != 404 || client.StatusCode(nil) != 0 || client.StatusCode(errors.New("other")) != 0 {
		t.Error("StatusCode does not read the status from the error chain")
	}
}

func TestErrorAnswerThatIsNotJSONKeepsItsBody(t *testing.T) {
	api := fakeAPI(t, client.Options{}, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway from a proxy", http.StatusBadGateway)
	})
	code, err := api.Do(context.Background(), http.MethodPost, "/api/v2/dags", wire.DagPush{}, nil)
	if code != 502 || client.StatusCode(err) != 502 {
		t.Fatalf("status %d, error %v", code, err)
	}
	if want := "POST /api/v2/dags: HTTP 502: bad gateway from a proxy\n"; err.Error() != want {
		t.Errorf("error text %q, want %q", err.Error(), want)
	}
}

func TestAnswerOverTheSizeLimitIsRefused(t *testing.T) {
	body := `{"dag_run_id": "` + strings.Repeat("x", 100) + `"}`
	handler := func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, body) }
	small := fakeAPI(t, client.Options{MaxResponseBytes: int64(len(body) - 1)}, handler)
	if _, err := small.Run(context.Background(), "r"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("an answer one byte over the limit: error %v", err)
	}
	exact := fakeAPI(t, client.Options{MaxResponseBytes: int64(len(body))}, handler)
	if run, err := exact.Run(context.Background(), "r"); err != nil || len(run.DagRunID) != 100 {
		t.Fatalf("an answer of exactly the limit: %v", err)
	}
}

func TestTimeoutBoundsJSONCallsAndWithTimeoutChangesIt(t *testing.T) {
	api := fakeAPI(t, client.Options{Timeout: 50 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, `{}`)
	})
	if _, err := api.Self(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a slow answer: error %v, want the deadline", err)
	}
	if _, err := api.WithTimeout(5 * time.Second).Self(context.Background()); err != nil {
		t.Fatalf("with a longer time-out: %v", err)
	}
}

func TestUnreachableServerErrorKeepsItsCause(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	address := srv.URL
	srv.Close()
	code, err := client.New(address, client.Options{}).Do(context.Background(), http.MethodGet, "/api/v2/health", nil, nil)
	if code != 0 || !errors.Is(err, syscall.ECONNREFUSED) || client.StatusCode(err) != 0 {
		t.Fatalf("status %d, error %v; want 0 and a refused connection", code, err)
	}
}

func TestEnqueueSendsOnlyTheFieldsGiven(t *testing.T) {
	var got map[string]any
	api := fakeAPI(t, client.Options{}, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/api/v2/dag-runs" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %s %s %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		_ = json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"dag_run_id": "r-1", "created": true}`)
	})
	enqueued, err := api.Enqueue(context.Background(), wire.EnqueueRequest{DagName: "etl", Params: "A=1"})
	if err != nil || enqueued != (wire.Enqueued{DagRunID: "r-1", Created: true}) {
		t.Fatalf("enqueue: %+v %v", enqueued, err)
	}
	if len(got) != 2 || got["dag_name"] != "etl" || got["params"] != "A=1" {
		t.Errorf("request body %v, want dag_name and params only", got)
	}
}

func TestPathsEscapeIDsAndQueriesCarryTheFilters(t *testing.T) {
	var paths []string
	api := fakeAPI(t, client.Options{}, func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.Method+" "+r.URL.EscapedPath()+"?"+r.URL.RawQuery)
		_, _ = io.WriteString(w, `{}`)
	})
	ctx := context.Background()
	_, _ = api.Run(ctx, "a/b c")
	_ = api.Cancel(ctx, "a/b")
	_, _ = api.Dag(ctx, "x/y")
	_ = api.DeleteDag(ctx, "x")
	_, _ = api.Runs(ctx, client.RunQuery{})
	_, _ = api.Runs(ctx, client.RunQuery{DagName: "etl", Status: "failed", Limit: 10, After: "7/r-1", Stale: true})
	_, _ = api.WaitRun(ctx, "r", 42, 2*time.Second)
	_, _ = api.Workers(ctx, true)
	want := []string{
		"GET /api/v2/dag-runs/a%2Fb%20c?",
		"POST /api/v2/dag-runs/a%2Fb/cancel?",
		"GET /api/v2/dags/x%2Fy?",
		"DELETE /api/v2/dags/x?",
		"GET /api/v2/dag-runs?",
		"GET /api/v2/dag-runs?after=7%2Fr-1&dag_name=etl&limit=10&stale=true&status=failed",
		"GET /api/v2/dag-runs/r?index=42&wait=2s",
		"GET /api/v2/workers?stale=true",
	}
	if strings.Join(paths, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(paths, "\n"), strings.Join(want, "\n"))
	}
}

func TestHealthWithoutLeaderHoldsTheAnswerAndTheError(t *testing.T) {
	api := fakeAPI(t, client.Options{}, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status": "no leader", "node": "s1", "role": "follower", "leader": ""}`)
	})
	health, err := api.Health(context.Background())
	if client.StatusCode(err) != 503 || health.Status != "no leader" || health.Node != "s1" {
		t.Fatalf("health %+v, error %v", health, err)
	}
}

func TestWorkersJSONIsTheAnswerAsSent(t *testing.T) {
	const answer = "{\n  \"workers\": []\n}\n"
	api := fakeAPI(t, client.Options{}, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, answer) })
	raw, err := api.WorkersJSON(context.Background(), false)
	if err != nil || string(raw) != strings.TrimSpace(answer) {
		t.Fatalf("raw %q, error %v", raw, err)
	}
}

func TestSnapshotsStreamBothWays(t *testing.T) {
	const archive = "not really an archive"
	api := fakeAPI(t, client.Options{Timeout: time.Nanosecond}, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			_, _ = io.WriteString(w, archive)
		case http.MethodPost:
			data, _ := io.ReadAll(r.Body)
			if string(data) != archive || r.Header.Get("Content-Type") != "application/octet-stream" {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"error": "not the archive sent"}`)
				return
			}
			_, _ = io.WriteString(w, `{"restored_bytes": 21}`)
		}
	})
	// The JSON time-out (1 ns here) does not apply to either stream.
	stream, err := api.SaveSnapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(stream)
	stream.Close()
	if err != nil || string(data) != archive {
		t.Fatalf("saved %q, %v", data, err)
	}
	restored, err := api.RestoreSnapshot(context.Background(), strings.NewReader(archive))
	if err != nil || restored.RestoredBytes != 21 {
		t.Fatalf("restore: %+v %v", restored, err)
	}
}

func TestStreamErrorIsTyped(t *testing.T) {
	api := fakeAPI(t, client.Options{}, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"error": "saving a snapshot is an operator action"}`)
	})
	if _, err := api.SaveSnapshot(context.Background()); client.StatusCode(err) != 403 {
		t.Fatalf("error %v, want 403", err)
	}
	if _, err := api.StepLog(context.Background(), "r", "s", 2); client.StatusCode(err) != 403 {
		t.Fatalf("error %v, want 403", err)
	}
}

func TestRedirectIsAnErrorNotFollowed(t *testing.T) {
	var posts, gets int
	api := fakeAPI(t, client.Options{}, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts++
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		gets++
		_, _ = io.WriteString(w, `{"runs": []}`)
	})
	_, err := api.Enqueue(context.Background(), wire.EnqueueRequest{DagName: "etl"})
	if client.StatusCode(err) != http.StatusFound || posts != 1 || gets != 0 {
		t.Fatalf("error %v after %d POST and %d GET; want the 302 and no GET", err, posts, gets)
	}
}

func TestDisableKeepAlivesOpensAConnectionPerCall(t *testing.T) {
	for _, tc := range []struct {
		disable bool
		want    int
	}{{false, 1}, {true, 3}} {
		var connections atomic.Int32
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{}`) }))
		srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
			if state == http.StateNew {
				connections.Add(1)
			}
		}
		srv.Start()
		// A TLS config (unused over plain HTTP) gives the client a
		// transport of its own, not Go's shared default.
		api := client.New(srv.URL, client.Options{DisableKeepAlives: tc.disable, TLS: &tls.Config{}})
		for range 3 {
			if _, err := api.Self(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		srv.Close()
		if got := int(connections.Load()); got != tc.want {
			t.Errorf("DisableKeepAlives %v: %d connections for 3 calls, want %d", tc.disable, got, tc.want)
		}
	}
}
