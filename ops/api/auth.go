package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strings"
)

// requireToken wraps next so that every /api/ request but the health
// probes (/api/v2/health, and Dagu's /api/v1/health) must carry one of the tokens as "Authorization: Bearer TOKEN".
// A read-only token passes reads (GET, HEAD), marked as read-only for the
// few reads that need a full token, and gets 403 on anything that changes
// state. With no token configured the API is open. Every refusal is
// logged with its reason and the caller's address, never the token.
func requireToken(tokens, readTokens []string, logger *slog.Logger, next http.Handler) http.Handler {
	if len(tokens) == 0 && len(readTokens) == 0 {
		return next
	}
	matches := func(given string, list []string) bool {
		for _, token := range list {
			if subtle.ConstantTimeCompare([]byte(given), []byte(token)) == 1 {
				return true
			}
		}
		return false
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == apiV2+"/health" || r.URL.Path == apiV1+"/health" || !strings.HasPrefix(r.URL.Path, "/api/") {
			next.ServeHTTP(w, r)
			return
		}
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok && matches(given, tokens) {
			next.ServeHTTP(w, r)
			return
		}
		if ok && matches(given, readTokens) {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), readOnlyKey{}, true)))
				return
			}
			refuse(logger, w, r, http.StatusForbidden, "this API token may only read")
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="daguha"`)
		if !ok {
			refuse(logger, w, r, http.StatusUnauthorized, "missing API token: send Authorization: Bearer <token>")
			return
		}
		refuse(logger, w, r, http.StatusUnauthorized, "invalid API token")
	})
}

// refuse answers a request the API's tokens do not allow, and logs why.
// Under /api/v1 (Dagu's calls) the body is Dagu's error; under /api/v2
// it carries daguha's error and Dagu's code and message.
func refuse(logger *slog.Logger, w http.ResponseWriter, r *http.Request, code int, reason string) {
	if logger != nil {
		logger.Warn("API request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "status", code, "reason", reason)
	}
	daguCode := "unauthorized"
	if code == http.StatusForbidden {
		daguCode = "forbidden"
	}
	writeJSON(w, code, errorIn(shapeOfPath(r.URL.Path), daguCode, errors.New(reason)))
}

// readOnlyKey marks in a request's context that it came with a read-only
// token, for the reads that need a full one (saving a snapshot).
type readOnlyKey struct{}

// readOnly says whether r came with a read-only token.
func readOnly(r *http.Request) bool {
	marked, _ := r.Context().Value(readOnlyKey{}).(bool)
	return marked
}

// RequireWriteToken guards a handler outside /api/ (the profiler) with
// the API's full tokens: a read-only token is refused, and with no token
// of either kind configured the handler is open, as the API is.
func RequireWriteToken(tokens, readTokens []string, next http.Handler) http.Handler {
	if len(tokens) == 0 && len(readTokens) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		for _, token := range tokens {
			if ok && subtle.ConstantTimeCompare([]byte(given), []byte(token)) == 1 {
				next.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="daguha"`)
		writeError(w, http.StatusUnauthorized, errors.New("the profiler needs a full API token: send Authorization: Bearer <token>"))
	})
}
