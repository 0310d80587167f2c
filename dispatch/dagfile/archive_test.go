package dagfile

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// Dagu's archive executor: 1.x's executor map with camelCase settings,
// current Dagu's type + with with snake_case ones, read to the same
// settings.
func TestArchiveExecutorForms(t *testing.T) {
	for _, tc := range []struct {
		name, step string
		settings   map[string]any
		command    string
	}{
		{"1.x map, camelCase", `executor:
      type: archive
      config:
        source: out/report.tar.gz
        destination: unpacked
        stripComponents: 1
        preservePaths: false
        continueOnError: true
        include: ["**/*.csv"]
        exclude: "tmp/*"
    command: extract`,
			map[string]any{"source": "out/report.tar.gz", "destination": "unpacked", "stripComponents": 1.0, "preservePaths": false,
				"continueOnError": true, "include": []any{"**/*.csv"}, "exclude": []any{"tmp/*"}}, "extract"},
		{"type and with, snake_case", `type: archive
    with:
      source: data
      destination: ${OUT}/data.zip
      compression_level: -1
      follow_symlinks: true
      verify_integrity: true
      dry_run: false
      overwrite: true
      verbose: true
    command: create`,
			map[string]any{"source": "data", "destination": "${OUT}/data.zip", "compressionLevel": -1.0, "followSymlinks": true,
				"verifyIntegrity": true, "dryRun": false, "overwrite": true, "verbose": true}, "create"},
		{"list with a format", "type: archive\n    with: {source: a.bin, format: TGZ}\n    command: List",
			map[string]any{"source": "a.bin", "format": "TGZ"}, "List"},
		{"an operation from a variable", "type: archive\n    with: {source: a.tar}\n    command: ${OP}",
			map[string]any{"source": "a.tar"}, "${OP}"},
		{"a dry run creates without destination", "type: archive\n    with: {source: d, dry_run: true}\n    command: create",
			map[string]any{"source": "d", "dryRun": true}, "create"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step := mustParse(t, "x.yaml", "steps:\n  - name: s\n    "+tc.step+"\n").Dags[0].GetSteps()[0]
			if step.GetExecutor() != "archive" || step.GetCommand() != tc.command {
				t.Errorf("executor %q command %q, want archive %q", step.GetExecutor(), step.GetCommand(), tc.command)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(step.GetExecutorConfigJson()), &got); err != nil {
				t.Fatalf("settings %q: %v", step.GetExecutorConfigJson(), err)
			}
			if !reflect.DeepEqual(got, tc.settings) {
				t.Errorf("settings %v, want %v", got, tc.settings)
			}
		})
	}
}

func TestBadArchiveSteps(t *testing.T) {
	const head = "steps:\n  - name: s\n    "
	for _, tc := range []struct {
		name, step string
		line       int
		key, msg   string
	}{
		{"no command", "type: archive\n    with: {source: a.tar}\n", 4, "steps[0].with", "needs a command: create, extract or list"},
		{"unknown operation", "type: archive\n    with: {source: a.tar}\n    command: unpack\n", 5, "steps[0].command", `want create, extract or list, got "unpack"`},
		{"no source", "executor: {type: archive, config: {destination: x}}\n    command: extract\n", 3, "steps[0].executor.config", "needs source"},
		{"create without destination", "type: archive\n    with: {source: d}\n    command: create\n", 4, "steps[0].with", "needs destination"},
		{"create of an unknown extension", "type: archive\n    with: {source: d, destination: d.bin}\n    command: create\n", 4, "steps[0].with", "cannot tell the format"},
		{"create of a format daguha lacks", "type: archive\n    with: {source: d, destination: d.tar.xz}\n    command: create\n", 4, "steps[0].with", "tar.xz is Dagu's but not daguha's"},
		{"create of tar.bz2", "type: archive\n    with: {source: d, destination: d.tbz2}\n    command: create\n", 4, "steps[0].with", "does not write tar.bz2"},
		{"unknown format", "type: archive\n    with: {source: a, format: cpio}\n    command: list\n", 4, "steps[0].with.format", `unknown archive format "cpio"`},
		{"7z", "type: archive\n    with: {source: a, format: 7z}\n    command: list\n", 4, "steps[0].with.format", "7z is Dagu's but not daguha's"},
		{"password", "type: archive\n    with: {source: a.zip, password: hunter2}\n    command: extract\n", 4, "steps[0].with.password", "7z and rar"},
		{"negative strip", "type: archive\n    with: {source: a.tar, strip_components: -1}\n    command: extract\n", 4, "steps[0].with.strip_components", "must not be negative"},
		{"compression level", "type: archive\n    with: {source: d, destination: d.zip, compression_level: 10}\n    command: create\n", 4, "steps[0].with.compression_level", "at most 9"},
		{"bad pattern", "type: archive\n    with: {source: a.tar, include: ['[a-']}\n    command: list\n", 4, "steps[0].with.include", "syntax error in pattern"},
		{"unbalanced brace", "type: archive\n    with: {source: a.tar, exclude: ['{a,b']}\n    command: list\n", 4, "steps[0].with.exclude", "a { without its }"},
		{"unknown key", "type: archive\n    with: {source: a.tar, destintion: x}\n    command: extract\n", 4, "steps[0].with.destintion", `did you mean "destination"`},
		{"a script", "type: archive\n    with: {source: a.tar}\n    command: list\n    script: ls\n", 6, "steps[0].script", "takes no script"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, head+tc.step, tc.line, tc.key, tc.msg)
		})
	}
	// The password's value is not in the message.
	for _, p := range mustFail(t, head+"type: archive\n    with: {source: a.zip, password: hunter2}\n    command: extract\n") {
		if strings.Contains(p.Error(), "hunter2") {
			t.Errorf("the problem shows the password: %s", p.Error())
		}
	}
}

// Dagu's include and exclude patterns are doublestar's: * within a part,
// ** across parts, {a,b} alternatives.
func TestMatchGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"*.txt", "a.txt", true},
		{"*.txt", "dir/a.txt", false},
		{"**/*.txt", "dir/a.txt", true},
		{"**/*.txt", "a.txt", true},
		{"**/*.txt", "d/e/f/a.txt", true},
		{"dir/**", "dir", true},
		{"dir/**", "dir/x/y", true},
		{"dir/**", "other/x", false},
		{"d?r/[a-c].log", "dir/b.log", true},
		{"d?r/[a-c].log", "dir/d.log", false},
		{"**/{cache,tmp}/**", "a/tmp/b", true},
		{"**/{cache,tmp}/**", "a/tmp2/b", false},
		{"*.{csv,json}", "x.json", true},
		{"{a,{b,c}}/z", "c/z", true},
		{"", "a", false},
		{"[", "[", false},
	} {
		if got := MatchGlob(tc.pattern, tc.name); got != tc.want {
			t.Errorf("MatchGlob(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}
