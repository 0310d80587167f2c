// Package rpc holds daguha's gRPC services and clients: the server-to-server
// ClusterService (forwarded writes, read barriers, bootstrap questions) and
// the coordinator service workers speak to. It maps errors between Go and
// gRPC status codes in one place, so a retryable failure on one side stays
// retryable on the other. The version of the protocol they speak is
// buildinfo.ProtocolVersion (cluster/buildinfo), which gossip advertises.
package rpc
