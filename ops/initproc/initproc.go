// Package initproc lets daguha be a container's first process. A process
// with PID 1 inherits every orphan of its namespace and must reap them:
// a worker's steps leave orphans whenever a shell exits before what it
// started (a step's leftovers are killed when it ends), and in a
// container without an init (`FROM scratch`, a Kubernetes pod) daguha is
// PID 1. Reaping in the same process would race os/exec's own waits, so
// as PID 1 daguha starts itself again as its only child and does nothing
// but reap and pass signals on, as tini and `docker run --init` do.
package initproc

// ChildEnv marks the child that the init started; set to anything by an
// operator, it turns the init off (an init of their own already reaps).
const ChildEnv = "DAGUHA_INIT_CHILD"
