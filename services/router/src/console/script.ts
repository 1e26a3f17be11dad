/**
 * The web console's script (served as /console/console.js): programs with their versions, transitions and
 * guarded actions; executions searched by program, version, status and time; jobs with live progress (a GraphQL
 * subscription over WebSocket, graphql-transport-ws); two versions side by side; the packaged programs the fleet
 * serves, each with its module tree (nested modules, predictors with their signatures). Everything is drawn with DOM
 * calls and textContent — no HTML is ever built from data — under a strict Content-Security-Policy.
 */
export const CONSOLE_JS = String.raw`
const main = document.getElementById("main");
const TOKEN_KEY = "dspex-console-token";
const token = () => sessionStorage.getItem(TOKEN_KEY);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
const show = (...nodes) => main.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
const state = (s) => el("span", { class: "state " + s, "data-state": s }, s);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || { type: "HttpError", message: "HTTP " + status };
    super(e.message);
    this.status = status;
    this.error = e;
  }
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: Object.assign({ authorization: "Bearer " + token() }, body === undefined ? {} : { "content-type": "application/json" }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    login("That token was refused.");
    throw new ApiError(res.status, data);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

function errorBox(err) {
  const e = err.error || { type: "Error", message: String(err) };
  const details = e.details ? "\n" + Object.entries(e.details).map(([k, v]) => k + ": " + JSON.stringify(v)).join("\n") : "";
  return el("div", { class: "error", role: "alert" }, e.type + ": " + e.message + details);
}

function login(reason) {
  show(
    el("h1", {}, "Sign in"),
    reason ? el("div", { class: "error" }, reason) : null,
    el("p", { class: "note" }, "Paste an API token (dspex api-token create). It stays in this tab only."),
    el("form", { class: "inline", id: "login", onsubmit: (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, new FormData(ev.target).get("token").trim());
      route();
    } }, el("label", {}, "API token", el("input", { name: "token", type: "password", size: 60, required: true, autocomplete: "off" })), el("button", {}, "Sign in")),
  );
}

/** A subscription over WebSocket (graphql-transport-ws); returns a function that ends it. */
function subscribe(query, variables, onData, onError) {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/graphql", "graphql-transport-ws");
  ws.onopen = () => ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: "Bearer " + token() } }));
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "connection_ack") ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables } }));
    else if (msg.type === "next") onData(msg.payload.data);
    else if (msg.type === "error" || msg.type === "connection_error") onError(msg.payload);
  };
  return () => ws.close();
}
let stopLive = () => {};

/** A table of rows (or of a tbody that is filled later). */
function table(headers, rows, attrs) {
  const body = rows instanceof Node ? rows : el("tbody", {}, rows);
  return el("table", attrs || {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))), body);
}

async function programs() {
  const page = await api("GET", "/v1/registry/programs?limit=200");
  show(
    el("h1", {}, "Programs"),
    table(["name", "state", "deployed", "latest", "module", "signature", "owner", "updated"], page.items.map((p) =>
      el("tr", { "data-program": p.name },
        el("td", {}, el("a", { href: "#/programs/" + p.name }, p.name)), el("td", {}, state(p.state)), el("td", {}, p.deployedVersion === null ? "—" : "v" + p.deployedVersion),
        el("td", {}, "v" + p.latestVersion), el("td", {}, p.module), el("td", {}, el("code", {}, p.signature.text)), el("td", {}, p.owner), el("td", {}, when(p.updatedAt))))),
    page.items.length === 0 ? el("p", { class: "note" }, "No programs yet: POST /v1/registry/programs (docs/api.md).") : null,
  );
}

function actionForm(name, action, fields, label) {
  const out = el("div", { class: "result" });
  const form = el("form", { class: "inline", id: action + "-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const body = {};
    for (const [k, v] of new FormData(form)) {
      if (v === "") continue;
      body[k] = ["version", "threshold"].includes(k) ? Number(v) : k === "options" ? JSON.parse(v) : v;
    }
    out.replaceChildren();
    try {
      const r = await api("POST", "/v1/registry/programs/" + name + "/" + action, body);
      if (r.job) location.hash = "#/jobs/" + r.job.id;
      else await program(name);
    } catch (err) {
      out.replaceChildren(errorBox(err));
    }
  } }, fields, el("button", {}, label));
  return el("div", {}, form, out);
}
const field = (label, name, attrs) => el("label", {}, label, el("input", Object.assign({ name }, attrs || {})));

async function program(name) {
  const [p, versions, transitions, jobs] = await Promise.all([
    api("GET", "/v1/registry/programs/" + name),
    api("GET", "/v1/registry/programs/" + name + "/versions?limit=200"),
    api("GET", "/v1/registry/programs/" + name + "/transitions?limit=50"),
    api("GET", "/v1/registry/jobs?program=" + name + "&limit=20"),
  ]);
  const v = versions.items;
  show(
    el("h1", {}, p.name, " ", state(p.state)),
    el("p", {}, el("code", {}, p.signature.text), " · ", p.module, p.alias ? " · alias " : "", p.alias ? el("code", {}, p.alias) : "", p.deployedVersion ? " → v" + p.deployedVersion : ""),
    p.description ? el("p", { class: "note" }, p.description) : null,
    el("h2", {}, "Versions"),
    table(["version", "score", "baseline", "parent", "job", "scores on datasets", "created"], v.map((x) =>
      el("tr", { "data-version": x.version }, el("td", {}, "v" + x.version, x.version === p.deployedVersion ? " (deployed)" : ""), el("td", {}, x.score ?? "—"), el("td", {}, x.baselineScore ?? "—"),
        el("td", {}, x.parentVersion ? "v" + x.parentVersion : "—"), el("td", {}, x.job ? el("a", { href: "#/jobs/" + x.job }, x.job) : "—"),
        el("td", {}, x.evaluations.map((e) => e.dataset + ": " + e.score).join(", ") || "—"), el("td", {}, when(x.createdAt) + " by " + x.createdBy)))),
    v.length >= 2 ? el("p", {}, el("a", { href: "#/compare/" + name + "/" + v[1].version + "/" + v[0].version, id: "compare-link" }, "Compare v" + v[1].version + " with v" + v[0].version)) : null,
    el("h2", {}, "Actions"),
    el("p", { class: "note" }, "Guards: train needs datasets and no running job; optimize needs a succeeded optimizer job; deploy needs a score on the dataset ≥ the threshold; rollback needs a previous deployment."),
    actionForm(name, "deploy", [field("version", "version", { type: "number", min: 1, value: v[0] ? v[0].version : "" }), field("dataset", "dataset", { required: true }), field("threshold", "threshold", { type: "number", step: "any" }), field("reason", "reason")], "Deploy"),
    actionForm(name, "train", [field("optimizer", "optimizer", { value: "LabeledFewShot", required: true }), field("options (JSON)", "options", { value: "{\"k\": 2}" }), field("trainset", "trainset", { required: true }), field("valset", "valset"), field("metric", "metric", { value: "answer_exact_match" })], "Train"),
    actionForm(name, "optimize", [field("reason", "reason")], "Optimize"),
    actionForm(name, "rollback", [field("reason", "reason")], "Roll back"),
    actionForm(name, "deprecate", [field("reason", "reason")], "Deprecate"),
    el("h2", {}, "Jobs"),
    table(["job", "status", "score", "version", "datasets", "created"], jobs.items.map((j) =>
      el("tr", {}, el("td", {}, el("a", { href: "#/jobs/" + j.id }, j.id)), el("td", {}, j.status), el("td", {}, j.score ?? "—"), el("td", {}, "v" + j.version), el("td", {}, [j.dataset, j.valset].filter(Boolean).join(" / ")), el("td", {}, when(j.createdAt))))),
    el("h2", {}, "Transitions"),
    table(["when", "action", "from → to", "version", "who", "why", "details"], transitions.items.map((t) =>
      el("tr", { "data-action": t.action }, el("td", {}, when(t.at)), el("td", {}, t.action), el("td", {}, t.from + " → " + t.to), el("td", {}, t.version ? "v" + t.version : ""), el("td", {}, t.actor), el("td", {}, t.reason || ""), el("td", {}, el("code", {}, t.details ? JSON.stringify(t.details) : ""))))),
    el("p", {}, el("a", { href: "#/executions?program=" + name }, "Executions of " + name)),
  );
}

async function executions(params) {
  const q = new URLSearchParams();
  for (const k of ["program", "version", "status", "since", "until"]) if (params.get(k)) q.set(k, params.get(k));
  q.set("limit", "100");
  const form = el("form", { class: "inline", id: "search", onsubmit: (ev) => {
    ev.preventDefault();
    const f = new URLSearchParams();
    for (const [k, v] of new FormData(ev.target)) if (v) f.set(k, k === "since" || k === "until" ? new Date(v).toISOString() : v);
    location.hash = "#/executions?" + f.toString();
  } },
    field("program", "program", { value: params.get("program") || "" }), field("version", "version", { type: "number", min: 1, value: params.get("version") || "" }),
    el("label", {}, "status", el("select", { name: "status" }, ["", "ok", "error"].map((s) => el("option", { value: s, selected: params.get("status") === s }, s || "any")))),
    field("since", "since", { type: "datetime-local" }), field("until", "until", { type: "datetime-local" }), el("button", {}, "Search"));
  let rows = [];
  let problem = null;
  try {
    rows = (await api("GET", "/v1/registry/executions?" + q.toString())).items;
  } catch (err) {
    problem = errorBox(err);
  }
  show(el("h1", {}, "Executions"), form, problem,
    table(["when", "program", "status", "latency", "inputs", "outputs / error", "caller"], rows.map((x) =>
      el("tr", { "data-execution": x.id }, el("td", {}, when(x.at)), el("td", {}, x.ref), el("td", {}, x.status), el("td", {}, Math.round(x.latencyMs) + " ms"),
        el("td", {}, x.inputs ? el("code", {}, JSON.stringify(x.inputs)) : el("span", { class: "note" }, "redacted: " + Object.keys(x.inputsSummary.fields || {}).join(", "))),
        el("td", {}, el("code", {}, JSON.stringify(x.outputs || x.error))), el("td", {}, x.caller || "")))));
}

async function jobs() {
  const page = await api("GET", "/v1/registry/jobs?limit=100");
  show(el("h1", {}, "Jobs"), table(["job", "kind", "program", "status", "score", "created"], page.items.map((j) =>
    el("tr", {}, el("td", {}, el("a", { href: "#/jobs/" + j.id }, j.id)), el("td", {}, j.kind), el("td", {}, el("a", { href: "#/programs/" + j.program }, j.program + " v" + j.version)), el("td", {}, j.status), el("td", {}, j.score ?? "—"), el("td", {}, when(j.createdAt))))));
}

async function job(id) {
  const j = await api("GET", "/v1/registry/jobs/" + id);
  const status = el("span", { id: "job-status" }, j.status);
  const bar = el("progress", { id: "job-progress", max: 1, value: j.status === "succeeded" ? 1 : 0 });
  const log = el("tbody", { id: "job-events" });
  show(el("h1", {}, "Job ", el("code", {}, j.id)),
    el("p", {}, j.kind + " of ", el("a", { href: "#/programs/" + j.program }, j.program + " v" + j.version), " on " + [j.dataset, j.valset].filter(Boolean).join(" / ")),
    el("p", {}, "status: ", status, " ", bar, " score: ", el("span", { id: "job-score" }, j.score ?? "—")),
    el("p", { class: "note" }, "Live: progress events as the job runs (GraphQL subscription jobProgress)."),
    table(["seq", "event", "stage", "done / total", "score", "at"], log),
    el("p", {}, el("a", { href: "#/programs/" + j.program }, "Back to " + j.program)));
  if (["succeeded", "failed", "cancelled"].includes(j.status)) return;
  stopLive = subscribe("subscription ($job: String!) { jobProgress(job: $job) }", { job: id }, (data) => {
    const e = data.jobProgress;
    log.append(el("tr", { "data-event": e.type }, el("td", {}, e.seq ?? ""), el("td", {}, e.type), el("td", {}, e.stage || ""), el("td", {}, (e.done ?? "") + (e.total ? " / " + e.total : "")), el("td", {}, e.best_score ?? e.last_score ?? e.score ?? ""), el("td", {}, new Date(e.at).toLocaleTimeString())));
    status.textContent = e.status;
    if (e.total) bar.value = Math.min(1, (e.done || 0) / e.total);
    if (e.type === "done") {
      bar.value = 1;
      api("GET", "/v1/registry/jobs/" + id).then((r) => { document.getElementById("job-score").textContent = r.score ?? "—"; status.textContent = r.status; }).catch(() => {});
    }
  }, (err) => log.append(el("tr", {}, el("td", { colspan: 6 }, errorBox({ error: { type: "Subscription", message: JSON.stringify(err) } })))));
}

async function compare(name, a, b) {
  const [va, vb] = await Promise.all([api("GET", "/v1/registry/programs/" + name + "/versions/" + a), api("GET", "/v1/registry/programs/" + name + "/versions/" + b)]);
  const datasets = [...new Set([...va.evaluations, ...vb.evaluations].map((e) => e.dataset))];
  const score = (v, d) => { const e = v.evaluations.filter((x) => x.dataset === d).pop(); return e ? e.score : null; };
  const cell = (mine, other) => el("td", { class: mine !== null && other !== null && mine > other ? "better" : "" }, mine ?? "—");
  const demos = (v) => ((v.state.dspy_state && v.state.dspy_state.demos) || v.state.demos || []).length;
  show(el("h1", {}, name, ": v" + a + " and v" + b),
    table(["", "v" + a, "v" + b], [
      ...datasets.map((d) => el("tr", { "data-dataset": d }, el("th", {}, "score on " + d), cell(score(va, d), score(vb, d)), cell(score(vb, d), score(va, d)))),
      el("tr", {}, el("th", {}, "demos"), el("td", {}, demos(va)), el("td", {}, demos(vb))),
      el("tr", {}, el("th", {}, "parent / job"), el("td", {}, (va.parentVersion ? "v" + va.parentVersion : "—") + " / " + (va.job || "—")), el("td", {}, (vb.parentVersion ? "v" + vb.parentVersion : "—") + " / " + (vb.job || "—"))),
    ], { id: "comparison" }),
    el("div", { class: "cols" }, el("pre", {}, JSON.stringify(va.state, null, 2)), el("pre", {}, JSON.stringify(vb.state, null, 2))),
    el("p", {}, el("a", { href: "#/programs/" + name }, "Back to " + name)));
}

/** The packaged programs the workers serve (docs/programs.md). */
async function served() {
  const list = await api("GET", "/v1/packaged-programs");
  show(el("h1", {}, "Served programs"),
    el("p", { class: "note" }, "Users' DSPy programs the workers serve, from their packages (docs/programs.md)."),
    table(["program", "version", "pool", "inputs", "outputs"], list.programs.map((p) => el("tr", { "data-served": p.name },
      el("td", {}, el("a", { href: "#/served/" + encodeURIComponent(p.name) }, p.name)), el("td", {}, p.version || "—"), el("td", {}, p.pool),
      el("td", {}, p.inputs.map((f) => f.name).join(", ")), el("td", {}, p.outputs.map((f) => f.name).join(", "))))),
    list.failures.length ? el("div", { class: "error" }, list.failures.map((f) => f.name + " NOT SERVED: " + f.error).join("\n")) : null);
}

/** A module tree as nested lists: each module's attribute path and class, a predictor's signature under it. */
function moduleTree(node) {
  const label = el("span", { class: node.predictor ? "predictor" : "module" }, (node.name || "(program)") + ": " + node.type);
  return el("li", { "data-module": node.name || "(program)" }, label,
    node.signature ? el("code", { class: "sig" }, node.signature) : null,
    node.children.length ? el("ul", {}, node.children.map(moduleTree)) : null);
}

async function servedProgram(name) {
  const g = await api("GET", "/v1/packaged-programs/" + encodeURIComponent(name) + "/graph");
  show(el("h1", {}, name + " " + (g.version || "")),
    el("h2", {}, "Module graph"), el("ul", { id: "module-graph", class: "tree" }, moduleTree(g.graph)),
    el("h2", {}, "Mermaid"), el("pre", { id: "mermaid" }, g.mermaid),
    el("p", {}, el("a", { href: "#/served" }, "Back to served programs")));
}

async function route() {
  stopLive();
  stopLive = () => {};
  if (!token()) return login();
  document.getElementById("who").textContent = "signed in (token in this tab)";
  const [path, query] = location.hash.slice(1).split("?");
  const parts = (path || "/programs").split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts[0] === "programs" && parts[1]) await program(parts[1]);
    else if (parts[0] === "executions") await executions(new URLSearchParams(query || ""));
    else if (parts[0] === "jobs" && parts[1]) await job(parts[1]);
    else if (parts[0] === "jobs") await jobs();
    else if (parts[0] === "compare") await compare(parts[1], parts[2], parts[3]);
    else if (parts[0] === "served" && parts[1]) await servedProgram(parts[1]);
    else if (parts[0] === "served") await served();
    else await programs();
  } catch (err) {
    if (err.status !== 401) show(errorBox(err));
  }
}
addEventListener("hashchange", route);
route();
`;
