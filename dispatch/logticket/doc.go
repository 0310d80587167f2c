// Package logticket is the one home of what a log ticket is: the MAC
// that lets a server read the step logs of one attempt of a run from the
// worker that ran it, and the bounds on tickets in a request and on
// disk. The leader signs one with each task (dispatch), every server can
// compute it again to fetch logs, and the worker (dispatch/worker) keeps
// the one it was given and compares what a request offers against it.
//
// This package is a leaf: it imports nothing of daguha, keeps no state
// and does no I/O. Anyone may import it.
package logticket
