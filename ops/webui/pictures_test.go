package webui_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

// The DAGs the pictures are drawn from. gated's middle step writes a
// line, waits for the test's first file, writes another, waits for the
// second: the test holds it running as long as it needs. Every wait is
// bounded (60 s).
const diamondYAML = "name: diamond\nsteps:\n  - name: start\n    command: echo start\n  - name: left\n    command: echo left\n    depends: [start]\n  - name: right\n    command: echo right\n    depends: [start]\n  - name: join\n    command: echo join\n    depends: [left, right]\n"

const familyYAML = `name: family
steps:
  - name: prepare
    command: echo prepare
  - name: one-child
    run: kid
    depends: [prepare]
  - name: per-item
    run: kid
    parallel: [a, b]
    depends: [prepare]
---
name: kid
steps:
  - name: work
    command: echo kid
`

func gatedYAML(dir string) string {
	wait := func(file string) string {
		return fmt.Sprintf(`for i in $(seq 1 600); do [ -f %s ] && break; sleep 0.1; done`, filepath.Join(dir, file))
	}
	return fmt.Sprintf("name: gated\nsteps:\n  - name: first\n    command: echo first\n  - name: middle\n    script: |\n      echo before-the-page\n      %s\n      echo written-after-the-page-opened\n      %s\n    depends: [first]\n  - name: last\n    command: echo last\n    depends: [middle]\n",
		wait("go1"), wait("go2"))
}

// historyYAML's check step fails when the run's params say so.
const historyYAML = "name: five\nparams: OUTCOME=good\nsteps:\n  - name: build\n    command: echo build\n  - name: check\n    command: test \"$OUTCOME\" = good\n    depends: [build]\n"

// bigYAML is 200 steps in 20 layers of 10, each step after the one ten
// before it.
func bigYAML() string {
	var b strings.Builder
	b.WriteString("name: big\nsteps:\n")
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&b, "  - name: s%03d\n    command: \"true\"\n", i)
		if i >= 10 {
			fmt.Fprintf(&b, "    depends: [s%03d]\n", i-10)
		}
	}
	return b.String()
}

// colorScheme makes the page see prefers-color-scheme as scheme.
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		_, err := cdp.Call(ctx, target, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	})
}

func getText(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(data)
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func navigate(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
}

func waitRunStatus(t *testing.T, a *clustertest.Agent, id, want string) wire.Run {
	t.Helper()
	var run wire.Run
	clustertest.WaitFor(t, 90*time.Second, "run "+id+" "+want, func() (bool, string) {
		code, err := a.GetJSON("/api/v2/dag-runs/"+id, &run)
		return err == nil && code == 200 && run.Status == want, fmt.Sprintf("HTTP %d %v status %q", code, err, run.Status)
	})
	return run
}

// Issue 25: the DAG graph, the run's live graph and timeline, the
// history grid and the live log, in Chromium on one real cluster.
func TestPictures(t *testing.T) {
	ctx := browser(t)
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 1, ExtraArgs: []string{"-glance-every=200ms"}})
	server := c.WaitLeader(t, 30*time.Second)
	start(t, c.NewWorker("pictures-worker"))
	gates := t.TempDir()
	post(t, server, "/api/v2/dags", map[string]any{"files": []map[string]string{
		{"name": "diamond.yaml", "content": diamondYAML},
		{"name": "family.yaml", "content": familyYAML},
		{"name": "gated.yaml", "content": gatedYAML(gates)},
		{"name": "five.yaml", "content": historyYAML},
		{"name": "big.yaml", "content": bigYAML()},
		{"name": "stuck.yaml", "content": "name: stuck\nworkerSelector:\n  nowhere: \"true\"\nsteps:\n  - name: never\n    command: echo never\n"},
	}})
	base := server.HTTPAddr()

	t.Run("the diamond's graph: 4 nodes, 4 edges, none overlapping", func(t *testing.T) {
		navigate(t, ctx, base+"/#/dags/diamond")
		waitJS(t, ctx, "4 nodes and 4 edges", `document.querySelectorAll("#dag-graph .node").length === 4 && document.querySelectorAll("#dag-graph .edge").length === 4`, 30*time.Second)
		waitJS(t, ctx, "each node named, no two overlapping, each edge between the right steps", `(() => {
			const nodes = [...document.querySelectorAll("#dag-graph .node")];
			const names = nodes.map(n => n.dataset.step).sort().join(",");
			if (names !== "join,left,right,start") return false;
			const boxes = nodes.map(n => n.querySelector(".box").getBoundingClientRect());
			for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
				const a = boxes[i], b = boxes[j];
				if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) return false;
			}
			const edges = [...document.querySelectorAll("#dag-graph .edge")].map(e => e.dataset.from + ">" + e.dataset.to).sort().join(",");
			if (edges !== "left>join,right>join,start>left,start>right") return false;
			// Layered: start above left and right, both above join.
			const top = (name) => nodes.find(n => n.dataset.step === name).querySelector(".box").getBoundingClientRect().top;
			return top("start") < top("left") && top("left") === top("right") && top("right") < top("join") &&
				nodes.every(n => n.querySelector("title").textContent.startsWith(n.dataset.step));
		})()`, 5*time.Second)
		screenshot(t, ctx, "dag-graph")
	})

	t.Run("child and parallel steps are marked as such", func(t *testing.T) {
		navigate(t, ctx, base+"/#/dags/family")
		waitJS(t, ctx, "the kinds of steps", `(() => {
			const kind = (name) => (document.querySelector('#dag-graph .node[data-step="' + name + '"]') || {dataset: {}}).dataset.kind;
			return kind("prepare") === "command" && kind("one-child") === "child" && kind("per-item") === "parallel" &&
				document.querySelector('#dag-graph .node[data-step="per-item"] .stack') !== null &&
				document.querySelectorAll("#dag-graph .edge").length === 2;
		})()`, 30*time.Second)
		// The run's graph: the child step's box opens the child run.
		post(t, server, "/api/v2/dag-runs", map[string]string{"dag_name": "family", "dag_run_id": "family-1"})
		waitRunStatus(t, server, "family-1", "succeeded")
		navigate(t, ctx, base+"/#/runs/family-1")
		waitJS(t, ctx, "the child step's box a link to the child run", `(() => {
			const a = document.querySelector('#run-graph a.node[data-step="one-child"]');
			return a !== null && a.getAttribute("href").startsWith("#/runs/") && a.getAttribute("href") !== "#/runs/family-1" &&
				a.dataset.status === "succeeded" && document.querySelector('#run-graph a.node[data-step="per-item"]') !== null;
		})()`, 30*time.Second)
		href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#run-graph a.node[data-step="one-child"]').getAttribute("href")`))
		if err != nil {
			t.Fatal(err)
		}
		// With the keyboard: the child's box takes the focus
		// and Enter opens it.
		waitJS(t, ctx, "the child's box focused", `(() => {
			const a = document.querySelector('#run-graph a.node[data-step="one-child"]');
			a.focus();
			return document.activeElement === a;
		})()`, 5*time.Second)
		if err := chromedp.Do(ctx, chromedp.KeyEvent("\r")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the child run's page", fmt.Sprintf(`location.hash === %q && %s.includes("kid")`, href, textOf("#run")), 30*time.Second)
	})

	t.Run("a run's graph and timeline follow it live; a running step's log follows what it writes", func(t *testing.T) {
		post(t, server, "/api/v2/dag-runs", map[string]string{"dag_name": "gated", "dag_run_id": "gated-1"})
		navigate(t, ctx, base+"/#/runs/gated-1")
		node := func(step string) string { return fmt.Sprintf(`#run-graph .node[data-step=%q]`, step) }
		waitJS(t, ctx, "middle running, first succeeded, last not started", fmt.Sprintf(`(() => {
			const st = (sel) => (document.querySelector(sel) || {dataset: {}}).dataset.status;
			return st(%q) === "succeeded" && st(%q) === "running" && st(%q) === "not-started";
		})()`, node("first"), node("middle"), node("last")), 60*time.Second)
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.__marker = "same page"`)); err != nil {
			t.Fatal(err)
		}
		// The log of the running step, asked for once, follows it.
		if err := chromedp.Do(ctx, chromedp.Click(`button[data-key="log middle"]`)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the log so far", textOf(`pre.log[data-step="middle"]`)+`.includes("before-the-page")`, 30*time.Second)
		touch(t, filepath.Join(gates, "go1"))
		waitJS(t, ctx, "the line written after the page opened, the step still running", textOf(`pre.log[data-step="middle"]`)+`.includes("written-after-the-page-opened") && document.querySelector(`+"`"+node("middle")+"`"+`).dataset.status === "running"`, 30*time.Second)
		waitJS(t, ctx, "a download of the whole log", `document.querySelector('button[data-key="download middle"]') !== null`, 5*time.Second)
		screenshot(t, ctx, "run-live")
		touch(t, filepath.Join(gates, "go2"))
		waitJS(t, ctx, "middle and last succeeded, without a reload", fmt.Sprintf(`document.querySelector(%q).dataset.status === "succeeded" && document.querySelector(%q).dataset.status === "succeeded" && window.__marker === "same page"`,
			node("middle"), node("last")), 60*time.Second)
		waitJS(t, ctx, "the timeline's bars ordered by start", `(() => {
			const bars = [...document.querySelectorAll("#timeline .bar")];
			const xs = bars.map(b => parseFloat(b.querySelector("rect").getAttribute("x")));
			const ys = bars.map(b => b.getBoundingClientRect().top);
			return bars.map(b => b.dataset.step).join(",") === "first,middle,last" &&
				bars.every(b => b.dataset.status === "succeeded") &&
				xs[0] <= xs[1] && xs[1] <= xs[2] && ys[0] < ys[1] && ys[1] < ys[2];
		})()`, 30*time.Second)
		waitJS(t, ctx, "the whole log after the end", textOf(`pre.log[data-step="middle"]`)+`.includes("written-after-the-page-opened")`, 10*time.Second)
		screenshot(t, ctx, "run-graph")
		// What the page follows with: a part of the log from an offset,
		// at most limit bytes; a bad offset or limit is named.
		const logText = "before-the-page\nwritten-after-the-page-opened\n"
		for _, c := range []struct{ query, want string }{
			{"", logText}, {"?offset=16", logText[16:]}, {"?limit=6", "before"}, {"?offset=16&limit=7", "written"}, {"?offset=999", ""},
		} {
			code, body := getText(t, base+"/api/v2/dag-runs/gated-1/steps/middle/log"+c.query)
			if code != 200 || body != c.want {
				t.Errorf("log%s: HTTP %d %q, want %q", c.query, code, body, c.want)
			}
		}
		for _, c := range []struct{ query, names string }{{"?offset=-1", "offset"}, {"?limit=0", "limit"}, {"?limit=99999999", "limit"}} {
			if code, body := getText(t, base+"/api/v2/dag-runs/gated-1/steps/middle/log"+c.query); code != 400 || !strings.Contains(body, c.names) {
				t.Errorf("log%s: HTTP %d %s, want 400 naming %s", c.query, code, body, c.names)
			}
		}
	})

	t.Run("the history grid of 5 runs: 5 columns in the right colours", func(t *testing.T) {
		for i := 1; i <= 5; i++ {
			params := "OUTCOME=good"
			if i == 3 {
				params = "OUTCOME=bad"
			}
			post(t, server, "/api/v2/dag-runs", map[string]string{"dag_name": "five", "dag_run_id": fmt.Sprintf("five-%d", i), "params": params})
		}
		for i := 1; i <= 5; i++ {
			want := "succeeded"
			if i == 3 {
				want = "failed"
			}
			waitRunStatus(t, server, fmt.Sprintf("five-%d", i), want)
		}
		navigate(t, ctx, base+"/#/dags/five")
		waitJS(t, ctx, "5 columns, run 3's check red, the others green", `(() => {
			const columns = [...document.querySelectorAll("#history thead th[data-run]")].map(th => th.dataset.run);
			if (columns.join(",") !== "five-1,five-2,five-3,five-4,five-5") return false;
			const green = "rgb(45, 164, 78)", red = "rgb(207, 34, 46)";
			const cell = (run, step) => document.querySelector('#history a.cell[data-run="' + run + '"][data-step="' + step + '"]');
			return columns.every(run => {
				const build = cell(run, "build"), check = cell(run, "check"), bad = run === "five-3";
				return build && check && getComputedStyle(build).backgroundColor === green &&
					check.dataset.status === (bad ? "failed" : "succeeded") &&
					getComputedStyle(check).backgroundColor === (bad ? red : green) &&
					check.getAttribute("href") === "#/runs/" + run;
			});
		})()`, 30*time.Second)
		screenshot(t, ctx, "dag-history")
	})

	t.Run("the cluster at a glance: queue depth, runs started, workers, leader changes", func(t *testing.T) {
		for i := 1; i <= 3; i++ {
			post(t, server, "/api/v2/dag-runs", map[string]string{"dag_name": "stuck", "dag_run_id": fmt.Sprintf("stuck-%d", i)})
		}
		navigate(t, ctx, base+"/#/cluster")
		waitJS(t, ctx, "3 queued, 1 healthy worker, runs started drawn", `(() => {
			const chart = (key) => document.querySelector('#glance svg[data-chart="' + key + '"]') || {dataset: {}};
			return chart("queue").dataset.last === "3" && chart("workers").dataset.last === "1,0,0,0" &&
				chart("started").dataset.last !== undefined &&
				chart("queue").getAttribute("aria-label").includes("Queued runs") &&
				document.querySelectorAll("#glance polyline").length === 6;
		})()`, 30*time.Second)
		screenshot(t, ctx, "cluster-glance")
		// The runs started so far are in the samples: family's and its 3
		// children, gated's and five's 5 (the ring holds 72 s at 200 ms).
		var glance wire.Glance
		if code, err := server.GetJSON("/api/v2/cluster/glance", &glance); err != nil || code != 200 {
			t.Fatalf("GET /api/v2/cluster/glance: HTTP %d %v", code, err)
		}
		var startedRuns uint64
		for _, sample := range glance.Samples {
			startedRuns += sample.RunsStarted
		}
		if startedRuns < 10 || glance.Server != "server1" {
			t.Fatalf("%d runs started in %d samples of %q, want at least 10 of server1", startedRuns, len(glance.Samples), glance.Server)
		}
		// A change of leader is marked on each chart, and said in words.
		waitJS(t, ctx, "two leader changes marked", `(() => {
			const at = (s) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
			const sample = (s, leader, queued) => ({at: at(s), queue_depth: queued, runs_running: 0, runs_started: 2, workers: {HEALTHY: 2}, leader});
			const drawn = glanceCharts({server: "s1", samples: [sample(0, "s1", 1), sample(5, "s1", 2), sample(10, "s2", 4), sample(15, "s2", 3), sample(20, "s1", 0)]});
			const charts = [...drawn.querySelectorAll("svg.chart")];
			return charts.length === 3 && charts.every(c => c.dataset.leaderChanges === "2" && c.querySelectorAll(".leader-change").length === 2 &&
				c.getAttribute("aria-label").includes("the leader changed 2 times")) &&
				charts[0].dataset.last === "0" && charts[1].dataset.last === "0.4" && charts[2].dataset.last === "2,0,0,0";
		})()`, 5*time.Second)
		for i := 1; i <= 3; i++ {
			post(t, server, fmt.Sprintf("/api/v2/dag-runs/stuck-%d/cancel", i), nil)
		}
	})

	t.Run("phone and dark mode", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(375, 740)); err != nil {
			t.Fatal(err)
		}
		navigate(t, ctx, base+"/#/dags/five")
		waitJS(t, ctx, "the DAG page on a phone", `document.querySelectorAll("#dag-graph .node").length === 2 && document.querySelectorAll("#history thead th[data-run]").length === 5`, 30*time.Second)
		waitJS(t, ctx, "no page-wide sideways scroll", `document.documentElement.scrollWidth <= window.innerWidth`, 5*time.Second)
		screenshot(t, ctx, "dag-phone")
		// Each picture has a text alternative: every drawing an
		// aria-label naming its steps, every box and bar a title.
		waitJS(t, ctx, "text alternatives", `[...document.querySelectorAll("svg.graph")].every(s => s.getAttribute("aria-label").includes("build after") === false && s.getAttribute("aria-label").includes("check after build")) &&
			[...document.querySelectorAll("svg .node")].every(n => n.querySelector("title").textContent.length > 0) &&
			[...document.querySelectorAll("#history a.cell")].every(a => a.getAttribute("aria-label").includes(":"))`, 5*time.Second)
		navigate(t, ctx, base+"/#/runs/gated-1")
		waitJS(t, ctx, "the run page on a phone", `document.querySelectorAll("#timeline .bar").length === 3`, 30*time.Second)
		waitJS(t, ctx, "no page-wide sideways scroll", `document.documentElement.scrollWidth <= window.innerWidth`, 5*time.Second)
		screenshot(t, ctx, "run-graph-phone")
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), colorScheme("dark")); err != nil {
			t.Fatal(err)
		}
		navigate(t, ctx, base+"/#/dags/diamond")
		waitJS(t, ctx, "the dark page", `document.querySelectorAll("#dag-graph .node").length === 4 && getComputedStyle(document.documentElement).backgroundColor === "rgb(13, 17, 23)"`, 30*time.Second)
		screenshot(t, ctx, "dag-graph-dark")
		navigate(t, ctx, base+"/#/runs/gated-1")
		waitJS(t, ctx, "the dark run page", `document.querySelectorAll("#timeline .bar").length === 3`, 30*time.Second)
		screenshot(t, ctx, "run-graph-dark")
		navigate(t, ctx, base+"/#/cluster")
		waitJS(t, ctx, "the dark cluster page", `document.querySelectorAll("#glance svg.chart").length === 3`, 30*time.Second)
		screenshot(t, ctx, "cluster-glance-dark")
		if err := chromedp.Do(ctx, colorScheme("light")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a 200-step run page's render time, logged", func(t *testing.T) {
		post(t, server, "/api/v2/dag-runs", map[string]string{"dag_name": "big", "dag_run_id": "big-1"})
		// The graph comes from the run's definition: drawn whether the
		// run is queued, running or (200 quick steps) already done.
		// A real navigation (another query, not only another hash), so
		// performance.now() counts from the page's start.
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/?render-time#/runs/big-1"), chromedp.WaitReady("#main")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "200 nodes drawn", `document.querySelectorAll("#run-graph .node").length === 200`, 60*time.Second)
		ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`performance.now()`))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("200-step run page: its graph drawn %.0f ms after the navigation began (the page, its script, the API's answer and the drawing included; the test looks every 100 ms)", ms)
		// Not left running after the test (it may have ended already: 409).
		if code, err := server.PostJSON("/api/v2/dag-runs/big-1/cancel", nil, nil); err != nil || (code >= 300 && code != 409) {
			t.Fatalf("cancel big-1: HTTP %d %v", code, err)
		}
	})
}
