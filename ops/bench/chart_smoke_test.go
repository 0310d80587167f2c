package bench

import (
	"encoding/xml"
	"strings"
	"testing"
)

// The charts are well-formed SVG with one bar per figure and its value.
func TestBarChartIsWellFormedSVG(t *testing.T) {
	svg := barChart("runs/s", []bar{{"1 clients", 10}, {"64 clients", 250.5}})
	dec := xml.NewDecoder(strings.NewReader(svg))
	rects := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	if rects != 3 || !strings.Contains(svg, "250.5") || !strings.Contains(svg, "64 clients") {
		t.Fatalf("chart has %d rects (want a background and 2 bars):\n%s", rects, svg)
	}
}
