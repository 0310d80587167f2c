// Package client is the one client of daguha's HTTP API: the CLI's
// commands, the test harnesses (cluster/clustertest), the fault and
// attack suites and the end-to-end tests all call a server through it.
// It speaks the wire types of package wire, sends the API token, bounds
// what it reads, and turns an error answer into an *Error that carries
// the status and the API's message.
//
// It knows the API's paths and bodies and nothing of the server's
// insides: it imports ops/wire, and package cluster only for the peer
// and member types the API shows; never ops/api. Anyone may import it.
package client
