package metrics

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Every hook is safe on a nil *Metrics and *WorkerMetrics: code that was
// given none records nothing and does not crash.
func TestNilHooksRecordNothing(t *testing.T) {
	var m *Metrics
	m.ObserveCommit(time.Millisecond)
	m.ObserveApply(true, time.Millisecond)
	m.LeaderChanged()
	m.RunEnqueued()
	m.LeaseGranted(time.Second, true)
	m.RunFinished("succeeded")
	m.LeasesReclaimed(ReclaimLeaseExpired, 2)
	m.ReportRefused(RefusedStep, 1)
	m.ObserveHeartbeat(time.Millisecond)
	m.ObserveStage("grant_commit", time.Millisecond)
	m.InitializeGRPC(nil)
	m.WatchRaft(nil)
	m.WatchQueues(nil)
	m.WatchWorkers(nil)
	if opts := m.GRPCServerOptions(); opts != nil {
		t.Fatalf("nil metrics gave gRPC options %v", opts)
	}
	h := http.NotFoundHandler()
	if got := m.InstrumentHTTP(h); got == nil {
		t.Fatal("nil metrics lost the handler")
	}
	var w *WorkerMetrics
	w.SetCapacity(3)
	w.RunStarted()
	w.RunEnded(RunSucceeded)
	w.StepFinished("succeeded", time.Second)
	w.Heartbeat(time.Millisecond, nil)
}

// HTTP requests are labelled by the route pattern that served them, so
// a thousand run ids make one series, not a thousand.
func TestHTTPRequestsLabelledByRoutePattern(t *testing.T) {
	m := New()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v2/dag-runs/{dag_run_id}", func(w http.ResponseWriter, r *http.Request) {})
	handler := m.InstrumentHTTP(mux)
	for i := range 50 {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v2/dag-runs/run-"+strconv.Itoa(i), nil))
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/nowhere/"+strings.Repeat("x", 10), nil))

	if n := testutil.CollectAndCount(m.httpRequests); n != 2 {
		t.Fatalf("%d request series; want 2 (the route and unmatched)", n)
	}
	if got := testutil.ToFloat64(m.httpRequests.WithLabelValues("/api/v2/dag-runs/{dag_run_id}", "get", "200")); got != 50 {
		t.Fatalf("route series counted %v requests; want 50", got)
	}
	if got := testutil.ToFloat64(m.httpRequests.WithLabelValues("unmatched", "get", "404")); got != 1 {
		t.Fatalf("unmatched series counted %v; want 1", got)
	}
}

// The selector label is bounded: past MaxSelectorSeries the remaining
// queues are summed into selector="other".
func TestQueueSelectorsAreBounded(t *testing.T) {
	m := New()
	var queues []Queue
	total := 0
	for i := range MaxSelectorSeries + 50 {
		queues = append(queues, Queue{Selector: "team=" + strconv.Itoa(1000+i), Pending: i + 1})
		total += i + 1
	}
	queues = append(queues, Queue{Selector: "", Pending: 7, MatchingWorkers: 2})
	total += 7
	m.WatchQueues(func() ([]Queue, error) { return queues, nil })
	text := gather(t, m)
	series, sum := 0, 0.0
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "daguha_dispatch_queue_depth{") {
			continue
		}
		series++
		value, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += value
	}
	if series != MaxSelectorSeries {
		t.Fatalf("%d queue depth series; want %d", series, MaxSelectorSeries)
	}
	if int(sum) != total {
		t.Fatalf("queue depths add up to %v; want %d (nothing lost in other)", sum, total)
	}
	for _, want := range []string{`daguha_dispatch_queue_depth{selector="any"} 7`, `daguha_dispatch_queue_matching_workers{selector="any"} 2`, `selector="other"`} {
		if !strings.Contains(text, want) {
			t.Fatalf("no %s in\n%s", want, text)
		}
	}
}

func gather(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	return rec.Body.String()
}
