package valid

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseLabels(t *testing.T) {
	labels, err := ParseLabels("gpu=true, cuda=11.8,memory=64G , tier = gold")
	if err != nil {
		t.Fatal(err)
	}
	if FormatLabels(labels) != "cuda=11.8,gpu=true,memory=64G,tier=gold" {
		t.Fatalf("parsed %v", labels)
	}
	// The rules are this package's, as for a DAG's workerSelector; an
	// empty value ("tier=") was accepted here before they were one rule.
	for input, want := range map[string]string{
		"gpu":                             `label "gpu": want key=value`,
		"=true":                           `label key "": must not be empty`,
		"gpu=true,gpu=no":                 `label "gpu" is given twice`,
		"a=b=c":                           `label value "b=c" of "a": must not contain '=' or ','`,
		"tier=":                           `label value "" of "tier": must not be empty`,
		"zone=" + strings.Repeat("z", 64): `must be at most 63 bytes`,
		manyLabels(65):                    `65 labels, more than the limit of 64`,
	} {
		if _, err := ParseLabels(input); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseLabels(%q): %v, want %q", input, err, want)
		}
	}
	if labels, err := ParseLabels(""); err != nil || len(labels) != 0 {
		t.Fatalf("empty labels: %v %v", labels, err)
	}
}

// manyLabels is n labels in the k=v,k=v form.
func manyLabels(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = "k" + strconv.Itoa(i) + "=v"
	}
	return strings.Join(parts, ",")
}
