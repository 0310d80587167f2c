// Package rpc holds daguha's gRPC services and clients: the server-to-server
// ClusterService (forwarded writes, read barriers, bootstrap questions) and
// the coordinator service workers speak to. It maps errors between Go and
// gRPC status codes in one place, so a retryable failure on one side stays
// retryable on the other.
package rpc

// ProtocolVersion is the version of daguha's wire protocol: the gRPC
// services and messages of proto/daguha/v1 that servers and workers speak
// to each other, and the Raft transport between servers. Bump it when a
// service, method or field is added or changes meaning, so that a mixed
// cluster's parts can tell what the others understand (docs/upgrades.md).
// daguha 0.1.0 is 1.
const ProtocolVersion = 1
