// Package worker is the worker's side of dispatch: the Worker polls the
// cluster for runs, executes each with the Engine (steps as a graph by
// their dependencies; see Engine for the semantics), reports step states
// and the run's end under the run's lease (batched, see reporter and
// workerHost), keeps every step's full log and serves it with LogServer
// to a server that offers the attempt's log ticket.
//
// The package imports the leaves dispatch/valid, dispatch/logticket and
// dispatch/dagfile, and the generated proto and its gRPC client stubs:
// never the leader's side (package dispatch) or the cluster. Worker
// processes (ops/agent, the commands) and tests import it.
package worker
