package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/api"
	"github.com/daguha/daguha/ops/service"
)

// The Cluster page's charts read GET /api/v2/cluster/glance: the samples
// the server keeps, oldest first, at most Keep of them, each with the
// queue depth of the moment, the leader, and the runs started since the
// sample before (a count, not the counter's running total).
func TestGlanceKeepsTheLastSamplesOfTheCluster(t *testing.T) {
	c := clustertest.StartInProc(t, clustertest.InProcOptions{Servers: 1})
	leader := c.Leader(10 * time.Second)
	svc := service.New(leader.Server, service.Options{})
	t.Cleanup(svc.Close)
	var started atomic.Uint64
	started.Store(100) // the counter's total at the start is no run started
	svc.StartGlance(service.GlanceOptions{Every: 50 * time.Millisecond, Keep: 5, Started: started.Load})
	srv := httptest.NewServer(api.New(svc, api.Options{}))
	t.Cleanup(srv.Close)
	for i := 0; i < 3; i++ {
		if code, body := call(t, srv, "POST", "/api/v2/dag-runs", fmt.Sprintf(`{"dag": {"name": "waits", "steps": [{"name": "a", "command": "true"}]}, "dag_run_id": "w%d"}`, i)); code != http.StatusCreated {
			t.Fatalf("enqueue: HTTP %d %v", code, body)
		}
	}
	started.Add(7)
	seen := 0.0
	clustertest.WaitFor(t, 10*time.Second, "a full ring, the 3 queued runs, the 7 started in one sample", func() (bool, string) {
		code, body := call(t, srv, "GET", "/api/v2/cluster/glance", "")
		samples, _ := body["samples"].([]any)
		if code != http.StatusOK || len(samples) > 5 {
			t.Fatalf("HTTP %d, %d samples (want at most 5): %v", code, len(samples), body)
		}
		last := map[string]any{}
		for _, s := range samples {
			last = s.(map[string]any)
			if n := last["runs_started"].(float64); n != 0 {
				if n != 7 {
					t.Fatalf("a sample with %v runs started, want 7 or 0: %v", n, body)
				}
				seen = n
			}
		}
		return len(samples) == 5 && last["queue_depth"] == float64(3) && last["leader"] == body["server"] && seen == 7, fmt.Sprint(body)
	})
}
