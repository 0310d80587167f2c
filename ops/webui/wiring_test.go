package webui_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/daguha/daguha/cluster/clustertest"
)

// Every server serves the UI at / beside the API under /api/ (and
// /metrics): the UI's own files need no token, the API's data does. This
// needs no browser.
func TestEveryServerServesTheUIBesideTheAPI(t *testing.T) {
	const token = "wiring-token"
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 1, ExtraArgs: []string{"-api-token=" + token, "-cluster-token=webui-cluster-token"}})
	server := c.WaitLeader(t, 30*time.Second)
	for _, tc := range []struct {
		path        string
		code        int
		contentType string
	}{
		{"/", http.StatusOK, "text/html"},
		{"/app.js", http.StatusOK, "javascript"},
		{"/api/v2/workers", http.StatusUnauthorized, "application/json"},
		{"/api/v2/no-such-endpoint", http.StatusUnauthorized, "application/json"},
		{"/api/v2/health", http.StatusOK, "application/json"},
		{"/metrics", http.StatusOK, "text/plain"},
	} {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(server.HTTPAddr() + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(resp.Header.Get("Content-Type"), tc.contentType) {
			t.Errorf("GET %s: HTTP %d %q; want %d %s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.code, tc.contentType)
		}
	}
}
