// Package layers checks that daguha's packages import only what
// docs/architecture.md allows. The rules are read from that document's
// "layers" block, so the drawing and the check cannot drift apart: a new
// package, or a new import between daguha packages, fails the test until
// the document says where it belongs.
//
// Nothing imports this package; its test runs `go list` over the module.
package layers
