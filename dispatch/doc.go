// Package dispatch moves DAG runs from the queue to workers. On the leader,
// the Dispatcher matches polling workers to queued runs by worker
// selector, grants fenced leases through Raft, renews them on heartbeats,
// reclaims the ones that lapse, and records what workers report. On a
// worker, the Worker polls for runs and executes them with the Engine
// (steps as a graph by their dependencies, see Engine for the semantics),
// keeps the steps' full logs, and LogServer serves them.
//
// Matching follows the seed's rules exactly: every selector label must be
// on the worker with the identical, case-sensitive value; extra worker
// labels do not matter; a run without a selector matches any worker.
package dispatch
