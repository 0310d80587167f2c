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
//	                list of commands run in turn, as a step's): one step named
//	                after the DAG. With steps it is accepted and not used, as
//	                in the seed's example that writes both.
//	type            chain (the default, as in current Dagu: a step without
//	                depends waits for the one before it) or graph (steps wait
//	                only for their depends; independent ones run at once). A
//	                DAG that writes no type and gives a step depends is a
//	                graph: Dagu 1.x's default, as current Dagu refuses depends
//	                in a chain
//	shell           the shell of every step without its own (below)
//	workingDir      the directory steps run in, on the worker: $VARS and a
//	                leading ~ (the worker's home) are expanded there; a
//	                relative one is taken from the worker's own directory.
//	                Default: the worker's directory (Dagu's default, the DAG
//	                file's directory, means nothing on a worker)
//	delaySec        after starting a step, the engine waits this long before
//	                starting another (what Dagu's runner does; its docs say
//	                "before the first step")
//	maxOutputSize   the most bytes of stdout a step keeps for its output
//	                variable and continueOn.output; 1 to 1048576 (Dagu's
//	                default, and the most: outputs travel in the replicated
//	                state). A step printing more for its output fails
//	maxActiveSteps  at most this many steps of a run run at once (0: no bound)
//	container       a container every command step of a run runs in (see
//	                Executors)
//	maxCleanUpTimeSec how long a stopped step's processes get between the stop
//	                signal and SIGKILL (default: the worker's, 5 s, as Dagu's)
//	dotenv          .env files (a string or a list), read on the worker when a
//	                run starts: .env first, then these, relative to workingDir;
//	                a missing file is skipped; their variables come after the
//	                DAG's env. Without dotenv no .env is read (Dagu reads .env
//	                by default)
//	skipIfSuccessful a scheduled slot is skipped (and counts as fired) when the
//	                DAG's latest run succeeded after the slot before (a run by
//	                hand, say); decided by the leader in the replicated state
//	labels, tags    "a, b" or "k=v k2=v2", a map, or a list of strings and
//	                one-entry maps: kept as "name" or "name=value" for people
//	                and lists; they change nothing a run does
//	defaults        values for every step that does not set the key itself:
//	                continueOn, retryPolicy, repeatPolicy, timeoutSec,
//	                signalOnStop, preconditions, mailOnError; env and
//	                preconditions come before the step's own entries
//	logDir          accepted and not used: a step's full log is kept by the
//	                worker that ran it, in its step-log directory
//	logOutput       separate or merged; accepted and not used: a step's log
//	                holds both streams in the order written (as merged)
//	histRetentionDays accepted and not used: the cluster keeps the runs of
//	                every DAG for its run retention
//	group           accepted and not used (it only sorts DAGs in Dagu's UI)
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
// params may also be written as Dagu's JSON schema (type: object,
// properties, required) or as a list of rich entries ({name: N, type:
// integer, default: 3, required: true}): each property is a named param
// with its default (if any), checked when a run is enqueued and when it
// starts (CheckParams): type (string, integer, number or boolean), enum,
// minimum, maximum, minLength, maxLength, pattern (a regular expression a
// part of the value matches), required. Other schema keywords are refused
// as unknown keys; a schema in a file ({schema: path}) is refused, as the
// cluster has no DAG directory to read it from.
//
// # Keys of a step
//
// A step is a map, or Dagu's one-line form: - echo hello is a step with
// that command. A step without a name gets the one Dagu gives it: its id,
// else a prefix for what it does and its place in the list: cmd_N for a
// command, script_N for a script (or a command of several lines), dag_N
// for run/call, noop_N for a step that only publishes its output map, the
// type when one is written; N is its position from 1, counted up past the
// names of the steps before it (a later step named as an earlier one's
// generated name is a duplicate, as in Dagu).
//
//	name            unique in the DAG, at most 128 bytes, no control
//	                characters and no surrounding spaces
//	id              Dagu's step id: letters, digits, '_' and '-' (Dagu 1.x's
//	                rule; current Dagu refuses '-'), starting with a letter,
//	                at most 40 bytes, not env, params, args, stdout, stderr,
//	                output or outputs (in any case); unique, and not another
//	                step's name. depends may name a step by its id
//	description     string
//	command         a shell command line, at most 64 KiB; or a list of them,
//	                run one after another, stopping at the first that fails
//	                (current Dagu; in Dagu 1.x a list was one command's
//	                words). An item YAML reads as a one-entry map (- echo a:
//	                b) is the line as written, as in Dagu. With script, the
//	                command is the script's interpreter: command: python3
//	                runs python3 FILE, with the run's positional params after
//	script          a script, at most 64 KiB, run by the shell (or the command)
//	shell           a string ("bash -o pipefail", split at white space, quotes
//	                keeping words together) or a list; the step's own, else
//	                the DAG's, else sh. sh, bash, zsh, ksh, ash and dash run
//	                SHELL ARGS -c COMMAND with $0 and the positional params
//	                after it, and get -e (errexit) unless the step names its
//	                own shell, as current Dagu does; nix-shell runs nix-shell
//	                ARGS -p PACKAGE... --pure --run COMMAND; pwsh -Command;
//	                other programs PROGRAM ARGS -c COMMAND
//	shellPackages   packages for nix-shell; refused with another shell
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
//	dir, workingDir the working directory ($VARS, ~ and a path relative to
//	                the DAG's workingDir resolved on the worker); a directory
//	                that is not there fails the step saying so
//	env             as for a DAG
//	depends         a step name (or id) or a list of them; each must be a
//	                step of the DAG, and the steps must not depend on one
//	                another in a cycle
//	output          a variable name (letters, digits, '_', not starting with a
//	                digit, at most 128 bytes; a leading $ is dropped) that
//	                takes the step's trimmed stdout; or Dagu's output map,
//	                NAME: a literal (strings have $VARS expanded) or {from:
//	                stdout|stderr|file, path (for file), decode: text|json|
//	                yaml, select: .a.b[0]}, published when the step succeeds
//	                (one that cannot be read, decoded or selected fails it)
//	stdout, stderr  files each stream is also appended to (relative to the
//	                step's directory; not the same file)
//	logOutput       as for a DAG
//	signalOnStop    the signal that stops the step (its process group) when it
//	                times out, is cancelled or ends leaving processes: SIGINT,
//	                INT, 2...; SIGKILL follows after the clean-up time
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
//	continueOn      when dependants run although the step did not succeed:
//	                failure: true; exitCode: a code or a list (a failure with
//	                one); output: a text or a list, "re:" for a regular
//	                expression (a failure whose stdout has a line holding
//	                one); skipped: true (dependants of a step skipped for its
//	                own reason run; not of one skipped because a step before
//	                it failed, which Dagu cancels); markSuccess: true records
//	                such a failure as a success. Also the words failed and
//	                skipped. A failure that continues does not fail the run
//	type            the step's executor (current Dagu): command (the default),
//	                http, jq, archive or docker; with gives its settings (see Executors)
//	executor        the step's executor (Dagu 1.x): a name (executor: http)
//	                or {type: http, config: {...}}
//	mailOnError     true: the step's failure is mailed at once (the DAG's
//	                errorMail), with or without mailOn
//	tags, group     accepted and not used
//
// Values are kept as written: references ($NAME, ${NAME}, $1, JSON paths
// such as ${OUT.a.b[0]}, ${SUB.outputs.NAME}, ${id.stdout}) and
// `commands` in backquotes are the worker's to evaluate when the run
// starts (see package worker and docs/workflows.md), never this package's.
//
// A step has one of command (or a list of them), script (with or without a
// command as its interpreter), run and call, or only an output map.
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
// # Executors
//
// Besides command steps, the worker runs six of Dagu's executors, written
// in either form: Dagu 1.x's "executor: http" or "executor: {type: http,
// config: {...}}", or current Dagu's "type: http" with "with: {...}".
// They become StepSpec.executor and executor_config_json (the settings
// as a JSON object of the types below, checked here; values kept as
// written, variables the worker's):
//
//	http   command "METHOD URL" (or the settings method and url);
//	       headers and query (maps of names to text), body (text; a map or
//	       list is sent as its JSON), timeout (seconds), silent, json,
//	       debug (accepted, not used), skipTLSVerify (or skip_tls_verify)
//	jq     command the query (or the setting query); script the JSON input
//	       (or the setting input); raw (strings printed without quotes)
//	archive
//	       command create, extract or list (required; no script);
//	       source (required), destination (required to create, unless
//	       dryRun), format (ArchiveFormat; else the destination's
//	       extension to create), compressionLevel (-1 to 9), overwrite,
//	       preservePaths, stripComponents (0 to 255), include and exclude
//	       (a pattern or a list, CheckGlob), dryRun, verbose,
//	       followSymlinks, verifyIntegrity, continueOnError; password is
//	       refused (Dagu's is for 7z and rar)
//	docker command one line of words the container runs (no script, no
//	       list); settings image or containerName (a running container
//	       without image), pull (always, missing, never, or true/false),
//	       autoRemove, platform, workingDir, volumes, and the maps
//	       container (env, workingDir, user, entrypoint), host (binds,
//	       autoRemove, memory, cpuShares, networkMode) and exec (user,
//	       workingDir, env); see DockerSettings (docker.go)
//	ssh    command, commands or script run on the host; user and host (or
//	       1.x's ip) needed; port (text), key (a file on the worker),
//	       password, strictHostKey (or 1.x's strictHostKeyChecking; a
//	       bool, default true on the worker), knownHostFile, timeout (Go's
//	       duration text, from "30s" or a number of seconds), shell (text),
//	       shellArgs (a list); bastion is refused
//	mail   from and to needed (to a list of texts, each one address or
//	       several separated by commas); subject (one line), message,
//	       attachments (a list of paths on the worker); no command or
//	       script. The server is the DAG's smtp (or the worker's)
//
// A step with an executor needs no command, script, run or call (but an
// archive step needs its command, an ssh step a command or a script, and
// a docker step without an image a command). Any other executor (redis,
// s3, ...) is refused naming it: "executor redis is not supported yet
// (issue #23)". type: command (or executor: shell) is a command step;
// settings on one are refused. A password in an executor's settings, as
// smtp's, is masked by MaskSecrets and never in a problem's message.
//
// A DAG's container (current Dagu's container: image or exec, name,
// pullPolicy, env, volumes, user, workingDir, platform, network,
// keepContainer, startup, command; or a running container's name) becomes
// DagSpec.container_json, the same settings as a docker step's. Its
// command steps are run in it by the worker, so they take no script,
// shell or shellPackages, and the DAG no shell.
//
// Not supported, so reported as unknown keys: the keys not listed above.
package dagfile
