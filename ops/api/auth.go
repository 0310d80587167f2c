package api

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// requireToken wraps next so that every /api/ request but the health
// probe must carry one of the tokens as "Authorization: Bearer TOKEN".
// With no token configured the API is open.
func requireToken(tokens []string, next http.Handler) http.Handler {
	if len(tokens) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v2/health" || !strings.HasPrefix(r.URL.Path, "/api/") {
			next.ServeHTTP(w, r)
			return
		}
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok {
			for _, token := range tokens {
				if subtle.ConstantTimeCompare([]byte(given), []byte(token)) == 1 {
					next.ServeHTTP(w, r)
					return
				}
			}
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="daguha"`)
		if !ok {
			writeError(w, http.StatusUnauthorized, errors.New("missing API token: send Authorization: Bearer <token>"))
			return
		}
		writeError(w, http.StatusUnauthorized, errors.New("invalid API token"))
	})
}
