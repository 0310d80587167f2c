// Package dagfile reads DAG files written in Dagu's YAML into the records
// the cluster stores and runs (daguhav1.DagSpec, daguhav1.StoredDag). It
// reports everything wrong with a file at once, each problem with the
// file, the line and the key, so that a push is refused with a message
// that says where to look. It does no I/O and keeps no state: callers
// hand it the bytes, and CheckChildren asks them which DAGs are stored.
//
// # Documents
//
// A file holds one or more YAML documents separated by "---". The first
// is the main DAG; the others are its local DAGs, which its run/call
// steps (and theirs) may start by name. Empty documents are skipped. The
// first DAG's name defaults to the file's base name without .yaml or
// .yml; every other document needs a name, and no two DAGs of a file may
// share one. A DAG name is letters, digits, '_', '.' and '-', starting
// with a letter, a digit or '_', at most 128 characters. A file is at most
// 2 MiB, and so is its DAG as stored (text, parsed form and local DAGs
// together), so that a run carrying it fits in one message to a worker.
// These rules, and those of names, labels and sizes below, are package
// valid's: the API and the worker's flags apply the same. YAML anchors,
// aliases and merge keys (<<) may be used anywhere, but an alias inside
// its own anchor, or aliases that make a document more than ten times
// larger than written, are refused. A YAML syntax error is reported at
// the line yaml.v3 names: for its parser's errors, the start of the
// collection it was reading.
//
// # Keys of a DAG
//
// Every key may be written in camelCase or in snake_case (maxActiveRuns
// or max_active_runs), but not both in one map. Any key not listed here
// is a problem ("unknown key"), at the top level and in steps alike.
//
//	name            string (see above)
//	description     string
//	params          default params: a string "a b KEY=v" (see ParseParams),
//	                a list of "KEY=v" strings (one without KEY= is positional),
//	                a list of {KEY: v} maps, or a map; a named param once only
//	env             a list of "K=V" strings, a list of {K: V} maps, or a map;
//	                kept in the order written (a later value may use an earlier one)
//	schedule        a cron expression or a list of them (see ParseSchedule);
//	                stored trimmed, a TZ= prefix written as CRON_TZ=
//	workerSelector  a map of label: value that a worker's labels must match;
//	                values YAML reads as numbers or true/false keep their text
//	                (gpu: true is "true"); at most 64 entries; names and values
//	                are non-empty text, hold no '=' or ',', no control
//	                characters and no surrounding spaces; names are at most
//	                253 bytes, values 63
//	maxActiveRuns   a whole number ≥ 0 (0: no limit)
//	timeoutSec      a whole number of seconds ≥ 0 (0: no limit)
//	catchup         latest, all or none
//	catchupWindow   a Go duration such as 6h, stored in whole seconds
//	steps           a list of 1 to 1000 steps (below)
//	command         a DAG without steps may be just a command (a string, or a
//	                list of strings joined by spaces): one step named after the
//	                DAG. With steps it is accepted and not used, as in the
//	                seed's example that writes both.
//	type            chain (the default, as in current Dagu: a step without
//	                depends waits for the one before it) or graph (steps wait
//	                only for their depends; independent ones run at once)
//	tags, group     accepted and not used (they only sort DAGs in Dagu's UI)
//	preconditions   conditions (below) all met before any step runs; else the
//	precondition    run ends cancelled; both keys may be given (their
//	                conditions are joined, preconditions' first)
//	handlerOn       a map of init, success, failure, cancel (or abort, its
//	                current Dagu name; not both), exit to a step (below),
//	                keys also capitalised (Exit) as Dagu 1.x reads them.
//	                The step is named onInit, onSuccess, onFailure, onCancel
//	                or onAbort, onExit whatever name it is given; it has no
//	                depends, and no step of the DAG may have its name. wait
//	                is refused: there are no approval steps
//	retryPolicy     {limit, intervalSec, backoff, maxIntervalSec}: a root run
//	                that fails is queued again, limit times (exitCode is
//	                refused here)
//
// Numbers may also be written quoted ("30"). Timeouts and intervals are at
// most 9223372036 seconds, the longest time.Duration.
//
// # Keys of a step
//
//	name            required, unique in the DAG, at most 128 bytes, no
//	                control characters and no surrounding spaces
//	description     string
//	command         a shell command line (a string, or a list of strings
//	                joined by spaces), at most 64 KiB; run with sh -c
//	script          a script, at most 64 KiB, run with sh
//	run, call       the name of a child DAG to start (both mean the same);
//	                a document of the file or a stored DAG (see CheckChildren)
//	params          only on a run/call step: the child's params, a string in
//	                Dagu's form (checked, kept as written) or a map or list as
//	                for a DAG's params, written out as "K=V K2=V2" with quotes
//	                where needed (see FormatParams)
//	workerSelector  only on a run/call step: routes the child run (else the
//	                child DAG's own selector applies)
//	dir             the working directory
//	env             as for a DAG
//	depends         a step name or a list of them; each must be a step of the
//	                DAG, and the steps must not depend on one another in a cycle
//	output          a variable name (letters, digits, '_', not starting with a
//	                digit, at most 128 bytes) that takes the step's trimmed
//	                stdout
//	retryPolicy     {limit: retries after the first failure, intervalSec,
//	                exitCode: an exit code or a list (retry only those),
//	                backoff, maxIntervalSec}
//	repeatPolicy    {repeat: true, false, while or until; condition, expected
//	                (a condition, below); exitCode; intervalSec; limit (the
//	                executions at most); backoff; maxIntervalSec}. while and
//	                until need a condition or an exitCode; without them the
//	                mode is Dagu 1.x's: until for condition with expected,
//	                while for a condition alone, exitCode or repeat: true.
//	                repeat: false and nothing else is no policy
//	preconditions,  conditions (below) all met for the step to run; else it
//	precondition    is skipped
//	timeoutSec      a whole number of seconds ≥ 0
//	continueOn      {failure: true} lets dependants run when the step fails;
//	                {skipped: true} when its preconditions skip it
//	type            only "command" (Dagu's default executor) is accepted
//	tags, group     accepted and not used
//
// A condition is a string (a command, met when it exits 0), or a map
// {condition, expected, negate} (command is another name for condition):
// without expected, condition is a command; with it, a text the shell
// expands, met when a line of it is expected, or matches the regular
// expression after "re:" (checked here). negate inverts it. A list of
// them may be given. A backoff is true (2), false or 0 (none), or a
// factor greater than 1 and at most 1000: each wait is the interval
// times the factor to the power of the waits before. Exit codes are -1
// to 255.
//
// A step has exactly one of command, script, run and call: Dagu's use of
// command as the interpreter of a script is not supported. Steps are
// maps; Dagu's one-line form (- echo hi) and generated step names are not.
//
// Not supported, so reported as unknown keys: Dagu's executors, mail,
// dotenv, shell, queues and the other keys not listed above.
package dagfile
