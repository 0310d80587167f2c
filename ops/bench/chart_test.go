package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// writeCharts draws the figures of a full run as two SVG bar charts:
// throughput against concurrent clients, and dispatch latency percentiles.
func writeCharts(figures []figure, dir string) error {
	var points [][2]float64 // clients, runs/s
	var latency figure
	for _, f := range figures {
		params, _ := f["params"].(figure)
		switch f["name"] {
		case "dispatch_throughput", "dispatch_throughput_by_clients":
			if params["servers"] == 3 && params["executor"] == "noop" {
				points = append(points, [2]float64{float64(params["clients"].(int)), toFloat(f["value"])})
			}
		case "dispatch_latency":
			latency = f
		}
	}
	sort.Slice(points, func(i, j int) bool { return points[i][0] < points[j][0] })
	if len(points) == 0 && latency == nil {
		return nil
	}
	var bars []bar
	for _, p := range points {
		bars = append(bars, bar{fmt.Sprintf("%.0f clients", p[0]), p[1]})
	}
	if len(bars) > 0 {
		if err := os.WriteFile(filepath.Join(dir, "performance-throughput.svg"),
			[]byte(barChart("dispatch throughput, 3 servers, no-op executor (runs/s)", bars)), 0o644); err != nil {
			return err
		}
	}
	if latency != nil {
		bars = []bar{{"p50", toFloat(latency["p50"])}, {"p99", toFloat(latency["p99"])}, {"max", toFloat(latency["max"])}}
		if err := os.WriteFile(filepath.Join(dir, "performance-latency.svg"),
			[]byte(barChart("enqueue → step started, idle 3-server cluster (ms)", bars)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// TestRenderCharts redraws the charts from saved figures (JSON lines),
// for a run that was finished in parts: DAGUHA_BENCH_CHARTS=a.jsonl,b.jsonl.
func TestRenderCharts(t *testing.T) {
	files := os.Getenv("DAGUHA_BENCH_CHARTS")
	if files == "" {
		t.Skip("set DAGUHA_BENCH_CHARTS to redraw the charts from saved figures")
	}
	var figures []figure
	for _, name := range strings.Split(files, ",") {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var f figure
			if err := json.Unmarshal([]byte(line), &f); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if p, ok := f["params"].(map[string]any); ok {
				f["params"] = normalize(p)
			}
			figures = append(figures, f)
		}
	}
	if err := writeCharts(figures, filepath.Join("..", "..", "docs")); err != nil {
		t.Fatal(err)
	}
}

// normalize turns decoded JSON numbers back into the ints the suite uses.
func normalize(p map[string]any) figure {
	out := figure{}
	for k, v := range p {
		if f, ok := v.(float64); ok && f == float64(int(f)) {
			v = int(f)
		}
		out[k] = v
	}
	return out
}

type bar struct {
	label string
	value float64
}

// barChart is a small, dependency-free SVG bar chart.
func barChart(title string, bars []bar) string {
	const width, height, left, bottom, top = 560, 300, 60, 40, 40
	max := 0.0
	for _, b := range bars {
		if b.value > max {
			max = b.value
		}
	}
	if max == 0 {
		max = 1
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&sb, `<rect width="100%%" height="100%%" fill="white"/><text x="%d" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", left, title)
	plotH := float64(height - bottom - top)
	fmt.Fprintf(&sb, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", left, height-bottom, width-10, height-bottom)
	slot := float64(width-left-20) / float64(max1(len(bars)))
	for i, b := range bars {
		h := b.value / max * plotH
		x := float64(left) + float64(i)*slot + slot*0.15
		y := float64(height-bottom) - h
		fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#1f5fbf"/>`+"\n", x, y, slot*0.7, h)
		fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" text-anchor="middle">%.1f</text>`+"\n", x+slot*0.35, y-4, b.value)
		fmt.Fprintf(&sb, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x+slot*0.35, height-bottom+16, b.label)
	}
	sb.WriteString("</svg>\n")
	return sb.String()
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}
