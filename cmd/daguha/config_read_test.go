package main

import (
	"strings"
	"testing"
)

// Values reach their flags as written: YAML's typing would change a
// worker id 0123 to 83, a label 11.80 to 11.8 and an empty label value to
// "<nil>" (found while fuzzing readConfig).
func TestConfigValuesAsWritten(t *testing.T) {
	file, err := readConfig("c.yaml", []byte(`worker:
  id: 0123
  labels:
    gpu:
    cuda: 11.80
    tier: ""
  maxActiveRuns: 0x10
coordinator:
  signingKey: 1e3
cluster:
  join: [a:1, 007, ~]
`))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"worker.id":              "0123",
		"worker.labels":          "cuda=11.80,gpu=,tier=",
		"worker.maxActiveRuns":   "0x10",
		"coordinator.signingKey": "1e3",
		"cluster.join":           "a:1,007",
	} {
		if got := file.values[key]; got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
}

// Merge keys and aliases work as YAML says; a file that merges a map into
// itself, gives a key twice, or is not a map is refused naming the line.
func TestConfigFileShapes(t *testing.T) {
	file, err := readConfig("c.yaml", []byte("base: &b\n  id: w0\n  maxActiveRuns: 2\nworker:\n  <<: *b\n  id: w1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if file.values["worker.id"] != "w1" || file.values["worker.maxActiveRuns"] != "2" || strings.Join(file.unknown, " ") != "base" {
		t.Fatalf("merge: %v, unknown %v", file.values, file.unknown)
	}
	for text, want := range map[string]string{
		"worker: &w\n  <<: *w\n":             "line 1: worker: a map is merged into itself",
		"worker:\n  id: a\n  id: b\n":        "line 3: worker.id is given twice (first on line 2)",
		"- a\n- b\n":                         "line 1: want a map of settings, got a list",
		"worker:\n  id: [a, [b]]\n":          "line 2: worker.id: item 1: want a value, not a list",
		"worker:\n  labels: {a: {b: c}}\n":   "line 2: worker.labels: a: want a value, not a map",
		"port: {a: 1}\n":                     "line 1: port: want a value, not a map",
		"worker:\n  ? [a]\n  : b\n":          "line 2: worker: a key must be a string, got a list",
		"cluster:\n  health:\n    <<: [1]\n": "line 3: cluster.health: a merge key (<<) takes a map or a list of maps, got a number",
	} {
		_, err := readConfig("c.yaml", []byte(text))
		if err == nil || !strings.Contains(err.Error(), "config file c.yaml: "+want) {
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
}
