package dispatch

import "testing"

func TestMatchingRules(t *testing.T) {
	cases := []struct {
		name     string
		selector map[string]string
		labels   map[string]string
		want     bool
	}{
		{"every selector label present with the same value", map[string]string{"gpu": "true", "region": "eu-west-1"}, map[string]string{"gpu": "true", "region": "eu-west-1"}, true},
		{"extra worker labels do not matter", map[string]string{"gpu": "true"}, map[string]string{"gpu": "true", "cuda": "11.8", "memory": "64G"}, true},
		{"a missing label does not match", map[string]string{"gpu": "true", "region": "eu-west-1"}, map[string]string{"gpu": "true"}, false},
		{"value must be identical", map[string]string{"cuda": "11.8"}, map[string]string{"cuda": "11.80"}, false},
		{"value is case sensitive", map[string]string{"gpu": "true"}, map[string]string{"gpu": "True"}, false},
		{"key is case sensitive", map[string]string{"GPU": "true"}, map[string]string{"gpu": "true"}, false},
		{"no selector matches any worker", nil, map[string]string{"gpu": "true"}, true},
		{"empty selector matches a worker without labels", map[string]string{}, nil, true},
		{"a selector never matches a worker without labels", map[string]string{"gpu": "true"}, nil, false},
		{"empty string value needs the label present and empty", map[string]string{"tier": ""}, map[string]string{"tier": ""}, true},
		{"empty string value does not match an absent label", map[string]string{"tier": ""}, map[string]string{"gpu": "true"}, false},
		{"empty string value does not match a non-empty value", map[string]string{"tier": ""}, map[string]string{"tier": "gold"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Matches(tc.selector, tc.labels); got != tc.want {
				t.Fatalf("Matches(%v, %v) = %t, want %t", tc.selector, tc.labels, got, tc.want)
			}
		})
	}
}

func TestSelectorKeyIsCanonical(t *testing.T) {
	a := SelectorKey(map[string]string{"region": "eu-west-1", "gpu": "true"})
	b := SelectorKey(map[string]string{"gpu": "true", "region": "eu-west-1"})
	if a != b || a != "gpu=true,region=eu-west-1" {
		t.Fatalf("selector keys %q and %q", a, b)
	}
	if SelectorKey(nil) != "" || SelectorKey(map[string]string{"GPU": "true"}) == SelectorKey(map[string]string{"gpu": "true"}) {
		t.Fatal("selector keys must keep case and be empty for no selector")
	}
}
