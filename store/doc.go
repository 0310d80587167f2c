// Package store holds daguha's replicated state in memory (go-memdb tables
// with indexes, one file per table) and opens the durable Raft log, stable
// store and snapshot store in a server's data directory.
//
// The state store is written only by package fsm, inside Raft's apply loop,
// so every write method takes the Raft index that caused it and must be
// deterministic: no clock, no randomness, no map-order dependence, no I/O.
// Objects handed out by reads are shared with the store and must never be
// modified; writers clone before they change a record.
package store
