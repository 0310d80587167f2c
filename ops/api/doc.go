// Package api serves daguha's REST API under /api/v2/ on every server.
// Writes go through the cluster (forwarded to the leader); reads are
// linearizable by default (the server first catches up to the leader's
// read index) and served from local state with ?stale.
//
// A handler decodes the request, checks the caller's token, calls one
// method of ops/service and encodes the answer; wrap turns the service's
// error kinds into status codes, the same for every endpoint. What a call
// does with the state lives in ops/service, not here: this package builds
// no fsm commands. It reads the cluster directly only for this server's
// own status (health, leader, peers, members, self) and to relay reads
// to the leader's API.
//
// Importers: ops/agent (which serves it) and tests; cmd/daguha uses its
// JSON body types. Nothing below ops/agent imports it.
package api
