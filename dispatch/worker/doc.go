// Package worker is the worker's side of dispatch: the Worker polls the
// cluster for runs, executes each with the Engine (steps as a graph by
// their dependencies; see Engine for the semantics), reports step states
// and the run's end under the run's lease (batched, see reporter and
// workerHost), keeps every step's full log and serves it with LogServer
// to a server that offers the attempt's log ticket.
//
// Each kind of step is run by an executor registered under its kind, in
// a file of its own: exec_command.go (a command or script with sh, in a
// process group of its own, see process.go), exec_child.go (a run/call
// step: a child run), exec_parallel.go (a run/call step over items),
// exec_noop.go (the benchmarks' no-op worker), and Dagu's executors
// exec_http.go, exec_jq.go, exec_archive.go, exec_docker.go and
// exec_container.go (a DAG's container:). A new kind of step is a new such
// file. An executor whose steps this worker may be unable to run says so
// with a probe (docker pings the engine); Executors lists those it can,
// which the worker advertises so the leader routes runs by them. What decides whether and how often
// a step runs, and what runs when a run ends (preconditions, repeat and
// retry policies, handlers), is control.go's.
//
// The worker sends Dagu's mails of the runs it runs (mailOn, errorMail,
// infoMail, a step's mailOnError): mail.go says when and what, smtp.go
// speaks SMTP (net/smtp, TLS whenever it can).
//
// The package imports only the leaves dispatch/valid, dispatch/logticket
// and dispatch/dagfile, and the generated proto and its gRPC client stubs:
// never the leader's side (package dispatch), the cluster or ops/...
// What the worker records goes through the Metrics hooks it declares,
// which ops/metrics.WorkerMetrics implements. Worker processes (ops/agent,
// the commands) and tests import it.
package worker
