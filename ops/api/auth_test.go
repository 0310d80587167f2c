package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/daguha/daguha/ops/api"
)

func TestRequireWriteTokenRefusesReadersAndStrangers(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	guarded := api.RequireWriteToken([]string{"full"}, []string{"reader"}, ok)
	for _, tc := range []struct {
		header string
		want   int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer reader", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusUnauthorized},
		{"full", http.StatusUnauthorized}, // not a Bearer header
		{"Bearer full", http.StatusTeapot},
	} {
		r := httptest.NewRequest("GET", "/debug/pprof/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		w := httptest.NewRecorder()
		guarded.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("Authorization %q: status %d, want %d", tc.header, w.Code, tc.want)
		}
	}
	open := api.RequireWriteToken(nil, nil, ok)
	w := httptest.NewRecorder()
	open.ServeHTTP(w, httptest.NewRequest("GET", "/debug/pprof/", nil))
	if w.Code != http.StatusTeapot {
		t.Errorf("no tokens configured: status %d, want the handler's %d", w.Code, http.StatusTeapot)
	}
}
