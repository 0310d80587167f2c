// Package dispatch is the leader's side of moving DAG runs from the queue
// to workers: the Dispatcher matches polling workers to queued runs by
// worker selector, grants fenced leases through Raft (with the log ticket
// of each attempt), renews them on heartbeats, reclaims the ones that
// lapse, records what workers report (checked against package valid's
// bounds, and batched into Raft entries), enqueues child runs, fires the
// cron schedules, tracks worker health and prunes ended runs.
//
// Matching follows the seed's rules exactly: every selector label must be
// on the worker with the identical, case-sensitive value; extra worker
// labels do not matter; a run without a selector matches any worker.
//
// The worker's side (polling, executing runs, reporting, step logs) is
// package dispatch/worker. Neither imports the other: what both need is
// in the leaves dispatch/valid (the rules for names, labels and sizes)
// and dispatch/logticket (what a log ticket is). The servers (rpc,
// ops/...) and the commands import this package; nothing below it does.
package dispatch
