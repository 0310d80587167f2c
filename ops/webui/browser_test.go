package webui_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/daguha/daguha/cluster"
	"github.com/daguha/daguha/cluster/clustertest"
	"github.com/daguha/daguha/ops/wire"
)

func TestMain(m *testing.M) {
	code := m.Run()
	clustertest.CleanupBinary()
	os.Exit(code)
}

// browser starts a headless Chromium for one test, or skips the test
// saying why. Chromium and its children are gone when the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("no Chromium on PATH: the web UI's browser tests need one; install chromium (as root: apt-get install chromium, or make deps)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, cancelCtx := chromedp.NewContext(allocCtx)
	// The first action starts the browser, which lives as long as the
	// context of that call: start it without a time limit, then bound
	// each test's actions.
	if err := chromedp.Do(browserCtx); err != nil {
		cancelCtx()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(browserCtx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}

// waitJS waits until the JavaScript expression is true in the page.
func waitJS(t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("waiting for %s: %v\npage text:\n%s", what, err, text)
	}
}

// textOf is a JS expression for the inner text of the first element the
// selector matches ("" when none).
func textOf(selector string) string {
	return fmt.Sprintf(`((document.querySelector(%q)||{}).innerText||"")`, selector)
}

// screenshot saves the page as name.png: into docs/screenshots when
// DAGUHA_UPDATE_SCREENSHOTS=1, else into the test's temporary directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := t.TempDir()
	if os.Getenv("DAGUHA_UPDATE_SCREENSHOTS") == "1" {
		dir = filepath.Join("..", "..", "docs", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if len(png) < 1000 {
		t.Fatalf("screenshot %s is only %d bytes", name, len(png))
	}
	t.Logf("screenshot %s (%d bytes)", path, len(png))
}

// waitRefreshes waits until the page has redrawn itself n more times
// (the header's "updated" time changes on every refresh).
func waitRefreshes(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		before, err := chromedp.Run(ctx, chromedp.Evaluate[string](textOf("#updated")))
		if err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "a refresh", fmt.Sprintf(`%s !== %q`, textOf("#updated"), before), 30*time.Second)
	}
}

// setSelect chooses a value in a <select> the way a person does: the
// value changes and the change event fires.
func setSelect(t *testing.T, ctx context.Context, selector, value string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(() => {
		const s = document.querySelector(%q);
		s.value = %q;
		s.dispatchEvent(new Event("change", { bubbles: true }));
		return true;
	})()`, selector, value))); err != nil {
		t.Fatal(err)
	}
}

func start(t *testing.T, p *clustertest.Process) {
	t.Helper()
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
}

func post(t *testing.T, a *clustertest.Agent, path string, body any) map[string]any {
	t.Helper()
	var out map[string]any
	code, err := a.PostJSON(path, body, &out)
	if err != nil || code >= 300 {
		t.Fatalf("POST %s: HTTP %d %v %v", path, code, err, out)
	}
	return out
}

const hierarchyYAML = `name: top
steps:
  - name: down
    run: middle
---
name: middle
steps:
  - name: down
    run: leaf
---
name: leaf
workerSelector:
  gpu: "true"
steps:
  - name: work
    command: sleep 300
`

// Acceptance 1: the Workers page lists a worker with its labels and
// Healthy; after the worker is paused the same page, without a reload,
// shows Warning then Unhealthy; a running child run appears under its
// root and parent.
func TestWorkersPageFollowsHealthAndHierarchy(t *testing.T) {
	ctx := browser(t)
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 1,
		ExtraArgs: []string{"-health-warning=2s", "-health-unhealthy=4s", "-health-offline=12s"}})
	server := c.WaitLeader(t, 30*time.Second)
	start(t, c.NewWorker("gpu-worker", "-labels=gpu=true,zone=eu"))
	sleepy := c.NewWorker("sleepy-worker", "-labels=pool=batch")
	sleepy.Env = nil // fingerprinted labels on: os, cpu-arch, ...
	start(t, sleepy)

	if err := chromedp.Do(ctx, chromedp.Navigate(server.HTTPAddr()+"/#/workers")); err != nil {
		t.Fatal(err)
	}
	card := func(id string) string { return fmt.Sprintf(`[data-worker=%q]`, id) }
	waitJS(t, ctx, "the gpu worker, its labels and Healthy",
		textOf(card("gpu-worker"))+`.includes("gpu=true") && `+textOf(card("gpu-worker"))+`.includes("zone=eu") && `+textOf(card("gpu-worker"))+`.includes("Healthy")`, 30*time.Second)
	waitJS(t, ctx, "the sleepy worker Healthy", textOf(card("sleepy-worker"))+`.includes("Healthy")`, 30*time.Second)
	// Fingerprinted labels are drawn as such, hand-typed ones plain.
	waitJS(t, ctx, "the sleepy worker's fingerprinted labels marked, its hand label plain", fmt.Sprintf(`(() => {
		const chips = [...document.querySelectorAll(%q + " .chip")];
		const auto = chips.filter(c => c.dataset.auto === "true").map(c => c.textContent);
		const hand = chips.filter(c => c.dataset.auto !== "true").map(c => c.textContent);
		return auto.some(t => t.startsWith("os=")) && auto.some(t => t.startsWith("cpu-arch=")) &&
			hand.length === 1 && hand[0] === "pool=batch" &&
			document.querySelectorAll(%q + " .chip[data-auto]").length === 0;
	})()`, card("sleepy-worker"), card("gpu-worker")), 30*time.Second)

	// A three-level hierarchy: the leaf runs on the gpu worker.
	post(t, server, "/api/v2/dag-runs", map[string]string{"yaml": hierarchyYAML, "file": "tree.yaml", "dag_run_id": "tree-1"})
	// Nested, not merely in order: the leaf's item is inside the parent's,
	// which is inside the root's, and the root is drawn once however many
	// of its runs the worker has.
	waitJS(t, ctx, "the leaf under its root and parent on the gpu worker", fmt.Sprintf(`(() => {
		const tree = document.querySelector(%q + " .tree");
		if (!tree) return false;
		const named = (name) => [...tree.querySelectorAll("li")].filter(li => li.querySelector(":scope > a").textContent === name);
		const [root, parent, leaf] = [named("top"), named("middle"), named("leaf")];
		return root.length === 1 && parent.length === 1 && leaf.length === 1 &&
			root[0].querySelector(":scope > a").getAttribute("href") === "#/runs/tree-1" &&
			leaf[0].parentElement.closest("li") === parent[0] &&
			parent[0].parentElement.closest("li") === root[0] &&
			leaf[0].innerText.includes("started");
	})()`, card("gpu-worker")), 60*time.Second)
	screenshot(t, ctx, "workers")

	// The keyboard focus stays on a run's link while the page refreshes
	// (every card is redrawn each time).
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(() => {
		const leaf = [...document.querySelectorAll(%q + " .tree a")].find(a => a.textContent === "leaf");
		leaf.focus();
		window.__leaf = leaf.getAttribute("href");
		return document.activeElement === leaf;
	})()`, card("gpu-worker")))); err != nil {
		t.Fatal(err)
	}
	waitRefreshes(t, ctx, 2)
	waitJS(t, ctx, "the focus still on the leaf's link", `document.activeElement.getAttribute("href") === window.__leaf && document.activeElement.textContent === "leaf"`, time.Second)

	// Paused: the same page, never reloaded, goes Warning then Unhealthy.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.__marker = "same page"`)); err != nil {
		t.Fatal(err)
	}
	sleepy.Pause()
	waitJS(t, ctx, "Warning for the paused worker", textOf(card("sleepy-worker"))+`.includes("Warning")`, 30*time.Second)
	waitJS(t, ctx, "Unhealthy for the paused worker", textOf(card("sleepy-worker"))+`.includes("Unhealthy")`, 30*time.Second)
	// The health filter keeps the workers in that state only.
	setSelect(t, ctx, "#health-filter", "UNHEALTHY")
	waitJS(t, ctx, "the health filter", `document.querySelectorAll("[data-worker]").length === 1 && document.querySelector(`+"`"+card("sleepy-worker")+"`"+`) !== null`, 10*time.Second)
	setSelect(t, ctx, "#health-filter", "")
	waitJS(t, ctx, "Offline past the offline threshold", textOf(card("sleepy-worker"))+`.includes("Offline")`, 30*time.Second)
	waitJS(t, ctx, "the page not reloaded", `window.__marker === "same page"`, time.Second)
	// Health is in words too, not only in colour.
	waitJS(t, ctx, "the gpu worker still Healthy", textOf(card("gpu-worker"))+`.includes("Healthy")`, 10*time.Second)

	// The label filter keeps the matching worker only.
	if err := chromedp.Do(ctx, chromedp.SendKeys("#label-filter", "gpu=true")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the label filter", `document.querySelectorAll("[data-worker]").length === 1 && `+textOf("#workers")+`.includes("gpu-worker")`, 10*time.Second)
	sleepy.Resume()
}

// Acceptance 2: enqueue from the DAGs page and watch the run reach
// succeeded on its page; cancel another run with the button.
func TestEnqueueFromTheDagsPageAndCancel(t *testing.T) {
	ctx := browser(t)
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 1})
	server := c.WaitLeader(t, 30*time.Second)
	start(t, c.NewWorker("ui-worker"))
	post(t, server, "/api/v2/dags", map[string]any{"files": []map[string]string{
		{"name": "hello.yaml", "content": "name: hello\nparams: WHO=world\nsteps:\n  - name: greet\n    command: echo hello $WHO\n    output: GREETING\n  - name: done\n    command: echo done\n"},
		{"name": "long.yaml", "content": "name: long\nsteps:\n  - name: wait\n    command: sleep 300\n"},
	}})

	if err := chromedp.Do(ctx, chromedp.Navigate(server.HTTPAddr()+"/#/dags")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the DAG list", textOf("#dags")+`.includes("hello") && `+textOf("#dags")+`.includes("long")`, 30*time.Second)
	if err := chromedp.Do(ctx,
		chromedp.Click(`a[href="#/dags/hello"]`),
		chromedp.WaitVisible("#enqueue-form"),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the DAG's definition", textOf("#dag-source")+`.includes("echo hello $WHO")`, 30*time.Second)
	if err := chromedp.Do(ctx,
		chromedp.SendKeys("#params", "WHO=browser"),
		chromedp.Click("#enqueue"),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the run's page", `location.hash.startsWith("#/runs/")`, 30*time.Second)
	waitJS(t, ctx, "the run succeeded", textOf("#run-status")+` === "succeeded"`, 60*time.Second)
	waitJS(t, ctx, "the steps' output", textOf("#run")+`.includes("hello browser") && `+textOf("#run")+`.includes("ui-worker")`, 10*time.Second)
	waitJS(t, ctx, "the run's outputs, drawn as elements", textOf("#run-outputs")+`.includes("GREETING") && `+textOf("#run-outputs")+`.includes("hello browser") && !`+textOf("#run")+`.includes("[object")`, 10*time.Second)
	// The whole log of a step, fetched from the worker through the API.
	if err := chromedp.Do(ctx, chromedp.Click(`button[data-key="log greet"]`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the full log of greet", textOf(`pre.log[data-step="greet"]`)+`.includes("hello browser")`, 30*time.Second)
	screenshot(t, ctx, "run")

	// Cancel a long run with the button.
	post(t, server, "/api/v2/dag-runs", map[string]string{"dag_name": "long", "dag_run_id": "long-1"})
	if err := chromedp.Do(ctx, chromedp.Navigate(server.HTTPAddr()+"/#/runs/long-1")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the long run running", textOf("#run-status")+` === "running"`, 60*time.Second)
	waitJS(t, ctx, "the cancel button enabled", `!document.querySelector("#cancel-run").disabled`, 10*time.Second)
	// With the keyboard: the button keeps the focus through refreshes and
	// Enter presses it.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#cancel-run").focus(), true`)); err != nil {
		t.Fatal(err)
	}
	waitRefreshes(t, ctx, 2)
	waitJS(t, ctx, "the focus still on the cancel button", `document.activeElement.id === "cancel-run"`, time.Second)
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the run cancelled", textOf("#run-status")+` === "cancelled"`, 60*time.Second)

	// The runs list, filtered by status and by DAG.
	if err := chromedp.Do(ctx, chromedp.Navigate(server.HTTPAddr()+"/#/runs?status=cancelled")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the cancelled runs only", textOf("#runs")+`.includes("long-1") && !`+textOf("#runs")+`.includes("hello")`, 30*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(server.HTTPAddr()+"/#/runs?dag_name=hello")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the runs of hello only", textOf("#runs")+`.includes("succeeded") && !`+textOf("#runs")+`.includes("long-1")`, 30*time.Second)
	// Pages of one run: the newest (long-1), then through "Older runs" the
	// hello run and no further page, and back to the newest.
	if err := chromedp.Do(ctx, chromedp.Navigate(server.HTTPAddr()+"/#/runs?limit=1")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the first page of one run", textOf("#runs")+`.includes("long-1") && !`+textOf("#runs")+`.includes("hello") && !!document.querySelector("#older-runs")`, 30*time.Second)
	if err := chromedp.Do(ctx, chromedp.Click("#older-runs")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the second page: the hello run, the last", textOf("#runs")+`.includes("hello") && !`+textOf("#runs")+`.includes("long-1") && !document.querySelector("#older-runs") && !!document.querySelector("#newest-runs")`, 30*time.Second)
	if err := chromedp.Do(ctx, chromedp.Click("#newest-runs")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "back on the newest page", textOf("#runs")+`.includes("long-1") && !document.querySelector("#newest-runs")`, 30*time.Second)

	// An API error is shown, not swallowed: a run that does not exist.
	if err := chromedp.Do(ctx, chromedp.Navigate(server.HTTPAddr()+"/#/runs/no-such-run")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the API's error shown", `!document.querySelector("#error").hidden && `+textOf("#error-text")+`.includes("no DAG run with id")`, 30*time.Second)

	if err := chromedp.Do(ctx, chromedp.Navigate(server.HTTPAddr()+"/#/cluster")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the cluster page", textOf("#cluster-leader")+` === "server1" && `+textOf("#cluster")+`.includes("healthy")`, 30*time.Second)
	// One version everywhere: each server's is shown, and no banner.
	var health wire.SharedHealth
	if code, err := server.GetJSON("/api/v2/health", &health); err != nil || code != 200 || health.Version == "" {
		t.Fatalf("health: HTTP %d %v %+v", code, err, health)
	}
	waitJS(t, ctx, "the server's version in the servers table", fmt.Sprintf(`%s.includes(%q + " (schema 1, protocol 1)")`, textOf("#cluster table"), health.Version), 30*time.Second)
	if shown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("#versions-banner") === null`)); err != nil || !shown {
		t.Fatalf("a mixed-versions banner while every part runs %s (%v)", health.Version, err)
	}
	screenshot(t, ctx, "cluster")
	// A worker of an older release joins the gossip pool: the banner
	// names it and its version, and goes when it leaves.
	old := clustertest.StartImpostor(t, clustertest.ImpostorOptions{Name: "old-worker",
		Meta: cluster.Meta{Role: cluster.RoleWorker, BuildVersion: "0.0.9", StateSchema: 0, WireProtocol: 1}})
	old.Join(t, []string{server.GossipAddr()}, 30*time.Second)
	waitJS(t, ctx, "the mixed-versions banner", textOf("#versions-banner")+`.includes("worker old-worker runs 0.0.9") && `+
		textOf("#versions-banner")+fmt.Sprintf(`.includes("server server1, worker ui-worker run %s")`, health.Version), 30*time.Second)
	screenshot(t, ctx, "cluster-mixed-versions")
	old.Leave()
	waitJS(t, ctx, "the banner gone once the old worker left", `document.querySelector("#versions-banner") === null && `+textOf("#cluster")+`.includes("old-worker")`, 30*time.Second)

	// On a phone-sized screen nothing overflows sideways but the tables,
	// which scroll in their own boxes.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(375, 740), chromedp.Navigate(server.HTTPAddr()+"/#/runs/long-1")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the run page on a phone", textOf("#run-status")+` === "cancelled"`, 30*time.Second)
	waitJS(t, ctx, "no page-wide sideways scroll", `document.documentElement.scrollWidth <= window.innerWidth`, 5*time.Second)
	// Nothing of a step is cut off at the right: the table's rows stack.
	waitJS(t, ctx, "the step's log button within the screen", `(() => {
		const b = document.querySelector('button[data-key="log wait"]');
		if (!b) return false;
		const r = b.getBoundingClientRect();
		return r.width > 0 && r.right <= window.innerWidth && r.left >= 0;
	})()`, 5*time.Second)
	screenshot(t, ctx, "run-phone")

	// With the keyboard: Tab from the top reaches the navigation's links
	// and Enter follows one.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(server.HTTPAddr()+"/#/workers")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the workers page", textOf("#workers")+`.includes("ui-worker")`, 30*time.Second)
	for i := 0; i < 8; i++ {
		if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
			t.Fatal(err)
		}
		on, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.getAttribute("href") || ""`))
		if err != nil {
			t.Fatal(err)
		}
		if on == "#/dags" {
			break
		}
	}
	waitJS(t, ctx, "a visible focus ring on the link reached with Tab", `document.activeElement.getAttribute("href") === "#/dags" && getComputedStyle(document.activeElement).outlineStyle === "solid"`, time.Second)
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the DAGs page reached with the keyboard", `location.hash === "#/dags" && `+textOf("#dags")+`.includes("hello")`, 10*time.Second)
}

// Acceptance 3: with a token configured, the UI shows no data until the
// token is given, then shows it.
func TestTokenIsAskedForOnceAndKept(t *testing.T) {
	ctx := browser(t)
	const token = "ui-test-token"
	c := clustertest.StartCluster(t, clustertest.ClusterOptions{Servers: 1, Token: token, ExtraArgs: []string{"-api-token=" + token, "-cluster-token=webui-cluster-token"}})
	server := c.WaitLeader(t, 30*time.Second)
	start(t, c.NewWorker("secret-worker"))
	clustertest.WaitFor(t, 30*time.Second, "the worker registered", func() (bool, string) {
		var body wire.Workers
		code, err := server.GetJSON("/api/v2/workers", &body)
		return err == nil && code == 200 && len(body.Workers) == 1, fmt.Sprintf("HTTP %d %v", code, err)
	})
	if err := chromedp.Do(ctx, chromedp.Navigate(server.HTTPAddr()+"/#/workers")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the token form", `!document.querySelector("#login").hidden`, 30*time.Second)
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(shown, "secret-worker") {
		t.Fatalf("data shown before the token was given:\n%s", shown)
	}
	// A wrong token is refused, said so, and asked for again.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys("#token", "not-the-token"),
		chromedp.Click("#login-form button"),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the refusal and the form again", `!document.querySelector("#login").hidden && `+textOf("#error-text")+`.includes("refused") && !document.body.innerText.includes("secret-worker")`, 30*time.Second)
	if err := chromedp.Do(ctx,
		chromedp.SendKeys("#token", token),
		chromedp.Click("#login-form button"),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the workers after the token", textOf("#workers")+`.includes("secret-worker")`, 30*time.Second)
	// Kept for the tab: another page needs no second prompt.
	if err := chromedp.Do(ctx, chromedp.Navigate(server.HTTPAddr()+"/#/cluster")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the cluster page without a second prompt", textOf("#cluster-leader")+` === "server1" && document.querySelector("#login").hidden`, 30*time.Second)
	// A reload of the tab keeps it too (sessionStorage).
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the cluster page after a reload without a prompt", textOf("#cluster-leader")+` === "server1" && document.querySelector("#login").hidden`, 30*time.Second)
}
