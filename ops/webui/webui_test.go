package webui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/daguha/daguha/ops/webui"
)

func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	resp := rec.Result()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// These run everywhere, Chromium or not: the files are in the binary and
// served with the types and headers a browser needs.
func TestHandlerServesTheEmbeddedFiles(t *testing.T) {
	h := webui.Handler()
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/", "text/html", `<script src="app.js"></script>`},
		{"/app.js", "javascript", `"/api/v2/workers"`},
		{"/style.css", "text/css", "@media"},
	} {
		resp, body := get(t, h, http.MethodGet, tc.path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: HTTP %d, want 200", tc.path, resp.StatusCode)
			continue
		}
		if got := resp.Header.Get("Content-Type"); !strings.Contains(got, tc.contentType) {
			t.Errorf("GET %s: Content-Type %q, want %s", tc.path, got, tc.contentType)
		}
		if !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s: the body lacks %q", tc.path, tc.contains)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q does not keep the page to its own server", tc.path, csp)
		}
	}
}

func TestHandlerAnswersReadsOnly(t *testing.T) {
	resp, _ := get(t, webui.Handler(), http.MethodPost, "/")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST /: HTTP %d, Allow %q; want 405 with Allow: GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if resp, _ := get(t, webui.Handler(), http.MethodGet, "/no-such-file.js"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /no-such-file.js: HTTP %d, want 404", resp.StatusCode)
	}
}

// The UI loads nothing from elsewhere (no CDN): every URL in its files is
// a path on the server that serves it. SVG's namespace is a name the DOM
// needs to make SVG elements, never fetched.
func TestFilesLoadNothingFromElsewhere(t *testing.T) {
	h := webui.Handler()
	absolute := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	for _, path := range []string{"/", "/app.js", "/style.css"} {
		_, body := get(t, h, http.MethodGet, path)
		body = strings.ReplaceAll(body, `"http://www.w3.org/2000/svg"`, `""`)
		if m := absolute.FindString(body); m != "" {
			t.Errorf("%s refers to %q: the UI must load only from its own server", path, m)
		}
	}
}
