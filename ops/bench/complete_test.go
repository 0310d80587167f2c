package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/daguha/daguha/dispatch"
)

// required is what every whole run of the suite, quick or full, must
// print: the figures of the benchmarks issue and the baselines they are
// fractions of. A figure with a baseline of its own names the key of its
// ratio ("ratio" or "ratio_..."); the baselines themselves have none.
var required = []struct {
	name string
	// count is how many figures of that name a run prints, at least.
	count int
	// dist is true where the figure has a distribution.
	dist bool
	// ratio is true where the figure must carry a ratio to a baseline.
	ratio bool
}{
	{"baseline_fsync", 1, false, false},
	{"baseline_raft_apply", 1, false, false},
	{"bare_raft_apply_batched", 1, false, false},
	// One server, three servers with the no-op executor, three with sh.
	{"dispatch_throughput", 3, false, true},
	{"dispatch_throughput_bulk", 1, false, true},
	{"dispatch_latency", 1, true, true},
	{"enqueue_latency", 1, true, true},
	{"failover", 1, true, true},
	{"reclaim", 1, false, true},
	{"matching", 1, true, true},
	{"matching_leader_rss", 1, false, true},
	{"snapshot_save", 1, false, true},
	{"snapshot_restore", 1, false, true},
	{"catch_up", 1, false, true},
	{"heartbeats", 1, false, true},
}

// incomplete lists what a run's figures lack against required: a figure
// missing or printed too few times, a value that is not a positive finite
// number, no unit or parameters, no distribution or no ratio where one is
// due. Empty means the run printed every figure of the issue.
// The figures are judged as printed: through JSON and back.
func incomplete(figures []figure) []string {
	var problems []string
	byName := map[string][]map[string]any{}
	for _, f := range figures {
		var printed map[string]any
		data, err := json.Marshal(f)
		if err == nil {
			err = json.Unmarshal(data, &printed)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%v: not JSON: %v", f["name"], err))
			continue
		}
		name, _ := printed["name"].(string)
		byName[name] = append(byName[name], printed)
	}
	for _, r := range required {
		got := byName[r.name]
		if len(got) < r.count {
			problems = append(problems, fmt.Sprintf("%s: printed %d times, want %d", r.name, len(got), r.count))
		}
		for i, f := range got {
			where := fmt.Sprintf("%s[%d]", r.name, i)
			if v, ok := number(f["value"]); !ok || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				problems = append(problems, fmt.Sprintf("%s: value %v is not a positive number", where, f["value"]))
			}
			if u, _ := f["unit"].(string); u == "" {
				problems = append(problems, where+": no unit")
			}
			if _, ok := f["params"].(map[string]any); !ok {
				problems = append(problems, where+": no params")
			}
			if r.dist {
				for _, k := range []string{"p99", "max"} {
					if _, ok := number(f[k]); !ok {
						problems = append(problems, fmt.Sprintf("%s: no %s", where, k))
					}
				}
			}
			if r.ratio && !hasRatio(f) {
				problems = append(problems, where+": no ratio to a baseline")
			}
			if strings.HasPrefix(r.name, "dispatch_throughput") {
				problems = append(problems, lacksInside(where, f)...)
			}
		}
	}
	sort.Strings(problems)
	return problems
}

func hasRatio(f map[string]any) bool {
	for k, v := range f {
		if k == "ratio" || strings.HasPrefix(k, "ratio_") {
			if x, ok := number(v); ok && x > 0 && !math.IsInf(x, 0) {
				return true
			}
		}
	}
	return false
}

func number(v any) (float64, bool) {
	x, ok := v.(float64)
	return x, ok
}

// A complete set passes, and each way of being incomplete is named.
func TestIncompleteNamesWhatARunLacks(t *testing.T) {
	complete := func() []figure {
		var fs []figure
		for _, r := range required {
			for i := 0; i < r.count; i++ {
				f := figure{"name": r.name, "value": 12.5, "unit": "things/s", "params": figure{"n": 1}}
				if r.dist {
					f["p50"], f["p99"], f["max"] = 1.0, 2.0, 3.0
				}
				if r.ratio {
					f["ratio_to_something"] = 0.5
				}
				if strings.HasPrefix(r.name, "dispatch_throughput") {
					stages := figure{}
					for _, stage := range dispatch.Stages {
						stages[stage] = figure{"p50": 1.0, "p99": 2.0}
					}
					f["stages_ms"], f["allocs_per_run"], f["gc_cpu_share"] = stages, figure{"leader": 700.0}, figure{"leader": 0.1}
				}
				fs = append(fs, f)
			}
		}
		return fs
	}
	if p := incomplete(complete()); len(p) != 0 {
		t.Fatalf("a complete run is reported incomplete: %v", p)
	}
	cases := []struct {
		name  string
		spoil func([]figure) []figure
		want  string
	}{
		{"a figure missing", func(fs []figure) []figure {
			var out []figure
			for _, f := range fs {
				if f["name"] != "heartbeats" {
					out = append(out, f)
				}
			}
			return out
		}, "heartbeats: printed 0 times, want 1"},
		{"too few throughput figures", func(fs []figure) []figure {
			for i, f := range fs {
				if f["name"] == "dispatch_throughput" {
					return append(fs[:i:i], fs[i+1:]...)
				}
			}
			return fs
		}, "dispatch_throughput: printed 2 times, want 3"},
		{"a zero value", func(fs []figure) []figure { fs[0]["value"] = 0.0; return fs }, "baseline_fsync[0]: value 0 is not a positive number"},
		{"a value that is not a number", func(fs []figure) []figure { fs[0]["value"] = "fast"; return fs }, "baseline_fsync[0]: value fast is not a positive number"},
		{"no unit", func(fs []figure) []figure { delete(fs[1], "unit"); return fs }, "baseline_raft_apply[0]: no unit"},
		{"no params", func(fs []figure) []figure { delete(fs[2], "params"); return fs }, "bare_raft_apply_batched[0]: no params"},
		{"no distribution", func(fs []figure) []figure {
			for _, f := range fs {
				if f["name"] == "matching" {
					delete(f, "p99")
				}
			}
			return fs
		}, "matching[0]: no p99"},
		{"no stage of a run's life", func(fs []figure) []figure {
			for _, f := range fs {
				if f["name"] == "dispatch_throughput_bulk" {
					delete(f["stages_ms"].(figure), "start_report")
				}
			}
			return fs
		}, "dispatch_throughput_bulk[0]: no p50 and p99 of stage start_report"},
		{"no ratio", func(fs []figure) []figure {
			for _, f := range fs {
				if f["name"] == "snapshot_restore" {
					delete(f, "ratio_to_something")
				}
			}
			return fs
		}, "snapshot_restore[0]: no ratio to a baseline"},
	}
	for _, c := range cases {
		p := incomplete(c.spoil(complete()))
		if len(p) != 1 || p[0] != c.want {
			t.Errorf("%s: got %q, want [%q]", c.name, p, c.want)
		}
	}
}
