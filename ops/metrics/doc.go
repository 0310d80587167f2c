// Package metrics is daguha's Prometheus instrumentation: the metrics a
// server exports at /metrics (Raft, dispatch, workers by health, gRPC and
// HTTP requests, the Go runtime and the process) and those a worker
// exports on its optional metrics port.
//
// The package imports no other daguha package, so every layer (cluster,
// dispatch, the API) can take a *Metrics or *WorkerMetrics and call its
// hooks; every hook is a no-op on a nil receiver, so code and tests that
// do not care about metrics pass nil. What is read from the replicated
// state (queue depth, workers by health) is read at scrape time through
// functions the agent supplies, so nothing has to be kept in step.
//
// docs/metrics.md lists every metric; keep it in step with this package.
package metrics
