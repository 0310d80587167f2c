// Package chaos is daguha's fault-injection suite: real daguha processes,
// each server and worker in its own network namespace, a nemesis that kills,
// pauses, partitions and fills disks from a seeded schedule, clients that
// record every call, and checkers that hold the recorded history to what
// daguha promises: porcupine for linearizability of the run lifecycle, and
// invariants (no acknowledged enqueue lost, no run finished twice, no step
// result of a stale attempt recorded, each cron slot fired once).
//
// The suite needs root (network namespaces, iptables, tmpfs); it skips
// itself with the reason when they are not there. It never touches
// namespaces, links, rules or mounts it did not make: every name it makes
// starts with "dgc" and the id of the test process that made it, and only
// those of dead processes are swept at start.
package chaos
