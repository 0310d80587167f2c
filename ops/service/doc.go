// Package service is what a daguha server does with the cluster's state,
// whoever asks: enqueue (validation, stored DAG resolution, batching into
// Raft commands), DAG push and delete, run and DAG queries, cancel,
// worker views, step logs, snapshot save and restore, and the operator's
// Raft calls. It is the one place that builds fsm commands for these and
// applies them through the cluster.
//
// Every failure a caller may act on is an *Error of a Kind (or an error
// of the cluster that KindOf classifies): the HTTP API maps kinds to
// status codes, the DAG directory sync tells files to fix from a cluster
// without a leader. Messages name the API's fields, as callers show them.
//
// Importers: ops/api (its HTTP handlers), ops/agent (wiring, the DAG
// directory sync) and the suites (ops/chaos, ops/bench, ops/attack). It
// imports cluster, dispatch, fsm, store, proto and ops/metrics, never
// ops/api, ops/agent or anything about HTTP requests and answers.
package service
