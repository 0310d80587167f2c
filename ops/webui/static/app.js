// daguha's web UI: plain JavaScript over the public /api/v2 endpoints.
// Every page is drawn from API answers; nothing here has data of its own.
"use strict";

const TOKEN_KEY = "daguha-token";
const POLL_MS = 1500;
const HEALTH = {
  HEALTHY: { icon: "🟢", text: "Healthy" },
  WARNING: { icon: "🟡", text: "Warning" },
  UNHEALTHY: { icon: "🔴", text: "Unhealthy" },
  OFFLINE: { icon: "⚫", text: "Offline" },
};
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const LOG_READ_BYTES = 1 << 20; // the most of a followed log read per refresh
const HISTORY_RUNS = 20; // columns of the DAG page's history grid

let timer = null;     // the current page's refresh
let generation = 0;   // bumps on every navigation, so stale answers are dropped
let pollError = false; // the error shown came from a refresh, not from an action

// h builds an element: h("a", {href: "#/x"}, "text", child...). Text is
// always set as text, never as HTML.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class AuthError extends Error {}

function showError(message) {
  pollError = false;
  document.getElementById("error-text").textContent = message;
  document.getElementById("error").hidden = false;
}

// swap replaces what a refreshing part of the page shows. The keyboard
// focus, when it was inside, moves to the element that stands for the
// same thing in the new content (same data-key, link target or id): a
// refresh every 1.5 s must not throw a keyboard user back to the top.
function swap(container, ...children) {
  const focused = document.activeElement;
  const key = focused && focused !== container && container.contains(focused) ? focusKey(focused) : "";
  container.replaceChildren(...children.flat(Infinity).filter((c) => c !== undefined && c !== null && c !== false && c !== ""));
  if (!key) return;
  for (const el of container.querySelectorAll("a, button, input, select, textarea, summary, [tabindex]")) {
    if (focusKey(el) === key) {
      el.focus({ preventScroll: true });
      return;
    }
  }
}

function focusKey(el) {
  const id = el.dataset.key || el.getAttribute("href") || el.id;
  return id ? el.tagName + " " + id : "";
}

function clearError() {
  document.getElementById("error").hidden = true;
  pollError = false;
}

// api calls the API with the tab's token and returns the decoded JSON (the
// text with raw: true, an ArrayBuffer with bytes: true). A 401 asks for a token; any other failure is shown
// to the person and thrown.
async function api(path, { raw, bytes, ...options } = {}) {
  const headers = { "Content-Type": "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  let resp;
  try {
    resp = await fetch(path, { ...options, headers });
  } catch (e) {
    showError(`Cannot reach the server: ${e.message}`);
    throw e;
  }
  if (resp.status === 401) {
    if (token) sessionStorage.removeItem(TOKEN_KEY);
    askToken(token ? "The token was refused; enter a valid one." : "");
    throw new AuthError("token required");
  }
  if (resp.ok && bytes) return resp.arrayBuffer();
  const text = await resp.text();
  if (resp.ok && raw) return text;
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
  if (!resp.ok) {
    const message = (body && body.error) || text || resp.statusText;
    showError(`${options.method || "GET"} ${path}: ${message} (HTTP ${resp.status})`);
    throw new Error(message);
  }
  return body;
}

function askToken(note) {
  const login = document.getElementById("login");
  document.getElementById("main").replaceChildren();
  login.hidden = false;
  if (note) showError(note);
  stopPolling();
  document.getElementById("token").focus();
}

function stopPolling() {
  if (timer) clearTimeout(timer);
  timer = null;
}

// every refreshes a page until the next navigation; draw returns false to stop.
function every(draw) {
  const gen = generation;
  const tick = async () => {
    if (gen !== generation) return;
    let again = true;
    try {
      again = (await draw()) !== false;
      document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
      // A refresh that works again clears the error a refresh showed.
      if (pollError) clearError();
    } catch (e) {
      if (e instanceof AuthError) return;
      pollError = true;
    }
    if (again && gen === generation) timer = setTimeout(tick, POLL_MS);
  };
  tick();
}

function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s ago`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function duration(from, to) {
  if (!from || !to) return "";
  const ms = Date.parse(to) - Date.parse(from);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function healthBadge(status) {
  const hs = HEALTH[status] || { icon: "❔", text: status };
  return h("span", { class: `health health-${status}` }, h("span", { "aria-hidden": "true" }, hs.icon + " "), hs.text);
}

function statusBadge(status) {
  return h("span", { class: `status status-${status}` }, status);
}

function runLink(id, label) {
  return h("a", { href: `#/runs/${encodeURIComponent(id)}` }, label || id);
}

// chips shows labels; those the worker fingerprinted (auto) are marked
// as such, the hand-given ones plain.
function chips(labels, auto) {
  const keys = Object.keys(labels || {}).sort();
  if (!keys.length) return h("div", { class: "chips muted" }, "no labels");
  const found = new Set(auto || []);
  return h("div", { class: "chips", "aria-label": "labels" }, keys.map((k) => found.has(k)
    ? h("span", { class: "chip chip-auto", "data-auto": "true", title: "fingerprinted by the worker" }, `${k}=${labels[k]}`)
    : h("span", { class: "chip", title: "given by hand" }, `${k}=${labels[k]}`)));
}

function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "table-wrap" },
    h("table", { class: "stack" }, h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => h("td", { "data-label": headers[i] }, c)))))));
}

// ---- Pictures ----------------------------------------------------------
// The graph, timeline and history are drawn here from API answers, with no
// library: a small layered layout and inline SVG.

const SVG_NS = "http://www.w3.org/2000/svg";
const NODE_W = 156, NODE_H = 44, GAP_X = 22, GAP_Y = 46, PAD = 12;
let svgCount = 0; // makes each drawing's marker id unique in the page

// s builds an SVG element as h builds an HTML one.
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function clip(text, max) {
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

// layout places steps in layers: a step's layer is the longest path of
// depends that leads to it, so every arrow points down. Within a layer
// the steps are ordered by the mean position of their neighbours in the
// layer above, then below (two barycenter sweeps), which undoes most
// crossings a definition's order makes. Returns nodes with x, y and the
// edges between them; depends on unknown steps are left out.
function layout(steps) {
  const byName = new Map(steps.map((st, i) => [st.name, { step: st, index: i, layer: -1, parents: [], children: [] }]));
  for (const n of byName.values()) {
    for (const d of n.step.depends || []) {
      const p = byName.get(d);
      if (p && p !== n && !n.parents.includes(p)) {
        n.parents.push(p);
        p.children.push(n);
      }
    }
  }
  // Longest path, iteratively (a chain of 1000 steps must not overflow
  // the stack); a cycle, which a valid DAG has not, is cut at the bound.
  const nodes = [...byName.values()];
  for (const n of nodes) n.layer = 0;
  for (let round = 0, changed = true; changed && round <= nodes.length; round++) {
    changed = false;
    for (const n of nodes) {
      for (const p of n.parents) {
        if (p.layer + 1 > n.layer) { n.layer = p.layer + 1; changed = true; }
      }
    }
  }
  const layers = [];
  for (const n of nodes) (layers[n.layer] = layers[n.layer] || []).push(n);
  for (let i = 0; i < layers.length; i++) layers[i] = layers[i] || [];
  const place = (layer) => layer.forEach((n, i) => { n.pos = i; });
  layers.forEach(place);
  const sweep = (layer, neighbours) => {
    const mean = (n) => {
      const ns = neighbours(n);
      return ns.length ? ns.reduce((a, m) => a + m.pos, 0) / ns.length : n.pos;
    };
    for (const n of layer) n.bary = mean(n);
    layer.sort((a, b) => a.bary - b.bary || a.index - b.index);
    place(layer);
  };
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 1; i < layers.length; i++) sweep(layers[i], (n) => n.parents);
    for (let i = layers.length - 2; i >= 0; i--) sweep(layers[i], (n) => n.children);
  }
  const widest = Math.max(1, ...layers.map((l) => l.length));
  const width = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X;
  layers.forEach((layer, li) => {
    const used = layer.length * NODE_W + Math.max(0, layer.length - 1) * GAP_X;
    const left = (width - used) / 2;
    layer.forEach((n, i) => {
      n.x = left + i * (NODE_W + GAP_X);
      n.y = PAD + li * (NODE_H + GAP_Y);
    });
  });
  const edges = [];
  for (const n of nodes) for (const p of n.parents) edges.push([p, n]);
  return { nodes, edges, width, height: PAD * 2 + layers.length * (NODE_H + GAP_Y) - GAP_Y };
}

// stepKind says in words what kind of step it is, for its box's second
// line: a child DAG, once or per item (parallel), or a command.
function stepKind(st) {
  if (st.parallel) return `⫴ parallel ${st.run || ""}`.trim();
  if (st.run) return `↪ child ${st.run}`;
  return clip((st.command || (st.script ? "script" : "")).split("\n")[0], 22);
}

// graph draws steps as an SVG of boxes and arrows. state(step) gives a
// step's status and, where it has one, the link of its child run.
function graph(steps, label, state) {
  const { nodes, edges, width, height } = layout(steps);
  const marker = `arrow-${++svgCount}`;
  const edgePath = ([from, to]) => {
    const x1 = from.x + NODE_W / 2, y1 = from.y + NODE_H, x2 = to.x + NODE_W / 2, y2 = to.y;
    const bend = (y2 - y1) / 2;
    return s("path", { class: "edge", "data-from": from.step.name, "data-to": to.step.name,
      d: `M${x1},${y1} C${x1},${y1 + bend} ${x2},${y2 - bend} ${x2},${y2 - 4}`, "marker-end": `url(#${marker})` });
  };
  const node = (n) => {
    const st = n.step;
    const { status, href, note } = state(st);
    const kind = st.parallel ? "parallel" : st.run ? "child" : "command";
    const box = [
      s("title", {}, `${st.name}: ${status}${st.run ? `, runs ${st.parallel ? "per item " : ""}the DAG ${st.run}` : ""}${note ? ", " + note : ""}`),
      st.parallel ? s("rect", { class: "stack", x: n.x + 4, y: n.y + 4, width: NODE_W, height: NODE_H, rx: 6 }) : "",
      s("rect", { class: "box", x: n.x, y: n.y, width: NODE_W, height: NODE_H, rx: 6 }),
      s("text", { x: n.x + 10, y: n.y + 18, class: "name" }, clip(st.name, 20)),
      s("text", { x: n.x + 10, y: n.y + 35, class: "kind" }, note ? clip(note, 22) : stepKind(st)),
    ];
    const attrs = { class: `node node-${kind}`, "data-step": st.name, "data-status": status, "data-kind": kind };
    return href ? s("a", { ...attrs, href, "data-key": "node " + st.name }, box) : s("g", attrs, box);
  };
  const wrap = h("div", { class: "graph-wrap" });
  wrap.append(s("svg", { class: "graph", role: "group", "aria-label": label, width, height, viewBox: `0 0 ${width} ${height}` },
    s("title", {}, label),
    s("defs", {}, s("marker", { id: marker, viewBox: "0 0 10 10", refX: 8, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))),
    s("g", { class: "edges" }, edges.map(edgePath)),
    s("g", { class: "nodes" }, nodes.map(node))));
  return wrap;
}

// graphLabel is the graph's text alternative: each step and what it
// waits for.
function graphLabel(what, steps, status) {
  return `${what}: ${steps.length} step${steps.length === 1 ? "" : "s"}. ` + steps.map((st) =>
    `${st.name}${status ? " " + status(st) : ""}${(st.depends || []).length ? " after " + st.depends.join(", ") : ""}`).join("; ");
}

// timeline draws a run's started steps as bars on one time axis, ordered
// by their start; the handlers' bars come apart, under a line.
function timeline(run) {
  const started = run.steps.filter((st) => st.started_at);
  if (!started.length) return h("p", { class: "muted", id: "timeline" }, "no step has started");
  const now = Date.now();
  const startOf = (st) => Date.parse(st.started_at);
  const endOf = (st) => (st.finished_at ? Date.parse(st.finished_at) : now);
  const byStart = (a, b) => startOf(a) - startOf(b) || a.name.localeCompare(b.name);
  const main = started.filter((st) => !st.handler).sort(byStart);
  const handlers = started.filter((st) => st.handler).sort(byStart);
  const t0 = Math.min(...started.map(startOf));
  const t1 = Math.max(t0 + 1000, ...started.map(endOf));
  const LABEL = 170, BAR_W = 560, ROW = 24;
  const width = LABEL + BAR_W + 90;
  const rows = [...main, ...(handlers.length ? [null] : []), ...handlers];
  const height = rows.length * ROW + 30;
  const xOf = (t) => LABEL + ((t - t0) / (t1 - t0)) * BAR_W;
  const bar = (st, i) => {
    const y = i * ROW + 4;
    if (!st) return s("g", {}, s("line", { class: "divider", x1: 0, x2: width, y1: y + ROW / 2, y2: y + ROW / 2 }),
      s("text", { x: 4, y: y + ROW / 2 - 3, class: "kind" }, "handlers"));
    const x = xOf(startOf(st)), w = Math.max(3, xOf(endOf(st)) - x);
    const extra = [st.retry > 1 ? `try ${st.retry}` : "", st.repeat > 1 ? `repeat ${st.repeat}` : ""].filter(Boolean).join(", ");
    const took = duration(st.started_at, st.finished_at) || "running";
    return s("g", { class: "bar", "data-step": st.name, "data-status": st.status },
      s("title", {}, `${st.name}${st.handler ? ` (${st.handler} handler)` : ""}: ${st.status}, ${when(st.started_at)} to ${st.finished_at ? when(st.finished_at) : "now"} (${took})${extra ? ", " + extra : ""}`),
      s("text", { x: 4, y: y + 15, class: "name" }, clip(st.handler ? `${st.name} (${st.handler})` : st.name, 22)),
      s("rect", { x, y: y + 2, width: w, height: ROW - 8, rx: 3, class: "box" }),
      s("text", { x: Math.min(x + w + 4, width - 86), y: y + 15, class: "kind" }, took + (extra ? " · " + extra : "")));
  };
  const axisY = rows.length * ROW + 10;
  const wrap = h("div", { class: "graph-wrap", id: "timeline" });
  wrap.append(s("svg", { class: "timeline", role: "group", width, height, viewBox: `0 0 ${width} ${height}`,
    "aria-label": `Timeline of ${started.length} started steps, in order of start: ` + rows.filter(Boolean).map((st) => `${st.name} ${st.status} ${duration(st.started_at, st.finished_at) || "running"}`).join("; ") },
  rows.map(bar),
  s("line", { class: "axis", x1: LABEL, x2: LABEL + BAR_W, y1: axisY, y2: axisY }),
  s("text", { x: LABEL, y: axisY + 14, class: "kind" }, new Date(t0).toLocaleTimeString()),
  s("text", { x: LABEL + BAR_W, y: axisY + 14, class: "kind", "text-anchor": "end" }, `+${((t1 - t0) / 1000).toFixed(1)} s`)));
  return wrap;
}

// history draws the last runs of a DAG as a grid: a column per run,
// oldest at the left, a row per step, each cell the step's status in
// that run and a link to the run.
function history(steps, runs) {
  if (!runs.length) return h("p", { class: "muted", id: "history" }, "no runs yet");
  const columns = [...runs].reverse();
  const names = steps.map((st) => st.name);
  for (const r of columns) for (const st of r.steps) if (!names.includes(st.name)) names.push(st.name);
  const cell = (r, name) => {
    const st = r.steps.find((x) => x.name === name);
    const status = st ? st.status : "none";
    return h("td", {}, h("a", { class: "cell", href: `#/runs/${encodeURIComponent(r.dag_run_id)}`, "data-run": r.dag_run_id, "data-step": name,
      "data-status": status, title: `${name} in ${r.dag_run_id}: ${status}`, "aria-label": `${name} in run ${r.dag_run_id}: ${status}` }));
  };
  return h("div", { class: "table-wrap", id: "history" },
    h("p", { class: "muted", id: "history-note" }, `The last ${runs.length} run${runs.length === 1 ? "" : "s"}, oldest at the left; the round cell is the run's status, each square a step's. Each cell opens its run.`),
    h("table", { class: "history", "aria-describedby": "history-note" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Step"), columns.map((r) => h("th", { scope: "col", "data-run": r.dag_run_id },
        h("a", { class: "cell run-cell", href: `#/runs/${encodeURIComponent(r.dag_run_id)}`, "data-status": r.status,
          title: `${r.dag_run_id}: ${r.status}, ${when(r.enqueued_at)}`, "aria-label": `run ${r.dag_run_id}: ${r.status}` }))))),
      h("tbody", {}, names.map((name) => h("tr", {}, h("th", { scope: "row" }, name), columns.map((r) => cell(r, name)))))));
}

// ---- Workers -----------------------------------------------------------

// taskTree draws a worker's running tasks as trees root → parent → child,
// one tree per root run, each run a link to its page. A root or parent
// that is not among this worker's tasks runs on another worker: it is
// drawn for the context, marked so.
function taskTree(tasks) {
  if (!tasks.length) return h("p", { class: "muted" }, "no running tasks");
  const nodes = new Map();
  const node = (id, name) => {
    if (!nodes.has(id)) nodes.set(id, { id, name, task: null, children: [], placed: false });
    const n = nodes.get(id);
    if (!n.name) n.name = name;
    return n;
  };
  const place = (child, parent) => {
    if (child.placed || child === parent) return;
    child.placed = true;
    parent.children.push(child);
  };
  for (const t of tasks) node(t.dag_run_id, t.dag_name).task = t;
  for (const t of tasks) {
    const rootID = t.root_dag_run_id && t.root_dag_run_id !== t.dag_run_id ? t.root_dag_run_id : "";
    if (!rootID) continue;
    const root = node(rootID, t.root_dag_run_name);
    const parentID = t.parent_dag_run_id || rootID;
    const parent = parentID === rootID ? root : node(parentID, t.parent_dag_run_name);
    place(nodes.get(t.dag_run_id), parent);
    // A parent running here is placed by its own task; one running
    // elsewhere hangs from the root (levels between them are not known).
    if (parent !== root && !parent.task) place(parent, root);
  }
  const draw = (n) => h("li", { "data-run": n.id }, runLink(n.id, n.name || n.id), " ",
    h("span", { class: "muted" }, n.task ? `started ${ago(n.task.started_at)}` : "(on another worker)"),
    n.children.length ? h("ul", {}, n.children.map(draw)) : "");
  return h("ul", { class: "tree", "aria-label": "running tasks" }, [...nodes.values()].filter((n) => !n.placed).map(draw));
}

function workersPage(main) {
  const state = { label: "", health: "" };
  const list = h("div", { class: "cards", id: "workers" });
  const labelInput = h("input", { id: "label-filter", placeholder: "gpu=true", oninput: (e) => { state.label = e.target.value.trim(); draw(); } });
  const healthSelect = h("select", { id: "health-filter", onchange: (e) => { state.health = e.target.value; draw(); } },
    h("option", { value: "" }, "any"), Object.entries(HEALTH).map(([k, v]) => h("option", { value: k }, v.text)));
  main.replaceChildren(h("h1", {}, "Workers"),
    h("div", { class: "filters" },
      h("label", { for: "label-filter" }, "Label", labelInput),
      h("label", { for: "health-filter" }, "Health", healthSelect)),
    list);
  let workers = [];
  const matches = (w) => {
    if (state.health && w.health_status !== state.health) return false;
    if (!state.label) return true;
    const [k, v] = state.label.split("=");
    return Object.entries(w.labels || {}).some(([lk, lv]) => (v === undefined ? (lk + "=" + lv).includes(k) : lk === k && lv === v));
  };
  const draw = () => {
    const shown = workers.filter(matches);
    if (!shown.length) {
      swap(list, h("p", { class: "muted" }, workers.length ? "no worker matches the filters" : "no worker has registered"));
      return;
    }
    swap(list, ...shown.map((w) => h("article", { class: "card worker", "data-worker": w.id },
      h("h2", {}, w.id),
      h("div", { class: "row" }, healthBadge(w.health_status), h("span", { class: "muted" }, `last heartbeat ${ago(w.last_heartbeat)}`)),
      chips(w.labels, w.auto_labels),
      h("div", { class: "muted executors" }, `executors: ${(w.executors || []).length ? w.executors.join(", ") : "commands only"}`),
      h("h3", { class: "muted", style: "font-size:.9em;margin:8px 0 2px" }, `Running tasks (${w.running_tasks.length})`),
      taskTree(w.running_tasks))));
  };
  every(async () => {
    workers = (await api("/api/v2/workers")).workers;
    draw();
  });
}

// ---- Runs --------------------------------------------------------------

function runsPage(main, query) {
  const params = new URLSearchParams(query);
  const field = (id, label, name, placeholder) => h("label", { for: id }, label,
    h("input", { id, name, value: params.get(name) || "", placeholder }));
  const form = h("form", { class: "filters", id: "run-filters", onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const name of ["dag_name", "status", "worker_id"]) {
      const v = form.elements[name].value.trim();
      if (v) q.set(name, v);
    }
    location.hash = "#/runs" + (q.toString() ? "?" + q : "");
  } },
  field("f-dag", "DAG", "dag_name", "any"),
  h("label", { for: "f-status" }, "Status", h("select", { id: "f-status", name: "status" },
    ["", "queued", "running", "succeeded", "failed", "cancelled"].map((s) => h("option", { value: s, selected: params.get("status") === s }, s || "any")))),
  field("f-worker", "Worker", "worker_id", "any"),
  h("button", { type: "submit" }, "Filter"));
  const list = h("div", { id: "runs" });
  main.replaceChildren(h("h1", {}, "Runs"), form, list);
  const q = new URLSearchParams();
  for (const name of ["dag_name", "status", "worker_id"]) if (params.get(name)) q.set(name, params.get(name));
  // A page of runs, newest first; ?after= (the API's cursor) pages on,
  // ?limit= sets the page's size (1 to 200).
  const limit = Math.min(Math.max(parseInt(params.get("limit"), 10) || 200, 1), 200);
  q.set("limit", String(limit));
  const after = params.get("after");
  if (after) q.set("after", after);
  const pageLink = (id, text, cursor) => {
    const p = new URLSearchParams(q);
    if (limit === 200) p.delete("limit");
    if (cursor) p.set("after", cursor); else p.delete("after");
    return h("a", { id, href: "#/runs" + (p.toString() ? "?" + p : "") }, text);
  };
  every(async () => {
    const body = await api("/api/v2/dag-runs?" + q);
    const nav = h("p", { class: "row muted" },
      after ? pageLink("newest-runs", "← Newest runs", "") : "",
      body.truncated ? pageLink("older-runs", `Older runs →`, body.next) : "",
      body.truncated || after ? ` ${body.runs.length} run${body.runs.length === 1 ? "" : "s"} on this page` : "");
    swap(list, table(["Run", "DAG", "Status", "Worker", "Enqueued", "Took"], body.runs.map((r) => [
      runLink(r.dag_run_id), r.dag_name, statusBadge(r.status), r.worker_id, when(r.enqueued_at), duration(r.started_at, r.finished_at)]),
    after ? "no older runs" : "no runs"), after || body.truncated ? nav : "");
  });
}

function runPage(main, id) {
  const runPath = "/api/v2/dag-runs/" + encodeURIComponent(id);
  // The button lives outside the refreshed part: a refresh does not take
  // it from under the pointer or the keyboard focus.
  const cancel = h("button", { type: "button", class: "danger", id: "cancel-run", disabled: true,
    onclick: async () => {
      cancel.disabled = true;
      try {
        await api(runPath + "/cancel", { method: "POST" });
        clearError();
        cancel.textContent = "Cancelling…";
      } catch (e) {
        cancel.disabled = false;
      }
    } }, "Cancel run");
  const body = h("div", { id: "run" });
  main.replaceChildren(h("h1", {}, "Run ", id), h("div", { class: "row" }, cancel), body);
  const logs = new Map(); // step name -> { text } or { loading: true }, for the full logs asked for
  let run = null;

  // A step's whole log is on the worker that ran it; the run keeps the tail.
  const logPath = (step) => `${runPath}/steps/${encodeURIComponent(step)}/log`;
  const toggleLog = async (step) => {
    if (logs.has(step)) {
      logs.delete(step);
      draw();
      return;
    }
    logs.set(step, { loading: true });
    draw();
    try {
      // Bytes, not text: a followed log asks for what comes after the
      // bytes it has, and a character may be cut between two reads.
      const data = await api(logPath(step), { bytes: true });
      const decoder = new TextDecoder();
      logs.set(step, { text: decoder.decode(data, { stream: true }), size: data.byteLength, decoder });
    } catch (e) {
      logs.delete(step);
    }
    draw();
  };
  // A shown log of a step still running is read again on every refresh
  // (once more after the step ends, for its last lines): it follows
  // what the step writes.
  const followLogs = async () => {
    const running = new Set(run.steps.filter((st) => st.status === "running").map((st) => st.name));
    let changed = false;
    for (const [step, log] of logs) {
      if (log.text === undefined || !(running.has(step) || log.following)) continue;
      log.following = running.has(step);
      try {
        // Only what was written since (at most 1 MiB a refresh).
        const data = await api(`${logPath(step)}?offset=${log.size}&limit=${LOG_READ_BYTES}`, { bytes: true });
        if (logs.get(step) === log && data.byteLength) {
          log.text += log.decoder.decode(data, { stream: true });
          log.size += data.byteLength;
          log.grew = true;
          changed = true;
          if (data.byteLength === LOG_READ_BYTES) log.following = true; // more to read
        }
      } catch (e) {
        if (e instanceof AuthError) throw e;
      }
    }
    if (changed) draw();
  };
  // The download is the whole log as the API gives it; a plain link
  // would not carry the tab's token.
  const downloadLog = async (step) => {
    const text = await api(logPath(step), { raw: true });
    const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    const a = h("a", { href: url, download: `${id}-${step}.log` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  };

  const stepOutput = (s) => {
    const log = logs.get(s.name);
    return h("div", {},
      s.error ? h("div", { class: "status-failed" }, s.error) : "",
      (s.preconditions || []).length ? h("ul", { class: "preconditions", "aria-label": `preconditions of ${s.name}` },
        s.preconditions.map((c) => h("li", {}, c.met ? "met: " : "not met: ", h("code", {}, c.condition),
          c.expected ? ` expected ${c.negate ? "not " : ""}${JSON.stringify(c.expected)}, got ${JSON.stringify(c.actual)}` : ` (${c.negate ? "negated, " : ""}${c.actual})`))) : "",
      log && log.text !== undefined
        ? h("pre", { class: "log", "data-step": s.name, "aria-label": `full log of ${s.name}`, "aria-live": s.status === "running" ? "polite" : null }, log.text || "(empty)")
        : (s.output_tail ? h("pre", {}, s.output_tail) : ""),
      s.started_at ? h("button", { type: "button", class: "link", "data-key": "log " + s.name, "aria-expanded": String(Boolean(log)),
        onclick: () => toggleLog(s.name) }, log ? (log.loading ? "Loading the full log…" : "Show the tail only") : (s.status === "running" ? "Follow the full log" : "Full log")) : "",
      s.started_at ? [" ", h("button", { type: "button", class: "link", "data-key": "download " + s.name, onclick: () => downloadLog(s.name).catch(() => {}) }, "Download the log")] : "");
  };

  const draw = () => {
    if (!run) return;
    const going = !FINAL.has(run.status);
    cancel.disabled = !going || run.cancel_requested;
    cancel.textContent = run.cancel_requested && going ? "Cancelling…" : "Cancel run";
    const facts = [
      ["Status", h("span", { id: "run-status" }, statusBadge(run.status))],
      ["DAG", h("a", { href: `#/dags/${encodeURIComponent(run.dag_name)}` }, run.dag_name)],
      ["Params", run.params || "—"],
      ["Worker", run.worker_id ? `${run.worker_id} (attempt ${run.attempt})` : "—"],
      ["Waiting", run.reason],
      ["Root", run.root_dag_run_id && run.root_dag_run_id !== run.dag_run_id ? runLink(run.root_dag_run_id, `${run.root_dag_run_name} ${run.root_dag_run_id}`) : null],
      ["Parent", run.parent_dag_run_id ? h("span", {}, runLink(run.parent_dag_run_id, `${run.parent_dag_run_name} ${run.parent_dag_run_id}`), ` (step ${run.parent_step_name || "?"})`) : null],
      ["Scheduled", run.scheduled_slot ? when(run.scheduled_slot) : null],
      ["Enqueued", when(run.enqueued_at)],
      ["Started", when(run.started_at)],
      ["Finished", when(run.finished_at)],
      ["Error", run.error],
    ].filter(([, v]) => v);
    const outputs = Object.entries(run.outputs || {}).sort(([a], [b]) => a.localeCompare(b));
    // Where a log was at its end, it stays at its end as it grows.
    const atEnd = new Set([...body.querySelectorAll("pre.log")].filter((pre) => pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4).map((pre) => pre.dataset.step));
    const stepOf = new Map(run.steps.map((st) => [st.name, st]));
    const defined = (run.graph || []).length ? run.graph : run.steps.filter((st) => !st.handler).map((st) => ({ name: st.name, depends: [] }));
    const handlers = run.steps.filter((st) => st.handler && !defined.some((d) => d.name === st.name)).map((st) => ({ name: st.name, depends: [] }));
    const stateOf = (d) => {
      const st = stepOf.get(d.name);
      if (!st) return { status: "not-started" };
      const kids = st.parallel_children || [];
      const href = st.child_dag_run_id ? `#/runs/${encodeURIComponent(st.child_dag_run_id)}`
        : kids.length ? `#/runs/${encodeURIComponent(kids[0].dag_run_id)}` : null;
      const note = kids.length ? `${kids.length} children, ${kids.filter((c) => c.status === "succeeded").length} ok`
        : st.handler ? `${st.handler} handler` : "";
      return { status: st.status, href, note };
    };
    const statusWord = (d) => stateOf(d).status;
    swap(body,
      h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      outputs.length ? [h("h2", {}, "Outputs"), h("dl", { class: "facts", id: "run-outputs" }, outputs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))] : "",
      h("h2", {}, "Graph"),
      h("div", { id: "run-graph" }, graph(defined, graphLabel(`Steps of run ${id}`, defined, statusWord), stateOf)),
      handlers.length ? [h("h3", { class: "muted" }, "Handlers"), h("div", { id: "run-handlers" }, graph(handlers, graphLabel("Handlers", handlers, statusWord), stateOf))] : "",
      h("h2", {}, "Timeline"),
      timeline(run),
      h("h2", {}, "Steps"),
      table(["Step", "Status", "Exit", "Started", "Took", "Output"], run.steps.map((s) => [
        h("span", {}, s.name, s.handler ? ` (${s.handler} handler)` : "", s.child_dag_run_id ? [" → ", runLink(s.child_dag_run_id, "child run")] : "",
          s.parallel_children ? ` → ${s.parallel_children.length} child runs (${s.parallel_children.filter((c) => c.status === "succeeded").length} succeeded)` : ""),
        h("span", {}, statusBadge(s.status), s.repeat > 1 ? ` (repeat ${s.repeat})` : "", s.retry > 1 ? ` (try ${s.retry})` : ""),
        s.status === "running" || !s.started_at ? "" : String(s.exit_code),
        when(s.started_at), duration(s.started_at, s.finished_at),
        stepOutput(s),
      ]), "no step has started"),
      h("h2", {}, "Children"),
      table(["Run", "DAG", "Step", "Status", "Worker"], (run.children || []).map((c) => [
        runLink(c.dag_run_id), c.dag_name, c.step_name, statusBadge(c.status), c.worker_id]), "no child runs"),
      h("h2", {}, "Attempts"),
      table(["Attempt", "Worker", "Fencing token", "Started", "Ended", "Outcome"], run.attempts.map((a) => [
        String(a.attempt), a.worker_id, String(a.fencing_token), when(a.started_at), when(a.ended_at), a.outcome || "running"]), "not started yet"));
    for (const pre of body.querySelectorAll("pre.log")) {
      const log = logs.get(pre.dataset.step);
      if (atEnd.has(pre.dataset.step) || (log && log.grew)) pre.scrollTop = pre.scrollHeight;
      if (log) log.grew = false;
    }
  };

  every(async () => {
    run = await api(runPath);
    draw();
    await followLogs();
    const children = run.children || [];
    return !FINAL.has(run.status) || children.some((c) => !FINAL.has(c.status)) || [...logs.values()].some((l) => l.following);
  });
}

// ---- DAGs --------------------------------------------------------------

function dagsPage(main) {
  const list = h("div", { id: "dags" });
  main.replaceChildren(h("h1", {}, "DAGs"), list);
  every(async () => {
    const body = await api("/api/v2/dags");
    swap(list, table(["DAG", "Steps", "Schedule", "Worker selector", "Updated"], body.dags.map((d) => [
      h("a", { href: `#/dags/${encodeURIComponent(d.name)}` }, d.name), String(d.steps.length),
      d.schedule.join("; ") || "—", Object.entries(d.worker_selector).map(([k, v]) => `${k}=${v}`).join(", ") || "any worker",
      when(d.updated_at)]), "no DAG is stored: push one with daguha dag push, or start a server with --dags"));
    return false;
  });
}

function dagPage(main, name) {
  const params = h("input", { id: "params", name: "params", placeholder: "2026-01-01 REGION=eu" });
  const runID = h("input", { id: "run-id", name: "run_id", placeholder: "made up by the server" });
  const submit = h("button", { type: "submit", id: "enqueue" }, "Enqueue a run");
  const form = h("form", { class: "filters", id: "enqueue-form", onsubmit: async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      const body = await api("/api/v2/dag-runs", { method: "POST", body: JSON.stringify({ dag_name: name, params: params.value, dag_run_id: runID.value.trim() }) });
      clearError();
      location.hash = "#/runs/" + encodeURIComponent(body.dag_run_id);
    } catch (err) {
      submit.disabled = false;
    }
  } }, h("label", { for: "params" }, "Params", params), h("label", { for: "run-id" }, "Run id (optional)", runID), submit);
  const details = h("div", { id: "dag" });
  main.replaceChildren(h("h1", {}, "DAG ", name), form, details);
  let d = null;
  const runs = h("div", { id: "dag-history" });
  every(async () => {
    // The definition is drawn once; the history follows new runs.
    const [dag, recent] = await Promise.all([d ? d : api("/api/v2/dags/" + encodeURIComponent(name)),
      api(`/api/v2/dag-runs?dag_name=${encodeURIComponent(name)}&limit=${HISTORY_RUNS}`)]);
    swap(runs, history(dag.steps, recent.runs));
    if (d) return true;
    d = dag;
    if (!params.value && d.params) params.placeholder = d.params;
    swap(details,
      h("dl", { class: "facts" },
        h("dt", {}, "Description"), h("dd", {}, d.description || "—"),
        h("dt", {}, "Schedule"), h("dd", {}, d.schedule.join("; ") || "—"),
        h("dt", {}, "Last scheduled"), h("dd", {}, d.last_scheduled_run_id ? runLink(d.last_scheduled_run_id, when(d.last_scheduled_slot)) : "—"),
        h("dt", {}, "Worker selector"), h("dd", {}, chips(d.worker_selector)),
        h("dt", {}, "Default params"), h("dd", {}, d.params || "—"),
        h("dt", {}, "Local DAGs"), h("dd", {}, d.local_dags.join(", ") || "—"),
        h("dt", {}, "File"), h("dd", {}, d.file || "—")),
      h("h2", {}, "Graph"),
      h("div", { id: "dag-graph" }, graph(d.steps, graphLabel(`Graph of the DAG ${name}`, d.steps), () => ({ status: "defined" }))),
      h("h2", {}, "History"),
      runs,
      h("h2", {}, "Steps"),
      table(["Step", "Runs", "Depends on"], d.steps.map((s) => [s.name, s.run ? `child DAG ${s.run}` : (s.command || "script"), s.depends.join(", ") || "—"]), "no steps"),
      h("h2", {}, "Definition"), h("pre", { id: "dag-source" }, d.source),
      h("p", {}, h("a", { href: `#/runs?dag_name=${encodeURIComponent(name)}` }, "Runs of this DAG")));
    return true;
  });
}

// ---- Cluster at a glance ------------------------------------------------

const CHART_W = 320, CHART_H = 96, CHART_PAD = 22;
const HEALTH_LINES = [["HEALTHY", "healthy"], ["WARNING", "warning"], ["UNHEALTHY", "unhealthy"], ["OFFLINE", "offline"]];

// chart draws one small line chart of samples: series are
// [{name, cls, values}], marks the indexes where the leader changed.
function chart(key, title, unit, series, samples, marks) {
  const n = samples.length;
  const top = Math.max(1, ...series.flatMap((sr) => sr.values));
  const xOf = (i) => CHART_PAD + (n <= 1 ? 0 : (i / (n - 1)) * (CHART_W - 2 * CHART_PAD));
  const yOf = (v) => CHART_H - 16 - (v / top) * (CHART_H - 34);
  const fmt = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
  const minutes = n > 1 ? Math.max(1, Math.round((Date.parse(samples[n - 1].at) - Date.parse(samples[0].at)) / 60000)) : 0;
  const now = series.map((sr) => `${sr.name} ${fmt(sr.values[n - 1] || 0)}`).join(", ");
  const label = `${title} over the last ${minutes ? minutes + " min" : "moments"}: now ${now}${unit}; highest ${fmt(top)}` +
    (marks.length ? `; the leader changed ${marks.length} time${marks.length === 1 ? "" : "s"} (${marks.map((i) => `to ${samples[i].leader || "none"} at ${new Date(samples[i].at).toLocaleTimeString()}`).join(", ")})` : "");
  const svg = s("svg", { class: "chart", role: "img", "aria-label": label, width: CHART_W, height: CHART_H, viewBox: `0 0 ${CHART_W} ${CHART_H}`,
    "data-chart": key, "data-last": series.map((sr) => fmt(sr.values[n - 1] || 0)).join(","), "data-leader-changes": marks.length },
  s("title", {}, label),
  s("text", { x: 4, y: 12, class: "name" }, title),
  // The corner shows the latest values that are not zero: the full list is in the label.
  s("text", { x: CHART_W - 4, y: 12, class: "kind", "text-anchor": "end" },
    series.length === 1 ? fmt(series[0].values[n - 1] || 0) + unit : series.filter((sr) => sr.values[n - 1]).map((sr) => `${sr.name} ${fmt(sr.values[n - 1])}`).join(", ") || "none"),
  s("line", { class: "axis", x1: CHART_PAD, x2: CHART_W - CHART_PAD, y1: yOf(0), y2: yOf(0) }),
  s("text", { x: CHART_PAD - 4, y: yOf(top) + 4, class: "kind", "text-anchor": "end" }, fmt(top)),
  s("text", { x: CHART_PAD - 4, y: yOf(0) + 4, class: "kind", "text-anchor": "end" }, "0"),
  s("text", { x: CHART_PAD, y: CHART_H - 2, class: "kind" }, minutes ? `−${minutes} min` : ""),
  s("text", { x: CHART_W - CHART_PAD, y: CHART_H - 2, class: "kind", "text-anchor": "end" }, "now"),
  marks.map((i) => s("g", { class: "leader-change" },
    s("title", {}, `leader: ${samples[i].leader || "none"} from ${new Date(samples[i].at).toLocaleTimeString()}`),
    s("line", { x1: xOf(i), x2: xOf(i), y1: 16, y2: yOf(0) }),
    s("text", { x: xOf(i) + 2, y: 24, class: "kind" }, "★"))),
  series.map((sr) => s("polyline", { class: `line line-${sr.cls}`, "data-series": sr.name,
    points: sr.values.map((v, i) => `${xOf(i).toFixed(1)},${yOf(v).toFixed(1)}`).join(" ") })));
  return svg;
}

// glanceCharts draws the cluster's last minutes from GET
// /api/v2/cluster/glance: queue depth, runs started per second and
// workers by health, with the leader's changes marked on each.
function glanceCharts(glance) {
  const samples = glance.samples || [];
  if (samples.length < 2) return h("p", { class: "muted", id: "glance" }, "The charts start after a few samples.");
  const marks = [];
  for (let i = 1; i < samples.length; i++) if (samples[i].leader !== samples[i - 1].leader) marks.push(i);
  const perSecond = samples.map((x, i) => {
    if (i === 0) return 0;
    const seconds = (Date.parse(x.at) - Date.parse(samples[i - 1].at)) / 1000;
    return seconds > 0 ? x.runs_started / seconds : 0;
  });
  return h("div", { class: "charts", id: "glance", "data-server": glance.server },
    chart("queue", "Queued runs", "", [{ name: "queued", cls: "queue", values: samples.map((x) => x.queue_depth) }], samples, marks),
    chart("started", "Runs started per second", "/s", [{ name: "started", cls: "started", values: perSecond }], samples, marks),
    chart("workers", "Workers by health", "", HEALTH_LINES.map(([k, cls]) => ({ name: cls, cls, values: samples.map((x) => (x.workers || {})[k] || 0) })), samples, marks));
}

// ---- Cluster -----------------------------------------------------------

function clusterPage(main) {
  const body = h("div", { id: "cluster" });
  main.replaceChildren(h("h1", {}, "Cluster"), body);
  every(async () => {
    const [peers, self, members, glance] = await Promise.all([
      api("/api/v2/operator/raft/peers"), api("/api/v2/agent/self"), api("/api/v2/cluster/members"), api("/api/v2/cluster/glance")]);
    const gossip = {};
    for (const m of members.members) gossip[m.name] = m;
    const mixed = mixedVersions(peers.peers, members.members);
    const servers = peers.peers.map((p) => {
      const m = gossip[p.id];
      const alive = m ? m.status : "unknown";
      const healthy = p.state !== "unreachable" && alive === "alive";
      return [h("strong", {}, p.id), p.address,
        h("span", { class: `status ${p.leader ? "status-running" : ""}` }, p.leader ? "leader" : p.state),
        h("span", { class: healthy ? "health health-HEALTHY" : "health health-UNHEALTHY" }, healthy ? "✔ healthy" : `✖ ${p.state === "unreachable" ? "unreachable" : alive}`),
        p.voter ? "yes" : "no", String(p.last_index), String(p.term),
        h("span", { class: "version" }, p.version ? `${p.version} (schema ${p.state_schema}, protocol ${p.wire_protocol})` : "?")];
    });
    swap(body,
      mixed ? h("div", { class: "banner banner-warning", id: "versions-banner", role: "status" },
        h("strong", {}, "Mixed versions: "), mixed,
        ". An upgrade is under way: finish it. Until every server reads a command's state schema the leader refuses that command (retry and dequeue need schema 1).") : null,
      h("dl", { class: "facts" },
        h("dt", {}, "Leader"), h("dd", { id: "cluster-leader" }, self.leader || "none"),
        h("dt", {}, "This server"), h("dd", {}, `${self.node} (${self.role})`),
        h("dt", {}, "Term"), h("dd", {}, String(self.raft.term)),
        h("dt", {}, "Indexes"), h("dd", {}, `last ${self.raft.last_index}, commit ${self.raft.commit_index}, applied ${self.raft.applied_index}`)),
      h("h2", {}, "At a glance"),
      glanceCharts(glance),
      h("p", { class: "muted" }, `Sampled by ${glance.server || "the leader"} every few seconds and kept in its memory; ★ marks a change of leader (a new leader's charts start from its own samples).`),
      h("h2", {}, "Servers"),
      table(["Server", "Raft address", "Role", "Health", "Voter", "Last index", "Term", "Version"], servers, "no servers"),
      h("h2", {}, "Gossip members"),
      table(["Name", "Address", "Role", "Status", "Version", "Since"], members.members.map((m) => [m.name, m.addr, (m.meta && m.meta.r) || "?", m.status, memberVersion(m), when(m.since)]), "none"));
  });
}

// memberVersion is the daguha version a gossip member advertises (meta
// key bv); members built before 0.1.0 advertise none.
function memberVersion(m) {
  return (m.meta && m.meta.bv) || "before 0.1.0";
}

// mixedVersions says which versions the servers (from the peers, as the
// leader's gossip knows them) and the alive workers (from gossip) run,
// when they are not all the same, else "". A server whose version is
// unknown (gossip does not know it) does not count.
function mixedVersions(peers, members) {
  const byVersion = new Map();
  const add = (version, who) => {
    if (!version || version === "unknown") return;
    if (!byVersion.has(version)) byVersion.set(version, []);
    byVersion.get(version).push(who);
  };
  for (const p of peers) add(p.version, `server ${p.id}`);
  for (const m of members) {
    if (m.status === "alive" && m.meta && m.meta.r === "worker") add(memberVersion(m), `worker ${m.name}`);
  }
  if (byVersion.size < 2) return "";
  return [...byVersion.entries()].sort().map(([v, who]) => `${who.join(", ")} ${who.length > 1 ? "run" : "runs"} ${v}`).join("; ");
}

// ---- Routing -----------------------------------------------------------

function route() {
  stopPolling();
  generation++;
  clearError();
  const main = document.getElementById("main");
  if (document.getElementById("login").hidden === false && !sessionStorage.getItem(TOKEN_KEY)) return;
  const hash = location.hash.replace(/^#\/?/, "") || "workers";
  const [path, query] = hash.split("?");
  const parts = path.split("/").map(decodeURIComponent);
  for (const a of document.querySelectorAll("header nav a")) {
    if (a.dataset.page === parts[0]) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  switch (parts[0]) {
    case "runs": return parts[1] ? runPage(main, parts[1]) : runsPage(main, query || "");
    case "dags": return parts[1] ? dagPage(main, parts[1]) : dagsPage(main);
    case "cluster": return clusterPage(main);
    default: return workersPage(main);
  }
}

document.getElementById("error-close").addEventListener("click", clearError);
document.getElementById("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const value = document.getElementById("token").value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  document.getElementById("token").value = "";
  document.getElementById("login").hidden = true;
  route();
});
window.addEventListener("hashchange", route);
route();
