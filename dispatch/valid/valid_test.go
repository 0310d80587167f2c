package valid

import (
	"errors"
	"strings"
	"testing"
)

// rule is one case of a check: the input, and "" when it is accepted or a
// part of the message when it is refused.
type rule struct {
	name  string
	input string
	want  string
}

func runRules(t *testing.T, check func(string) error, rules []rule) {
	t.Helper()
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			err := check(r.input)
			switch {
			case r.want == "" && err != nil:
				t.Fatalf("%q refused: %v", r.input, err)
			case r.want != "" && err == nil:
				t.Fatalf("%q accepted, want it refused with %q", r.input, r.want)
			case r.want != "" && !strings.Contains(err.Error(), r.want):
				t.Fatalf("%q: %v, want a message with %q", r.input, err, r.want)
			}
			var typed *Error
			if err != nil && !errors.As(err, &typed) {
				t.Fatalf("%q: error %T, want *valid.Error", r.input, err)
			}
		})
	}
}

func TestDagName(t *testing.T) {
	runRules(t, DagName, []rule{
		{"letters digits and punctuation are a name", "etl_daily.v2-final", ""},
		{"a leading underscore or digit is allowed", "_1st", ""},
		{"128 bytes is the longest", strings.Repeat("a", 128), ""},
		{"empty is refused", "", `DAG name "": must be 1-128 letters`},
		{"129 bytes is too long", strings.Repeat("a", 129), "must be 1-128"},
		{"a leading dash is refused", "-x", `DAG name "-x"`},
		{"a leading dot is refused", ".hidden", "starting with a letter, a digit or '_'"},
		{"dot dot is refused", "..", `DAG name ".."`},
		{"a slash is refused", "a/b", `"a/b"`},
		{"a space is refused", "my dag", `"my dag"`},
		{"non-ASCII is refused", "données", "must be 1-128"},
		{"a colon is refused (run ids only)", "a:b", "must be 1-128"},
	})
}

func TestRunID(t *testing.T) {
	runRules(t, RunID, []rule{
		{"a UUID is a run id", "0190f3c2-7a4e-7b3c-9d2e-1f0a2b3c4d5e", ""},
		{"colons dots and dashes are allowed", "nightly:2026-01-01.1", ""},
		{"a leading dash is allowed (as the API always did)", "-1", ""},
		{"128 bytes is the longest", strings.Repeat("r", 128), ""},
		{"empty is refused", "", `run id "": must be 1-128`},
		{"129 bytes is too long", strings.Repeat("r", 129), "must be 1-128"},
		{"dot is refused", ".", "not . or .."},
		{"dot dot is refused", "..", `run id ".."`},
		{"a slash is refused", "a/b", "must be 1-128"},
		{"a space is refused", "a b", "must be 1-128"},
	})
}

func TestWorkerIDAndNodeName(t *testing.T) {
	rules := []rule{
		{"host@PID, the default worker id, is an id", "gpu-01.example.com@4242", ""},
		{"253 bytes is the longest", strings.Repeat("w", 253), ""},
		{"empty is refused", "", `"": must be 1-253`},
		{"254 bytes is too long", strings.Repeat("w", 254), "must be 1-253"},
		{"a slash is refused (ids are certificate URI paths)", "a/b", `"a/b"`},
		{"a leading @ is refused", "@host", "starting with a letter"},
		{"a leading dash is refused", "-w", "starting with a letter"},
		{"a space is refused", "worker 1", "must be 1-253"},
	}
	t.Run("worker id", func(t *testing.T) { runRules(t, WorkerID, rules) })
	t.Run("node name", func(t *testing.T) { runRules(t, NodeName, rules) })
	if err := WorkerID("a b"); !strings.HasPrefix(err.Error(), "worker id ") {
		t.Fatalf("worker id error %q does not say what it is about", err)
	}
	if err := NodeName("a b"); !strings.HasPrefix(err.Error(), "node name ") {
		t.Fatalf("node name error %q does not say what it is about", err)
	}
}

func TestStepName(t *testing.T) {
	runRules(t, StepName, []rule{
		{"words with spaces inside are a step name", "build the image", ""},
		{"non-ASCII text is allowed", "étape 1", ""},
		{"128 bytes is the longest", strings.Repeat("s", 128), ""},
		{"empty is refused", "", `step name "": must not be empty`},
		{"129 bytes is too long", strings.Repeat("s", 129), "at most 128 bytes"},
		{"a space at the start is refused", " a", "must not start or end with a space"},
		{"a space at the end is refused", "a ", "must not start or end with a space"},
		{"a control character is refused", "a\x00b", "control characters"},
		{"a newline is refused", "a\nb", "control characters"},
		{"bytes that are not UTF-8 are refused", "a\xffb", "UTF-8"},
	})
}

func TestLabelKey(t *testing.T) {
	runRules(t, LabelKey, []rule{
		{"a plain key", "gpu", ""},
		{"dots slashes and dashes are allowed", "example.com/cuda-version", ""},
		{"non-ASCII text is allowed", "ключ", ""},
		{"253 bytes is the longest", strings.Repeat("k", 253), ""},
		{"empty is refused", "", `label key "": must not be empty`},
		{"254 bytes is too long", strings.Repeat("k", 254), "must be at most 253 bytes"},
		{"= is refused", "a=b", `label key "a=b": must not contain '=' or ','`},
		{", is refused", "a,b", "must not contain '=' or ','"},
		{"a space at either end is refused", " gpu", "must not start or end with a space"},
		{"a control character is refused", "g\tpu", "control characters"},
	})
}

func TestLabelValue(t *testing.T) {
	check := func(v string) error { return LabelValue("zone", v) }
	runRules(t, check, []rule{
		{"a plain value", "eu-west-1", ""},
		{"63 bytes is the longest", strings.Repeat("v", 63), ""},
		{"empty is refused (gpu: in YAML is a mistake)", "", `label value "" of "zone": must not be empty`},
		{"64 bytes is too long", strings.Repeat("v", 64), "must be at most 63 bytes"},
		{"a 900 KB value is refused without being echoed", strings.Repeat("v", 900_000), "(900000 bytes)"},
		{"= is refused", "a=b", "must not contain '=' or ','"},
		{", is refused", "eu,us", `label value "eu,us" of "zone"`},
		{"a space at either end is refused", "eu ", "must not start or end with a space"},
		{"a control character is refused", "e\x7fu", "control characters"},
	})
}

func TestLabels(t *testing.T) {
	many := map[string]string{}
	for i := range MaxLabels + 1 {
		many["k"+strings.Repeat("x", i)] = "v"
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   string
	}{
		{"no labels are a label set", nil, ""},
		{"64 labels is the most", func() map[string]string {
			m := map[string]string{}
			for i := range MaxLabels {
				m["k"+strings.Repeat("x", i)] = "v"
			}
			return m
		}(), ""},
		{"65 labels are refused", many, "65 labels, more than the limit of 64"},
		{"a bad key is named", map[string]string{"a": "1", "b=c": "2"}, `label key "b=c"`},
		{"a bad value is named with its key", map[string]string{"gpu": "yes,no"}, `label value "yes,no" of "gpu"`},
		{"the first problem in key order is reported", map[string]string{"z": "", "a": ""}, `of "a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Labels(tc.labels)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want a message with %q", err, tc.want)
			}
		})
	}
}

func TestSizes(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"one step is a DAG", StepCount(1), ""},
		{"1000 steps is the most", StepCount(MaxDagSteps), ""},
		{"no step is refused", StepCount(0), "at least one step"},
		{"100,000 steps are refused with the limit named", StepCount(100_000), "100000 steps, more than the limit of 1000 per DAG"},
		{"a DAG of 2 MiB is stored", DagSize(MaxDagBytes), ""},
		{"a DAG over 2 MiB is refused", DagSize(MaxDagBytes + 1), "more than the limit of 2097152"},
		{"a command of 64 KiB runs", Command(strings.Repeat("c", MaxCommandBytes)), ""},
		{"a longer command is refused", Command(strings.Repeat("c", MaxCommandBytes+1)), "command: 65537 bytes, more than the limit of 65536"},
		{"params of 64 KiB are taken", Params(strings.Repeat("p", MaxParamsBytes)), ""},
		{"longer params are refused", Params(strings.Repeat("p", MaxParamsBytes+1)), "params: 65537 bytes"},
		{"an output tail of 64 KiB is reported", OutputTail(strings.Repeat("o", MaxOutputTailBytes)), ""},
		{"a longer output tail is refused", OutputTail(strings.Repeat("o", MaxOutputTailBytes+1)), "output tail: 65537 bytes"},
		{"an error of 8 KiB is reported", ErrorText(strings.Repeat("e", MaxErrorBytes)), ""},
		{"a longer error is refused", ErrorText(strings.Repeat("e", MaxErrorBytes+1)), "error: 8193 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			switch {
			case tc.want == "" && tc.err != nil:
				t.Fatalf("refused: %v", tc.err)
			case tc.want != "" && (tc.err == nil || !strings.Contains(tc.err.Error(), tc.want)):
				t.Fatalf("got %v, want a message with %q", tc.err, tc.want)
			}
		})
	}
}

func TestLogAddr(t *testing.T) {
	runRules(t, LogAddr, []rule{
		{"no address means no log service", "", ""},
		{"host and port", "10.0.0.7:7070", ""},
		{"a bracketed IPv6 address", "[fd00::7]:7070", ""},
		{"a name", "worker-1.example.com:7070", ""},
		{"no port is refused", "10.0.0.7", "want host:port"},
		{"no host is refused", ":7070", "want host:port"},
		{"port 0 is refused", "h:0", "want host:port"},
		{"a port past 65535 is refused", "h:65536", "want host:port"},
		{"a long address is refused", strings.Repeat("h", MaxAddrBytes) + ":1", "at most 261 bytes"},
		{"a control character is refused", "h\n:1", "want host:port"},
	})
}

func TestOutputs(t *testing.T) {
	big := strings.Repeat("v", MaxOutputValueBytes)
	for _, tc := range []struct {
		name    string
		outputs map[string]string
		want    string
	}{
		{"variables under the limits are reported", map[string]string{"RESULT": "42", "_x1": ""}, ""},
		{"a value of 1 MiB is the most", map[string]string{"A": big}, ""},
		{"a longer value is refused", map[string]string{"A": big + "v"}, "output A: 1048577 bytes"},
		{"more than 2 MiB together is refused", map[string]string{"A": big, "B": big, "C": "v"}, "outputs: 2097156 bytes together"},
		{"a name that is no variable is refused", map[string]string{"1st": "x"}, `output name "1st"`},
		{"a name with a dash is refused", map[string]string{"a-b": "x"}, `output name "a-b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Outputs(tc.outputs)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want a message with %q", err, tc.want)
			}
		})
	}
}

func TestQuoteCutsLongInputs(t *testing.T) {
	if got := Quote("short"); got != `"short"` {
		t.Fatalf("Quote(short) = %s", got)
	}
	long := strings.Repeat("é", 20_000_000/2)
	got := Quote(long)
	if len(got) > 100 || !strings.HasSuffix(got, "(20000000 bytes)") {
		t.Fatalf("Quote of 20 MB = %q (%d bytes), want a short quote with the length", got[:min(len(got), 120)], len(got))
	}
	err := LabelValue("big", long)
	if len(err.Error()) > 200 {
		t.Fatalf("the error for a 20 MB label value is %d bytes", len(err.Error()))
	}
}

func TestClipError(t *testing.T) {
	if got := ClipError("short"); got != "short" {
		t.Fatalf("ClipError(short) = %q", got)
	}
	long := strings.Repeat("ü", MaxErrorBytes)
	got := ClipError(long)
	if len(got) > MaxErrorBytes || ErrorText(got) != nil || !strings.HasSuffix(got, "(cut)") {
		t.Fatalf("ClipError of %d bytes gave %d bytes ending %q", len(long), len(got), got[len(got)-10:])
	}
	if !strings.HasPrefix(got, "üüü") || strings.ContainsRune(got, 0xFFFD) {
		t.Fatal("ClipError cut inside a character")
	}
}

// A nil result is a nil error, not a nil *Error in an interface.
func TestAcceptedIsNil(t *testing.T) {
	for name, err := range map[string]error{
		"DagName": DagName("a"), "RunID": RunID("a"), "WorkerID": WorkerID("a"), "NodeName": NodeName("a"),
		"StepName": StepName("a"), "LabelKey": LabelKey("a"), "LabelValue": LabelValue("a", "b"),
		"Labels": Labels(map[string]string{"a": "b"}), "LabelCount": LabelCount(1), "StepCount": StepCount(1),
		"DagSize": DagSize(1), "Command": Command("x"), "Params": Params(""), "LogAddr": LogAddr("h:1"),
		"OutputName": OutputName("A"), "Outputs": Outputs(nil), "OutputTail": OutputTail(""), "ErrorText": ErrorText(""),
	} {
		if err != nil {
			t.Errorf("%s accepted input but returned %#v", name, err)
		}
	}
}
