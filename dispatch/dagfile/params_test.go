package dagfile

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// p builds params from "NAME=value" (named) and "value" (positional)
// without quoting rules: the first '=' after a non-empty name splits.
func p(specs ...string) []*daguhav1.Param {
	var out []*daguhav1.Param
	for _, s := range specs {
		name, value, ok := strings.Cut(s, "=")
		if !ok || !isIdentifier(name) {
			name, value = "", s
		}
		out = append(out, &daguhav1.Param{Name: name, Value: value})
	}
	return out
}

func sameParams(a, b []*daguhav1.Param) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func show(params []*daguhav1.Param) string {
	var parts []string
	for _, p := range params {
		parts = append(parts, fmt.Sprintf("%q=%q", p.GetName(), p.GetValue()))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func TestParseParams(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []*daguhav1.Param
	}{
		{"", nil},
		{"   \t\n", nil},
		{"a b", p("a", "b")},
		{"KEY=v", p("KEY=v")},
		{"  first  KEY=default\tlast\n", p("first", "KEY=default", "last")},
		{`KEY="x y"`, p("KEY=x y")},
		{`'b c' K2='q "r"'`, p("b c", `K2=q "r"`)},
		{`K3= next`, []*daguhav1.Param{{Name: "K3"}, {Value: "next"}}},
		{`K=""`, []*daguhav1.Param{{Name: "K"}}},
		{`X="a \"b\" \\ c\n"`, p(`X=a "b" \ c\n`)},
		{"`date +%Y`", p("`date +%Y`")},
		{"D=`date +%Y` E", p("D=`date +%Y`", "E")},
		{`"A=b"`, []*daguhav1.Param{{Value: "A=b"}}},
		{`1x=2 --flag=on =v`, []*daguhav1.Param{{Value: "1x=2"}, {Value: "--flag=on"}, {Value: "=v"}}},
		{`_private=1 A_B2=x=y`, p("_private=1", "A_B2=x=y")},
		{`it's a"b`, []*daguhav1.Param{{Value: "it's"}, {Value: `a"b`}}},
		{"ünï=cödé", []*daguhav1.Param{{Value: "ünï=cödé"}}},
	} {
		got, err := ParseParams(tc.in)
		if err != nil {
			t.Errorf("ParseParams(%q): %v", tc.in, err)
			continue
		}
		if !sameParams(got, tc.want) {
			t.Errorf("ParseParams(%q) = %s, want %s", tc.in, show(got), show(tc.want))
		}
	}
}

func TestParseParamsRefusesBadQuoting(t *testing.T) {
	for _, in := range []string{`"open`, `K='x`, "`date", `"a"b`, `'it''s'`, `K="x"y`, `"a\"`} {
		if got, err := ParseParams(in); err == nil {
			t.Errorf("ParseParams(%q) = %s, want an error", in, show(got))
		}
	}
}

func TestFormatParamsReadsBack(t *testing.T) {
	params := []*daguhav1.Param{
		{Value: "plain"}, {Value: ""}, {Value: "two words"}, {Value: "A=b"}, {Value: `"quoted"`},
		{Value: "'lead"}, {Value: "`cmd`"}, {Value: `back\slash`}, {Value: "tab\there"}, {Value: `end\`},
		{Name: "N", Value: ""}, {Name: "N2", Value: "x=y"}, {Name: "N3", Value: "a \"b\" \\ c"},
		{Name: "N4", Value: "'x'"}, {Name: "N5", Value: "it's"},
	}
	text := FormatParams(params)
	got, err := ParseParams(text)
	if err != nil {
		t.Fatalf("ParseParams(%q): %v", text, err)
	}
	if !sameParams(got, params) {
		t.Errorf("ParseParams(FormatParams(p)) = %s\nwant %s\n(text %q)", show(got), show(params), text)
	}
	if got, want := FormatParams(p("a", "K=v", "two words")), `a K=v "two words"`; got != want {
		t.Errorf("FormatParams = %q, want %q", got, want)
	}
}

func TestMergeParams(t *testing.T) {
	defaults := p("a", "b", "K=1", "L=2")
	for _, tc := range []struct {
		given string
		want  []*daguhav1.Param
	}{
		{"", p("a", "b", "K=1", "L=2")},
		{"x", p("x", "b", "K=1", "L=2")},
		{"x y", p("x", "y", "K=1", "L=2")},
		{"x y z", p("x", "y", "K=1", "L=2", "z")},
		{"K=9", p("a", "b", "K=9", "L=2")},
		{"M=3 K=9", p("a", "b", "K=9", "L=2", "M=3")},
		{"x K=9 M=3 y z", p("x", "y", "K=9", "L=2", "M=3", "z")},
		{`L="two words" "w x"`, p("w x", "b", "K=1", "L=two words")},
		{"K=1 K=2", p("a", "b", "K=2", "L=2")},
	} {
		got, err := MergeParams(defaults, tc.given)
		if err != nil {
			t.Errorf("MergeParams(%q): %v", tc.given, err)
			continue
		}
		if !sameParams(got, tc.want) {
			t.Errorf("MergeParams(%q) = %s, want %s", tc.given, show(got), show(tc.want))
		}
	}
	if !sameParams(defaults, p("a", "b", "K=1", "L=2")) {
		t.Errorf("MergeParams changed the defaults: %s", show(defaults))
	}
	if got, err := MergeParams(nil, "x N=1"); err != nil || !sameParams(got, p("x", "N=1")) {
		t.Errorf("MergeParams(nil, ...) = %s, %v", show(got), err)
	}
	if _, err := MergeParams(defaults, `K="open`); err == nil {
		t.Errorf("MergeParams accepted an unclosed quote")
	}
}

// Whatever ParseParams accepts, FormatParams writes back to the same params.
func FuzzParamsRoundTrip(f *testing.F) {
	for _, s := range []string{"a b KEY=v", `K="x \"y\"" 'z w'`, "`date` D=`x y`", `"A=b" 1=2`, "K= ''"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		params, err := ParseParams(s)
		if err != nil {
			return
		}
		text := FormatParams(params)
		again, err := ParseParams(text)
		if err != nil {
			t.Fatalf("ParseParams(FormatParams(ParseParams(%q))) = %v (text %q)", s, err, text)
		}
		if !sameParams(params, again) {
			t.Fatalf("%q: %s, after formatting as %q: %s", s, show(params), text, show(again))
		}
	})
}
