package worker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/daguha/daguha/dispatch/dagfile"
	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// readFiles checks the files a run's steps wrote into dir.
func readFiles(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	for file, content := range want {
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || string(data) != content {
			t.Errorf("%s: %q (%v), want %q", file, data, err, content)
		}
	}
}

// notPwned fails the test when a value ran as a command.
func notPwned(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("a value ran as a command")
	}
}

func succeeded(t *testing.T, r result, host *fakeHost) {
	t.Helper()
	if r.status != daguhav1.RunStatus_RUN_STATUS_SUCCEEDED {
		t.Fatalf("run: %s %q; %v", r.status, r.message, host.last())
	}
}

// ${OUT.a.b[0]} reads a JSON path into an output, in commands, scripts,
// env values, dir and a child's params; a value holding quotes and `;`
// stays data.
func TestEngineJSONPathsIntoOutputs(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "h1"), 0o700); err != nil {
		t.Fatal(err)
	}
	host := &fakeHost{children: map[string]*daguhav1.Run{"child-call-1": {Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED}}}
	config := `{"db": {"host": "h1", "port": 5432.0}, "list": ["a", "b", "c"], "odd-key": true, "ratio": 0.5,
		"evil": "\"; touch $D/pwned; \"", "sub": "$(touch $D/pwned)` + "`touch $D/pwned`" + `", "none": null}`
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "config", Command: "cat <<'EOF'\n" + config + "\nEOF", Output: "CONFIG"},
		&daguhav1.StepSpec{Name: "use", Depends: []string{"config"}, Dir: "${D}/${CONFIG.db.host}",
			Env: []*daguhav1.EnvVar{{Name: "HOST", Value: "host=${CONFIG.db.host}"}},
			Command: `printf '%s|' "${CONFIG.db.host}" $CONFIG.db.port "${CONFIG.list[1]}" "${CONFIG.list.[-1]}" ` +
				`"${CONFIG."odd-key"}" "${CONFIG.["ratio"]}" "${CONFIG.missing}" "${CONFIG.none}" "${CONFIG.list[9]}" "$HOST" "$(basename "$PWD")" > "$D/use"; ` +
				`printf '%s' "${CONFIG.db}" > "$D/object"; printf '%s' "${CONFIG.db.host}${CONFIG.db.host}" > "$D/twice"`},
		&daguhav1.StepSpec{Name: "evil", Depends: []string{"config"},
			Command: `printf '%s|%s' "${CONFIG.evil}" "${CONFIG.sub}" > "$D/evil"; echo ${CONFIG.evil}`},
		&daguhav1.StepSpec{Name: "script", Depends: []string{"config"},
			Script: "printf '%s|%s' \"${CONFIG.list[0]}\" \"$1\" > \"$D/script\"\n"},
		&daguhav1.StepSpec{Name: "call", Depends: []string{"config"}, ChildDag: "sub", ChildParams: "HOST=${CONFIG.db.host} PORT=$CONFIG.db.port"},
	)
	run.Params = "first"
	r := execute(t, context.Background(), testEngine(t), run, host)
	succeeded(t, r, host)
	readFiles(t, dir, map[string]string{
		"use":    "h1|5432|b|c|true|0.5|<nil>|<nil>|<nil>|host=h1|h1|",
		"object": `{"host":"h1","port":5432}`,
		"twice":  "h1h1",
		"evil":   `"; touch $D/pwned; "|$(touch $D/pwned)` + "`touch $D/pwned`",
		"script": "a|first",
	})
	notPwned(t, dir)
	if len(host.childParams) != 1 || host.childParams[0] != "HOST=h1 PORT=5432" {
		t.Errorf("child params %q", host.childParams)
	}
}

// A reference nothing resolves is left to the shell, which refuses it as
// it refuses Dagu's: a JSON path into a value that is no JSON, into a
// variable that does not exist, or a key of a string.
func TestEngineUnresolvedReferencesFailInTheShell(t *testing.T) {
	for name, command := range map[string]string{
		"not JSON":      `echo "${TEXT.a}"`,
		"no such name":  `echo "${NOTHING.a}"`,
		"key of a list": `echo "${LIST.a}"`,
	} {
		t.Run(name, func(t *testing.T) {
			host := &fakeHost{}
			run := testRun(t.TempDir(), &daguhav1.StepSpec{Name: "s", Command: command})
			run.Dag.Env = append(run.Dag.Env, &daguhav1.EnvVar{Name: "TEXT", Value: "plain"}, &daguhav1.EnvVar{Name: "LIST", Value: "[1]"})
			r := execute(t, context.Background(), testEngine(t), run, host)
			s := host.last()["s"]
			if r.status != daguhav1.RunStatus_RUN_STATUS_FAILED || s.GetExitCode() == 0 || !strings.Contains(s.GetOutputTail(), "substitution") {
				t.Errorf("run %s %q; step %v", r.status, r.message, s)
			}
		})
	}
}

// ${id.stdout} and ${id.stderr} are the files holding a step's streams,
// ${id.exitCode} (or exit_code) its exit code and ${id.output} its
// output, as Dagu documents them.
func TestEngineStepReferencesByID(t *testing.T) {
	for _, logs := range []bool{true, false} {
		name := "with logs"
		if !logs {
			name = "without logs"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			host := &fakeHost{}
			e := testEngine(t)
			if !logs {
				e.LogDir = ""
			}
			run := testRun(dir,
				&daguhav1.StepSpec{Name: "risky step", Id: "risky", Command: `echo '{"n": [7]}'; echo err >&2; exit 3`,
					Output: "RISKY", ContinueOnFailure: true},
				&daguhav1.StepSpec{Name: "check", Id: "check-2", Depends: []string{"risky step"},
					Command: `printf '%s|%s|%s|' "${risky.exitCode}" "${risky.exit_code}" "$(cat "${risky.stdout}" | tr '\n' ' ')" > "$D/check"; ` +
						`printf '%s|%s' "$(cat ${risky.stderr})" "${risky.output}" | tr '\n' ' ' >> "$D/check"; echo "${risky.stdout}" > "$D/path"`},
				&daguhav1.StepSpec{Name: "after", Depends: []string{"check"},
					Command: `printf '%s|%s|%s' "${check-2.exitCode}" "$(cat ${check-2.stdout})" "${risky.output.n[0]}" > "$D/after"`},
			)
			run.Dag.Steps[1].Output = "CHECK"
			r := execute(t, context.Background(), e, run, host)
			succeeded(t, r, host)
			readFiles(t, dir, map[string]string{
				"check": `3|3|{"n": [7]} |err|{"n": [7]}`,
				"after": `0||7`,
			})
			path, _ := os.ReadFile(filepath.Join(dir, "path"))
			stdout := strings.TrimSpace(string(path))
			if filepath.Ext(stdout) != ".out" {
				t.Errorf("stdout file %s: want it to end in .out, as Dagu's", stdout)
			}
			if _, err := os.Stat(strings.TrimSuffix(stdout, ".out") + ".err"); logs && err != nil {
				t.Errorf("stderr file beside %s, ending in .err as Dagu's: %v", stdout, err)
			}
			if logs && !strings.HasPrefix(stdout, e.LogDir) {
				t.Errorf("stdout file %s is not in the run's logs", stdout)
			}
			if _, err := os.Stat(stdout); logs != (err == nil) {
				t.Errorf("stdout file %s after the run: %v (kept with the logs only)", stdout, err)
			}
		})
	}
}

// Dagu's special variables for files: DAG_RUN_STEP_STDOUT_FILE and
// DAG_RUN_STEP_STDERR_FILE are a step's own stdout and stderr files when
// it has an id (${id.stdout}, ${id.stderr}), else its log; DAG_RUN_LOG_FILE
// is the attempt's run log, with a line for each step that ended. Without
// logs, only a step with an id has such files.
func TestEngineSpecialFileVariables(t *testing.T) {
	for _, logs := range []bool{true, false} {
		t.Run(fmt.Sprintf("logs %v", logs), func(t *testing.T) {
			dir := t.TempDir()
			host := &fakeHost{}
			e := testEngine(t)
			if !logs {
				e.LogDir = ""
			}
			run := testRun(dir,
				&daguhav1.StepSpec{Name: "first", Command: "echo one; exit 3", ContinueOnFailure: true},
				&daguhav1.StepSpec{Name: "with id", Id: "w", Depends: []string{"first"},
					Command: `echo to-out; echo to-err >&2; printf '%s|%s' "$DAG_RUN_STEP_STDOUT_FILE" "$DAG_RUN_STEP_STDERR_FILE" > "$D/own"`},
				&daguhav1.StepSpec{Name: "without id", Depends: []string{"with id"},
					Command: `echo logged; printf '%s|%s|%s|%s|%s' "${w.stdout}" "${w.stderr}" "$(cat "${w.stdout}")" "$(cat "${w.stderr}")" ` +
						`"${DAG_RUN_STEP_STDOUT_FILE-none}|${DAG_RUN_STEP_STDERR_FILE-none}|${DAG_RUN_LOG_FILE-none}" > "$D/after"`},
			)
			succeeded(t, execute(t, context.Background(), e, run, host), host)
			own, _ := os.ReadFile(filepath.Join(dir, "own"))
			after, _ := os.ReadFile(filepath.Join(dir, "after"))
			if !strings.HasPrefix(string(after), string(own)+"|to-out|to-err|") {
				t.Fatalf("the step's own files %q are not its ${w.stdout} and ${w.stderr} with what it printed: %q", own, after)
			}
			files := strings.Split(string(after), "|")[4:]
			if !logs {
				if strings.Join(files, "|") != "none|none|none" {
					t.Errorf("without logs: %q, want no step log and no run log", files)
				}
				return
			}
			stepLog := e.LogPath("run-1", 1, "without id")
			if files[0] != stepLog || files[1] != stepLog {
				t.Errorf("a step without an id: %q, want its log %s for both", files[:2], stepLog)
			}
			if data, err := os.ReadFile(stepLog); err != nil || string(data) != "logged\n" {
				t.Errorf("its log: %q (%v)", data, err)
			}
			if filepath.Dir(files[2]) != filepath.Dir(stepLog) {
				t.Errorf("run log %s is not beside the attempt's step logs", files[2])
			}
			runLog, err := os.ReadFile(files[2])
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range []string{"msg=\"attempt started\" dag=test run=run-1 attempt=1",
				"msg=\"step ended\" step=first status=failed exit_code=3 error=\"exit status 3\"",
				"msg=\"step ended\" step=\"with id\" status=succeeded exit_code=0"} {
				if !strings.Contains(string(runLog), line) {
					t.Errorf("run log:\n%s\nwant a line with %s", runLog, line)
				}
			}
		})
	}
}

// Backquoted commands in the DAG's env, its default params and a step's
// env run on the worker when the run starts, with the variables before
// them in their environment; params given with the run and the values of
// variables never run.
func TestEngineBackquotedCommandsInValues(t *testing.T) {
	dir := t.TempDir()
	host := &fakeHost{}
	run := testRun(dir,
		&daguhav1.StepSpec{Name: "s", Env: []*daguhav1.EnvVar{{Name: "STEP", Value: "`printf '%s' \"$GREETING\" | tr a-z A-Z`!"}},
			Command: `printf '%s|' "$GREETING" "$TODAY" "$OUT" "$GIVEN" "$COPY" "$STEP" "$1" "$KEPT" > "$D/values"`},
	)
	run.Dag.Env = append(run.Dag.Env,
		&daguhav1.EnvVar{Name: "NAME", Value: "world"},
		&daguhav1.EnvVar{Name: "GREETING", Value: "hello `printf '%s' \"$NAME\"` from ${NAME}"},
		&daguhav1.EnvVar{Name: "KEPT", Value: "a `` b \\`x\\` c `open"},
	)
	run.Dag.Params = []*daguhav1.Param{
		{Value: "`echo positional`"},
		{Name: "TODAY", Value: "`echo 2026-12-06`"},
		{Name: "OUT", Value: "${TODAY}/out"},
		{Name: "GIVEN", Value: "default"},
		{Name: "COPY", Value: "${GIVEN}"},
	}
	run.Params = "GIVEN=`touch $D/pwned`"
	r := execute(t, context.Background(), testEngine(t), run, host)
	succeeded(t, r, host)
	readFiles(t, dir, map[string]string{
		"values": "hello world from world|2026-12-06|2026-12-06/out|`touch $D/pwned`|default|HELLO WORLD FROM WORLD!|positional|a `` b \\`x\\` c `open|",
	})
	notPwned(t, dir)

	// A value that refers to a param given with the run does not run it.
	dir = t.TempDir()
	run = testRun(dir, &daguhav1.StepSpec{Name: "s", Env: []*daguhav1.EnvVar{{Name: "X", Value: "${P} `echo ran`"}},
		Command: `printf '%s' "$X" > "$D/x"`})
	run.Params = "P=`touch $D/pwned`"
	succeeded(t, execute(t, context.Background(), testEngine(t), run, host), host)
	readFiles(t, dir, map[string]string{"x": "`touch $D/pwned` ran"})
	notPwned(t, dir)
}

// A backquoted command that fails fails the run (DAG env, params) or the
// step (its env), naming the value.
func TestEngineFailingBackquotedCommands(t *testing.T) {
	host := &fakeHost{}
	run := testRun(t.TempDir(), &daguhav1.StepSpec{Name: "s", Command: "true"})
	run.Dag.Env = append(run.Dag.Env, &daguhav1.EnvVar{Name: "BAD", Value: "`echo no >&2; exit 4`"})
	r := execute(t, context.Background(), testEngine(t), run, host)
	if r.status != daguhav1.RunStatus_RUN_STATUS_FAILED || r.message != "env BAD: command `echo no >&2; exit 4`: exit status 4: no" || len(host.last()) != 0 {
		t.Errorf("run: %s %q; steps %v", r.status, r.message, host.last())
	}

	run = testRun(t.TempDir(), &daguhav1.StepSpec{Name: "s", Command: "true"})
	run.Dag.Params = []*daguhav1.Param{{Name: "P", Value: "`false`"}}
	if r := execute(t, context.Background(), testEngine(t), run, host); r.status != daguhav1.RunStatus_RUN_STATUS_FAILED || !strings.HasPrefix(r.message, "params: P: command `false`") {
		t.Errorf("run: %s %q", r.status, r.message)
	}

	host = &fakeHost{}
	run = testRun(t.TempDir(), &daguhav1.StepSpec{Name: "s", Command: "true", Env: []*daguhav1.EnvVar{{Name: "E", Value: "`exit 1`"}}})
	r = execute(t, context.Background(), testEngine(t), run, host)
	if s := host.last()["s"]; r.status != daguhav1.RunStatus_RUN_STATUS_FAILED || s.GetStatus() != daguhav1.StepStatus_STEP_STATUS_FAILED ||
		s.GetError() != "env E: command `exit 1`: exit status 1" {
		t.Errorf("run %s %q; step %v", r.status, r.message, s)
	}
}

func TestParseReference(t *testing.T) {
	for _, tc := range []struct {
		text string
		name string
		path string // the steps, written back
		end  int    // 0: not a reference
	}{
		{"${A.b}", "A", ".b", 6},
		{"${A.b.c[0]}x", "A", ".b.c[0]", 11},
		{"${A.[1].b}", "A", "[1].b", 10},
		{`${A."x y"}`, "A", `."x y"`, 10},
		{`${A.["}"]}`, "A", `."}"`, 10},
		{"${A.b[-1]}", "A", ".b[-1]", 10},
		{"${step-1.stdout}", "step-1", ".stdout", 16},
		{"$A.b.c rest", "A", ".b.c", 6},
		{"$A.b", "A", ".b", 4},
		{"${A}", "", "", 0},
		{"${A.}", "", "", 0},
		{"${A..b}", "", "", 0},
		{"${A.b c}", "", "", 0},
		{"${A.b", "", "", 0},
		{"${A[0]}", "", "", 0},
		{"${A.b[x]}", "", "", 0},
		{"${A.b[+1]}", "", "", 0},
		{"$A.b;", "", "", 0},
		{`"$A.b"`[1:], "", "", 0},
		{"$1.5", "", "", 0},
		{"$.b", "", "", 0},
	} {
		ref, ok := parseReference(tc.text, 0)
		if ok != (tc.end > 0) {
			t.Errorf("%q: reference %v, want %v", tc.text, ok, tc.end > 0)
			continue
		}
		if !ok {
			continue
		}
		var path strings.Builder
		for _, s := range ref.path {
			switch {
			case s.isIndex:
				path.WriteString("[" + strconv.Itoa(s.index) + "]")
			case validName(s.key):
				path.WriteString("." + s.key)
			default:
				path.WriteString(`."` + s.key + `"`)
			}
		}
		if ref.name != tc.name || path.String() != tc.path || ref.end != tc.end {
			t.Errorf("%q: %s %s %d, want %s %s %d", tc.text, ref.name, path.String(), ref.end, tc.name, tc.path, tc.end)
		}
	}
}

// Values come out as Dagu writes them.
func TestJSONPathValues(t *testing.T) {
	doc := `{"s": "text", "i": 5432, "f": 5432.0, "r": 0.25, "big": 1e21, "t": true, "n": null,
		"o": {"b": 2, "a": [1, "x"]}, "l": [10, 20]}`
	for path, want := range map[string]string{
		".s": "text", ".i": "5432", ".f": "5432", ".r": "0.25", ".big": "1e+21", ".t": "true", ".n": "<nil>",
		".o": `{"a":[1,"x"],"b":2}`, ".l": "[10,20]", ".l[0]": "10", ".l[-1]": "20", ".l[2]": "<nil>",
		".missing": "<nil>", ".missing.deeper[3]": "<nil>", ".o.a[1]": "x",
	} {
		steps, ok := parsePath(path)
		if !ok {
			t.Fatalf("%s does not parse", path)
		}
		if got, ok := jsonPath(doc, steps); !ok || got != want {
			t.Errorf("%s: %q %v, want %q", path, got, ok, want)
		}
	}
	for _, path := range []string{".s.x", ".l.x", ".o[0]", ".i[0]"} {
		steps, _ := parsePath(path)
		if got, ok := jsonPath(doc, steps); ok {
			t.Errorf("%s: %q, want no value", path, got)
		}
	}
	steps, _ := parsePath(".a")
	if _, ok := jsonPath("not json", steps); ok {
		t.Error("a path into text that is no JSON gave a value")
	}
}

// DAG files that use Dagu's references, read by package dagfile and run:
// each gives the outputs Dagu documents for it.
func TestDaguReferencesFromFilesGiveDagusOutputs(t *testing.T) {
	child := &daguhav1.Run{Id: "child-report-1", DagName: "report", Params: "DAY=monday",
		Status: daguhav1.RunStatus_RUN_STATUS_SUCCEEDED, Outputs: map[string]string{"SUMMARY": "3 rows"}}
	for _, tc := range []struct {
		name   string
		yaml   string
		params string
		want   map[string]string
	}{
		{"JSON path into an output", `
steps:
  - name: settings
    command: |
      echo '{"listen": {"port": 9090, "addr": "0.0.0.0"}, "tags": ["x", "y"]}'
    output: SETTINGS
  - name: serve
    command: echo "serving on ${SETTINGS.listen.addr}:${SETTINGS.listen.port} as ${SETTINGS.tags[1]}"
    output: LINE
`, "", map[string]string{"LINE": "serving on 0.0.0.0:9090 as y"}},
		{"a child run's outputs", `
steps:
  - name: report
    run: report
    params: DAY=monday
    output: REPORT
  - name: show
    command: echo "${REPORT.outputs.SUMMARY} on ${REPORT.params}"
    output: SHOWN
`, "", map[string]string{"SHOWN": "3 rows on DAY=monday"}},
		{"backquotes and references in env", `
env:
  - LEFT: "` + "`echo left`" + `"
  - RIGHT: right
  - BOTH: "${LEFT}+${RIGHT}=` + "`echo both`" + `"
steps:
  - name: show
    command: echo "$BOTH"
    output: BOTH_SEEN
`, "", map[string]string{"BOTH_SEEN": "left+right=both"}},
		{"params using env, earlier params and backquotes", `
params: first ONE=1 FROM_ENV=${SOURCE} RAN=` + "`/bin/echo ran`" + ` COPY=${ONE} SPACED="a b"
env:
  - SOURCE: env-value
steps:
  - name: show
    command: echo "$1|$ONE|$FROM_ENV|$RAN|$COPY|$SPACED"
    output: PARAMS_SEEN
`, "", map[string]string{"PARAMS_SEEN": "first|1|env-value|ran|1|a b"}},
		{"params given with the run are data", `
params: first WORD=default
steps:
  - name: show
    command: echo "$1|$WORD"
    output: GIVEN
`, `"x; y" WORD="$(id)` + "`id`" + `"`, map[string]string{"GIVEN": "x; y|$(id)`id`"}},
		{"a step by its id", `
steps:
  - name: flaky check
    id: check
    command: echo checked; exit 4
    continueOn:
      failure: true
  - name: after
    command: echo "${check.exitCode} $(cat ${check.stdout})"
    output: AFTER
`, "", map[string]string{"AFTER": "4 checked"}},
		{"a step's files by its id, though its output has the id's name", `
steps:
  - name: status
    id: check
    command: |
      echo '{"state": "green", "stdout": "a key"}'
    output: check
  - name: after
    command: echo "${check.state} ${check.exitCode} $(cat ${check.stdout})"
    output: AFTER
`, "", map[string]string{"AFTER": `green 0 {"state": "green", "stdout": "a key"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := dagfile.Parse("refs.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			host := &fakeHost{children: map[string]*daguhav1.Run{child.GetId(): child}}
			run := &daguhav1.Run{Id: "run-1", DagName: "refs", Attempt: 1, Dag: f.Dags[0], Params: tc.params}
			r := execute(t, context.Background(), testEngine(t), run, host)
			succeeded(t, r, host)
			for name, value := range tc.want {
				if r.outputs[name] != value {
					t.Errorf("%s = %q, want %q", name, r.outputs[name], value)
				}
			}
		})
	}
}
