package agent

import (
	"net/http"
	"net/http/pprof"
)

// pprofHandler serves Go's runtime profiles (CPU, heap, goroutines, ...)
// under /debug/pprof/, for `go tool pprof http://HOST:PORT/debug/pprof/profile`.
// It is mounted only with -pprof: a profile reveals internals and a CPU
// profile costs the server while it runs.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
