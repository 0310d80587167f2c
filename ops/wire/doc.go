// Package wire holds the JSON bodies of daguha's HTTP API under /api/v2/:
// what clients send and what servers answer, defined once. The server
// (ops/api) encodes and decodes these types and the client (ops/client)
// the same ones, so the two cannot drift apart.
//
// Types here are data only: no validation and no behaviour (the server's
// rules stay in ops/api and package valid). A field's JSON name and
// omitempty are part of the API; changing one changes what every caller
// sees. Anyone may import this package; it imports only package cluster,
// for the peer and member types the API shows as cluster defines them.
package wire
