package api

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// Dagu's API may send params as a JSON object: it becomes NAME="value"
// pairs in the object's order, each value quoted as ParseParams reads it.
func TestDaguParamsReadsAJSONObjectInOrder(t *testing.T) {
	cases := []struct{ in, want, err string }{
		{`DAY=monday X=1`, `DAY=monday X=1`, ""},
		{`{"B": "two words", "A": 1, "C": true, "D": null}`, `B="two words" A="1" C="true" D=""`, ""},
		{`{"Q": "say \"hi\" \\ now"}`, `Q="say \"hi\" \\ now"`, ""},
		{`{"L": [1, 2]}`, `L="[1,2]"`, ""},
		{`{"two words": "x"}`, "", `"two words": a param's name`},
		{`{"A": "x"`, "", "params"},
	}
	for _, c := range cases {
		got, err := daguParams(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one naming %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q %v, want %q", c.in, got, err, c.want)
		}
	}
}

// An output named in UPPER_CASE shows in camelCase, as Dagu shows it;
// any other name stays as it is.
func TestDaguOutputNameIsCamelCaseForUpperCase(t *testing.T) {
	for in, want := range map[string]string{"ROW_COUNT": "rowCount", "RESULT": "result", "A_B_C2": "aBC2", "_X": "x", "mixedCase": "mixedCase", "lower_case": "lower_case", "__": "__"} {
		if got := daguOutputName(in); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}

// Dagu's log parameters pick lines: head, tail, or offset (1-based), each
// cut to limit.
func TestLogLinesPicksTheLinesAsked(t *testing.T) {
	content := "1\n2\n3\n4\n5\n"
	cases := []struct{ query, want string }{
		{"", "1\n2\n3\n4\n5\n"},
		{"head=2", "1\n2\n"},
		{"tail=2", "4\n5\n"},
		{"offset=2&limit=2", "2\n3\n"},
		{"tail=9", "1\n2\n3\n4\n5\n"},
		{"offset=9", ""},
	}
	for _, c := range cases {
		log, err := logLines(httptest.NewRequest("GET", "/x?"+c.query, nil), content, false)
		if err != nil || log.Content != c.want || log.TotalLines != 5 || log.LineCount != strings.Count(c.want, "\n") {
			t.Errorf("%s: %+v %v, want %q of 5 lines", c.query, log, err, c.want)
		}
	}
	if _, err := logLines(httptest.NewRequest("GET", "/x?limit=0", nil), content, false); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("limit=0: %v, want an error naming limit", err)
	}
}

// Dagu's status numbers and words, and daguha's words, filter the same
// runs; Dagu's statuses daguha has no run in filter none.
func TestDaguhaStatusOf(t *testing.T) {
	for in, want := range map[string]string{"1": "running", "running": "running", "3": "cancelled", "aborted": "cancelled", "cancelled": "cancelled", "5": "queued", "4": "succeeded", "2": "failed", "7": "", "not_started": ""} {
		if got, ok := daguhaStatusOf(in); !ok || got != want {
			t.Errorf("%s: %q %t, want %q", in, got, ok, want)
		}
	}
	if _, ok := daguhaStatusOf("9"); ok {
		t.Error("9 is no run status")
	}
}
