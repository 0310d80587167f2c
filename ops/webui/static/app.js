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
// text with raw: true). A 401 asks for a token; any other failure is shown
// to the person and thrown.
async function api(path, { raw, ...options } = {}) {
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
  const toggleLog = async (step) => {
    if (logs.has(step)) {
      logs.delete(step);
      draw();
      return;
    }
    logs.set(step, { loading: true });
    draw();
    try {
      logs.set(step, { text: await api(`${runPath}/steps/${encodeURIComponent(step)}/log`, { raw: true }) });
    } catch (e) {
      logs.delete(step);
    }
    draw();
  };

  const stepOutput = (s) => {
    const log = logs.get(s.name);
    return h("div", {},
      s.error ? h("div", { class: "status-failed" }, s.error) : "",
      (s.preconditions || []).length ? h("ul", { class: "preconditions", "aria-label": `preconditions of ${s.name}` },
        s.preconditions.map((c) => h("li", {}, c.met ? "met: " : "not met: ", h("code", {}, c.condition),
          c.expected ? ` expected ${c.negate ? "not " : ""}${JSON.stringify(c.expected)}, got ${JSON.stringify(c.actual)}` : ` (${c.negate ? "negated, " : ""}${c.actual})`))) : "",
      log && log.text !== undefined
        ? h("pre", { class: "log", "data-step": s.name, "aria-label": `full log of ${s.name}` }, log.text || "(empty)")
        : (s.output_tail ? h("pre", {}, s.output_tail) : ""),
      s.started_at ? h("button", { type: "button", class: "link", "data-key": "log " + s.name, "aria-expanded": String(Boolean(log)),
        onclick: () => toggleLog(s.name) }, log ? (log.loading ? "Loading the full log…" : "Show the tail only") : "Full log") : "");
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
    swap(body,
      h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      outputs.length ? [h("h2", {}, "Outputs"), h("dl", { class: "facts", id: "run-outputs" }, outputs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))] : "",
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
  };

  every(async () => {
    run = await api(runPath);
    draw();
    const children = run.children || [];
    return !FINAL.has(run.status) || children.some((c) => !FINAL.has(c.status));
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
  every(async () => {
    const d = await api("/api/v2/dags/" + encodeURIComponent(name));
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
      h("h2", {}, "Steps"),
      table(["Step", "Runs", "Depends on"], d.steps.map((s) => [s.name, s.run ? `child DAG ${s.run}` : (s.command || "script"), s.depends.join(", ") || "—"]), "no steps"),
      h("h2", {}, "Definition"), h("pre", { id: "dag-source" }, d.source),
      h("p", {}, h("a", { href: `#/runs?dag_name=${encodeURIComponent(name)}` }, "Runs of this DAG")));
    return false;
  });
}

// ---- Cluster -----------------------------------------------------------

function clusterPage(main) {
  const body = h("div", { id: "cluster" });
  main.replaceChildren(h("h1", {}, "Cluster"), body);
  every(async () => {
    const [peers, self, members] = await Promise.all([
      api("/api/v2/operator/raft/peers"), api("/api/v2/agent/self"), api("/api/v2/cluster/members")]);
    const gossip = {};
    for (const m of members.members) gossip[m.name] = m;
    const servers = peers.peers.map((p) => {
      const m = gossip[p.id];
      const alive = m ? m.status : "unknown";
      const healthy = p.state !== "unreachable" && alive === "alive";
      return [h("strong", {}, p.id), p.address,
        h("span", { class: `status ${p.leader ? "status-running" : ""}` }, p.leader ? "leader" : p.state),
        h("span", { class: healthy ? "health health-HEALTHY" : "health health-UNHEALTHY" }, healthy ? "✔ healthy" : `✖ ${p.state === "unreachable" ? "unreachable" : alive}`),
        p.voter ? "yes" : "no", String(p.last_index), String(p.term)];
    });
    swap(body,
      h("dl", { class: "facts" },
        h("dt", {}, "Leader"), h("dd", { id: "cluster-leader" }, self.leader || "none"),
        h("dt", {}, "This server"), h("dd", {}, `${self.node} (${self.role})`),
        h("dt", {}, "Term"), h("dd", {}, String(self.raft.term)),
        h("dt", {}, "Indexes"), h("dd", {}, `last ${self.raft.last_index}, commit ${self.raft.commit_index}, applied ${self.raft.applied_index}`)),
      h("h2", {}, "Servers"),
      table(["Server", "Raft address", "Role", "Health", "Voter", "Last index", "Term"], servers, "no servers"),
      h("h2", {}, "Gossip members"),
      table(["Name", "Address", "Role", "Status", "Since"], members.members.map((m) => [m.name, m.addr, (m.meta && m.meta.r) || "?", m.status, when(m.since)]), "none"));
  });
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
