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
//	                stored trimmed, a TZ= prefix written as CRON_TZ=; or Dagu's
//	                map of start, stop and restart, each an expression or a list
//	workerSelector  a map of label: value that a worker's labels must match;
//	                values YAML reads as numbers or true/false keep their text
//	                (gpu: true is "true"); at most 64 entries; names and values
//	                are non-empty text, hold no '=' or ',', no control
//	                characters and no surrounding spaces; names are at most
//	                253 bytes, values 63
//	maxActiveRuns   a whole number ≥ 0 (0: no limit), or -1 (Dagu's "no limit", stored as 0);
//	                with queue, the queue's limit when the servers set none
//	queue           Dagu's queue: the name of a queue the DAG's runs share with
//	                the other DAGs that name it (a DAG name's rule)
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
//	smtp            Dagu's SMTP server of the DAG's mails: a map of host (no
//	                spaces or '/'), port (1-65535, a number or a string),
//	                username and password; all empty is none (the worker's)
//	mailOn          {success, failure}: which ends of a run are mailed;
//	                current Dagu's wait is refused (daguha has no waiting runs)
//	errorMail,      {from, to, prefix, attachLogs}: the mail of a failure
//	infoMail        (errorMail) or a success (infoMail); to is an address or
//	                a list of them; an address is net/mail's (a@example.com,
//	                Name <a@example.com>); a prefix is one line
//
// Mail values that hold a reference ($NAME, ${NAME}) are kept as written
// and checked by the worker that sends the mail (package worker, mail.go),
// which also fills what they leave empty with its own settings. A
// password's value never goes into a problem's message, and MaskSecrets
// hides one written in a file's text from whoever reads the DAG.
//
// Numbers may also be written quoted ("30"). Timeouts and intervals are at
// most 9223372036 seconds, the longest time.Duration.
//
// # Keys of a step
//
//	name            required, unique in the DAG, at most 128 bytes, no
//	                control characters and no surrounding spaces
//	id              Dagu's step id, which references such as ${id.exitCode}
//	                name: a letter, then letters, digits, '_' and '-', at most
//	                128 bytes, unique in the DAG
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
//	parallel        only on a run/call step: Dagu's parallel, one child run
//	                per item (see Parallel steps below)
//	dir             the working directory
//	env             as for a DAG
//	depends         a step name or a list of them; each must be a step of the
//	                DAG, and the steps must not depend on one another in a cycle
//	output          a variable name (letters, digits, '_', not starting with a
//	                digit, at most 128 bytes) that takes the step's trimmed
//	                stdout
//	retryPolicy     {limit: retries after the first failure, intervalSec}
//	timeoutSec      a whole number of seconds ≥ 0
//	continueOn      {failure: true} lets dependants run when the step fails;
//	                skipped is accepted and not used
//	type            only "command" (Dagu's default executor) is accepted
//	mailOnError     true: the step's failure is mailed at once (the DAG's
//	                errorMail), with or without mailOn
//	tags, group     accepted and not used
//
// Values are kept as written: references ($NAME, ${NAME}, $1, JSON paths
// such as ${OUT.a.b[0]}, ${SUB.outputs.NAME}, ${id.stdout}) and
// `commands` in backquotes are the worker's to evaluate when the run
// starts (see package worker and docs/workflows.md), never this package's.
//
// A step has exactly one of command, script, run and call: Dagu's use of
// command as the interpreter of a script is not supported. Steps are
// maps; Dagu's one-line form (- echo hi) and generated step names are not.
//
// # Parallel steps
//
// A run/call step with parallel starts one child run of its DAG per item,
// at most maxConcurrent (default 10) of them active at once, and succeeds
// when every child succeeded. parallel is written as in Dagu 1.x and now:
//
//	parallel: [a.csv, b.csv]          a list of items
//	parallel: ${ITEMS}                a variable holding them, read when the
//	                                  step runs: a JSON array, else one item
//	                                  per line, else one per word
//	parallel:                         a map of items (either form) and
//	  items: [a.csv, b.csv]           maxConcurrent (or max_concurrent), a
//	  maxConcurrent: 2                whole number of at least 1
//
// An item is a string or a number (kept as written), or a map of param
// names to strings, numbers or true/false: the child's named params. A list
// has 1 to 1000 items (valid.ParallelItems); true/false, null and nested
// lists are not items, as in Dagu. The step's params are the child's, with
// ${ITEM} standing for the item; without params, the item itself is the
// child's params (a string in Dagu's params form, a map as NAME=value
// pairs). How items become child runs is the worker's (package worker).
//
// Dagu has no groups of steps inside a step: a nested group is a run/call
// of a DAG with its own steps (a document of the file, or a stored DAG).
//
// Not supported, so reported as unknown keys: Dagu's preconditions,
// handlers (handlerOn), executors (the mail executor too), dotenv,
// shell, queues, repeat policies and the other keys not listed above.
package dagfile
