// Package api serves daguha's REST API under /api/v2/ on every server.
// Writes go through the cluster (forwarded to the leader); reads are
// linearizable by default (the server first catches up to the leader's
// read index) and served from local state with ?stale.
package api
