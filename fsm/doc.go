// Package fsm is daguha's replicated state machine: the command types that
// may change the state, Apply, and streamed Snapshot/Restore.
//
// A command is one type byte followed by a protobuf body. Apply must be
// deterministic on every server: it never reads a clock, draws a random
// number, depends on map iteration order or does I/O. Whatever a command
// needs that varies (times, ids, tokens) is chosen by the server that
// built it and carried inside the command.
//
// A command type this server does not know fails loudly (panics) unless
// its IgnoreUnknown bit is set: a replica must never silently diverge.
package fsm
