// The emulator's live console: reads /console/events (server-sent events) and shows each
// message's way through the broker, the rules, the actions and the functions.
// Plain JS, no dependency; everything from the stream is shown as text, never as HTML.
"use strict";

const HISTORY = 500; // messages kept (the oldest go first)
const INVOCATIONS = 300;
const EVALUATIONS = 300;
const DENIALS = 100;
const PAUSED_MAX = 5000; // events held while paused

const state = {
  messages: new Map(), // seq -> {msg, rules, actions, errors, invocations}
  order: [], // seqs, oldest first
  invocations: new Map(), // request id -> invocation (with logs)
  invocationOrder: [],
  logs: new Map(), // request id -> lines that came before their invocation
  evaluations: [],
  denials: [],
  selected: null,
  selectedInvocation: null,
  paused: false,
  held: [],
  dropped: 0,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function pretty(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

const PAYLOAD_KEPT = 16 * 1024; // bytes of a payload the emulator sends (observe.py)

function payloadText(p, size) {
  if (p === null || p === undefined) return "";
  const cut = size > PAYLOAD_KEPT;
  if (typeof p === "string") {
    if (!cut) {
      try { return JSON.stringify(JSON.parse(p), null, 2); } catch (e) { /* not JSON: as text */ }
    }
    return p + (cut ? `\n… (first ${PAYLOAD_KEPT} of ${size} bytes)` : "");
  }
  return "base64: " + p.base64 + (cut ? ` … (first ${PAYLOAD_KEPT} of ${size} bytes)` : "");
}

function timeOf(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

// -- MQTT topic filters ---------------------------------------------------------------
function topicMatches(filter, topic) {
  if (!filter) return true;
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

function visible(msg) {
  const topicFilter = $("filter-topic").value.trim();
  const client = $("filter-client").value.trim();
  if (!$("filter-lifecycle").checked && msg.transport === "lifecycle") return false;
  if (!topicMatches(topicFilter, msg.topic)) return false;
  if (client && !(msg.client_id || "").includes(client)) return false;
  return true;
}

// -- events -------------------------------------------------------------------------
function apply(event) {
  switch (event.kind) {
    case "message": return addMessage(event);
    case "rule": return addToMessage(event.seq, "rules", event, () => addEvaluation(event));
    case "action": return addToMessage(event.seq, "actions", event);
    case "error_action": return addToMessage(event.seq, "errors", event);
    case "invocation": return addInvocation(event);
    case "log": return addLog(event);
    case "denial": return addDenial(event);
  }
}

function addMessage(msg) {
  const entry = { msg, rules: [], actions: [], errors: [], invocations: [], children: [] };
  state.messages.set(msg.seq, entry);
  state.order.push(msg.seq);
  if (msg.parent && state.messages.has(msg.parent)) state.messages.get(msg.parent).children.push(msg.seq);
  while (state.order.length > HISTORY) {
    const old = state.order.shift();
    state.messages.delete(old);
    const row = document.querySelector(`#messages tr[data-seq="${old}"]`);
    if (row) row.remove();
  }
  if (visible(msg)) $("messages").prepend(messageRow(entry));
  $("messages-empty").hidden = true;
  $("count-messages").textContent = state.order.length;
}

function addToMessage(seq, key, event, also) {
  const entry = state.messages.get(seq);
  if (entry) {
    const queued = key === "actions" && event.status !== "queued"
      ? entry.actions.findIndex((a) => a.status === "queued" && a.rule === event.rule && !a.error_action === !event.error_action)
      : -1;
    if (queued >= 0) entry.actions[queued] = { ...event, request: entry.actions[queued].request };
    else entry[key].push(event);
    refreshRow(entry);
    if (state.selected === seq) showMessage(seq);
  }
  if (also) also();
}

function addEvaluation(event) {
  state.evaluations.unshift(event);
  if (state.evaluations.length > EVALUATIONS) state.evaluations.pop();
  renderEvaluations();
}

function addInvocation(inv) {
  inv.logs = state.logs.get(inv.request_id) || [];
  state.logs.delete(inv.request_id);
  state.invocations.set(inv.request_id, inv);
  state.invocationOrder.push(inv.request_id);
  while (state.invocationOrder.length > INVOCATIONS) state.invocations.delete(state.invocationOrder.shift());
  const entry = inv.seq ? state.messages.get(inv.seq) : null;
  if (entry) {
    entry.invocations.push(inv.request_id);
    refreshRow(entry);
    if (state.selected === inv.seq) showMessage(inv.seq);
  }
  renderInvocations();
  $("count-invocations").textContent = state.invocationOrder.length;
}

function addLog(line) {
  const inv = state.invocations.get(line.request_id);
  if (inv) {
    inv.logs.push(line.text);
    if (state.selectedInvocation === line.request_id) showInvocation(line.request_id);
    return;
  }
  if (!state.logs.has(line.request_id)) state.logs.set(line.request_id, []);
  state.logs.get(line.request_id).push(line.text);
  if (state.logs.size > INVOCATIONS) state.logs.delete(state.logs.keys().next().value);
}

function addDenial(denial) {
  denial.at = Date.now();
  state.denials.unshift(denial);
  if (state.denials.length > DENIALS) state.denials.pop();
  renderDenials();
  $("count-denials").textContent = "denied " + state.denials.length;
  $("count-denials").hidden = false;
}

// -- messages panel -------------------------------------------------------------------
function ruleBadges(entry) {
  const out = [];
  for (const r of entry.rules) {
    const cls = r.error ? "bad" : r.matched ? "ok" : "skip";
    out.push(el("span", { class: "badge " + cls, title: r.error || (r.matched ? "WHERE passed" : "WHERE false") }, r.rule));
  }
  if (entry.actions.some((a) => a.status === "failed")) out.push(el("span", { class: "badge bad" }, "action failed"));
  if (entry.invocations.length) out.push(el("span", { class: "badge" }, "λ " + entry.invocations.length));
  return out;
}

function messageRow(entry) {
  const m = entry.msg;
  const row = el("tr", {
    dataset: { seq: m.seq, testid: "message-row" },
    class: (m.transport === "lifecycle" ? "lifecycle " : "") + (state.selected === m.seq ? "selected" : ""),
    onclick: () => selectMessage(m.seq),
  },
    el("td", { class: "time", text: timeOf(m.time_ms) }),
    el("td", { text: m.client_id || "—" }),
    el("td", {}, el("span", { class: "badge", text: m.transport })),
    el("td", { class: "topic", text: m.topic }),
    el("td", { text: m.qos + (m.retain ? " R" : "") }),
    el("td", { text: m.size }),
    el("td", { class: "rules-cell" }, ruleBadges(entry)),
  );
  return row;
}

function refreshRow(entry) {
  const row = document.querySelector(`#messages tr[data-seq="${entry.msg.seq}"]`);
  if (row) row.replaceWith(messageRow(entry));
}

function renderMessages() {
  const body = $("messages");
  body.replaceChildren();
  for (let i = state.order.length - 1; i >= 0; i--) {
    const entry = state.messages.get(state.order[i]);
    if (entry && visible(entry.msg)) body.append(messageRow(entry));
  }
  $("messages-empty").hidden = state.order.length > 0;
}

function selectMessage(seq) {
  state.selected = seq;
  document.querySelectorAll("#messages tr.selected").forEach((r) => r.classList.remove("selected"));
  const row = document.querySelector(`#messages tr[data-seq="${seq}"]`);
  if (row) row.classList.add("selected");
  showMessage(seq);
}

function messageLink(seq, label) {
  return el("button", { class: "link", type: "button", onclick: () => { showTab("messages"); selectMessage(seq); } }, label || `message #${seq}`);
}

function invocationLink(rid) {
  return el("button", { class: "link", type: "button", dataset: { testid: "invocation-link" }, onclick: () => { showTab("functions"); selectInvocation(rid); } }, rid);
}

function showMessage(seq) {
  const pane = $("message-detail");
  const entry = state.messages.get(seq);
  if (!entry) {
    pane.replaceChildren(el("p", { class: "empty" }, "That message left the history."));
    return;
  }
  const m = entry.msg;
  const parts = [
    el("h2", {}, `#${m.seq} `, el("code", { text: m.topic })),
    el("dl", { class: "meta" },
      el("dt", {}, "time"), el("dd", {}, timeOf(m.time_ms)),
      el("dt", {}, "client"), el("dd", {}, m.client_id || "— (the emulator)"),
      el("dt", {}, "transport"), el("dd", {}, m.transport),
      el("dt", {}, "QoS / retain"), el("dd", {}, `${m.qos} / ${m.retain ? "yes" : "no"}`),
      el("dt", {}, "size"), el("dd", {}, `${m.size} bytes`),
      m.ingest_rule ? [el("dt", {}, "Basic Ingest"), el("dd", {}, m.ingest_rule)] : null,
      m.properties ? [el("dt", {}, "MQTT 5 properties"), el("dd", {}, el("code", {}, JSON.stringify(m.properties)))] : null,
      m.parent ? [el("dt", {}, "republished from"), el("dd", {}, messageLink(m.parent))] : null,
      entry.children.length ? [el("dt", {}, "republished as"), el("dd", {}, entry.children.map((c) => messageLink(c)))] : null,
    ),
    el("h3", {}, "Payload"),
    el("pre", { dataset: { testid: "message-payload" } }, payloadText(m.payload, m.size)),
    el("h3", {}, "Rules"),
  ];
  if (!entry.rules.length) parts.push(el("p", { class: "empty" }, "No rule's FROM matches this topic."));
  for (const r of entry.rules) {
    const cls = r.error ? "bad" : r.matched ? "ok" : "skip";
    const verdict = r.error ? "error" : r.matched ? "WHERE passed" : "WHERE false";
    const actions = entry.actions.filter((a) => a.rule === r.rule);
    const errors = entry.errors.filter((e) => e.rule === r.rule);
    parts.push(el("div", { class: "step " + cls, dataset: { testid: "rule-evaluation", rule: r.rule } },
      el("div", { class: "head" }, el("strong", {}, r.rule), el("span", { class: "badge " + cls }, verdict)),
      r.error ? el("div", { class: "error", dataset: { testid: "rule-error" } }, r.error) : null,
      r.matched ? el("pre", { dataset: { testid: "rule-output" } }, pretty(r.output)) : null,
      actions.map((a) => actionStep(a, entry)),
      errors.map((e) => el("div", { class: "step bad sub", dataset: { testid: "error-action" } },
        el("div", { class: "head" }, el("strong", {}, "error action " + e.action), el("span", { class: "badge bad" }, "taken")),
        el("pre", {}, pretty(e.message)))),
    ));
  }
  pane.replaceChildren(...parts.filter(Boolean));
}

function actionStep(a, entry) {
  const cls = a.status === "failed" ? "bad" : a.status === "queued" ? "skip" : "ok";
  const invs = a.action === "lambda" && a.status !== "failed" ? entry.invocations : [];
  return el("div", { class: "step sub " + cls, dataset: { testid: "action-outcome", action: a.action, status: a.status } },
    el("div", { class: "head" },
      el("strong", {}, (a.error_action ? "error action " : "") + a.action),
      el("span", { class: "badge " + cls }, a.status)),
    a.request && Object.keys(a.request).length ? el("pre", {}, pretty(a.request)) : null,
    a.error ? el("div", { class: "error" }, a.error) : null,
    invs.length ? el("div", {}, "invocation: ", invs.map((rid) => invocationLink(rid))) : null,
  );
}

// -- rules panel ------------------------------------------------------------------------
function renderRules(rules) {
  const box = $("rules");
  box.replaceChildren(...rules.rules.map((r) => el("div", { class: "rule-card" + (r.disabled ? " disabled" : ""), dataset: { testid: "rule-card" } },
    el("div", { class: "head" }, el("strong", {}, r.name), " ",
      r.disabled ? el("span", { class: "badge warn" }, "disabled") : el("span", { class: "badge ok" }, "enabled"),
      r.counters ? el("span", { class: "badge" }, `matched ${r.counters.matched} · ok ${r.counters.actions_ok} · failed ${r.counters.actions_failed} · errors ${r.counters.errors}`) : null),
    el("pre", {}, r.sql),
    el("div", {}, "actions: ", r.actions.join(", ") || "none", r.error_action ? ` · error action: ${r.error_action}` : ""),
  )));
  if (!rules.rules.length) box.append(el("p", { class: "empty" }, "No rules loaded."));
  $("diagnostics").replaceChildren(...rules.diagnostics.map((d) => el("li", {}, d)));
  if (!rules.diagnostics.length) $("diagnostics").append(el("li", { class: "empty" }, "none"));
}

function renderEvaluations() {
  if (!$("panel-rules").classList.contains("active")) return;
  $("evaluations").replaceChildren(...state.evaluations.map((e) => el("tr", {},
    el("td", {}, messageLink(e.seq, "#" + e.seq)),
    el("td", {}, e.rule),
    el("td", {}, el("span", { class: "badge " + (e.error ? "bad" : e.matched ? "ok" : "skip") }, e.error ? "error" : e.matched ? "matched" : "WHERE false")),
    el("td", {}, el("code", {}, e.error || (e.matched ? JSON.stringify(e.output) : ""))),
  )));
}

// -- functions panel --------------------------------------------------------------------
function renderInvocations() {
  const body = $("invocations");
  body.replaceChildren();
  for (let i = state.invocationOrder.length - 1; i >= 0; i--) {
    const inv = state.invocations.get(state.invocationOrder[i]);
    if (!inv) continue;
    body.append(el("tr", { dataset: { rid: inv.request_id, testid: "invocation-row" }, class: state.selectedInvocation === inv.request_id ? "selected" : "", onclick: () => selectInvocation(inv.request_id) },
      el("td", {}, inv.function),
      el("td", { class: "mono" }, inv.request_id.slice(0, 8) + "…"),
      el("td", {}, inv.trigger),
      el("td", {}, inv.duration_ms + " ms"),
      el("td", {}, el("span", { class: "badge " + (inv.error ? "bad" : "ok") }, inv.error ? inv.error : "ok")),
    ));
  }
  $("invocations-empty").hidden = state.invocationOrder.length > 0;
}

function selectInvocation(rid) {
  state.selectedInvocation = rid;
  renderInvocations();
  showInvocation(rid);
}

function showInvocation(rid) {
  const pane = $("invocation-detail");
  const inv = state.invocations.get(rid);
  if (!inv) {
    pane.replaceChildren(el("p", { class: "empty" }, "That invocation left the history."));
    return;
  }
  pane.replaceChildren(
    el("h2", {}, inv.function, " ", el("code", { dataset: { testid: "invocation-request-id" } }, inv.request_id)),
    el("dl", { class: "meta" },
      el("dt", {}, "trigger"), el("dd", {}, inv.trigger),
      inv.seq ? [el("dt", {}, "message"), el("dd", {}, messageLink(inv.seq))] : null,
      el("dt", {}, "duration"), el("dd", {}, inv.duration_ms + " ms"),
      el("dt", {}, "status"), el("dd", {}, String(inv.status) + (inv.error ? " · " + inv.error : "")),
    ),
    el("h3", {}, "Event"), el("pre", {}, payloadText(inv.payload, inv.size)),
    el("h3", {}, inv.error ? "Error" : "Result"), el("pre", { class: inv.error ? "error" : "" }, payloadText(inv.result, inv.result_size)),
    el("h3", {}, "Log lines"),
    el("div", { class: "logs", dataset: { testid: "invocation-logs" } },
      inv.logs.length ? inv.logs.map((l) => el("div", {}, l)) : el("div", {}, "(no output)")),
  );
}

// -- clients panel ----------------------------------------------------------------------
function renderClients(clients) {
  const body = $("clients");
  body.replaceChildren(...clients.map((c) => el("tr", { dataset: { testid: "client-row" } },
    el("td", { class: "mono" }, c.client_id),
    el("td", {}, el("span", { class: "badge " + (c.connected ? "ok" : "skip") }, c.connected ? "connected" : "offline"), c.clean ? "" : el("span", { class: "badge" }, "persistent")),
    el("td", {}, c.principal || "—"),
    el("td", { class: "mono" }, Object.entries(c.subscriptions).map(([f, q]) => `${f} (QoS ${q})`).join("\n") || "—"),
    el("td", {}, c.inflight), el("td", {}, c.queued),
  )));
  $("count-clients").textContent = clients.filter((c) => c.connected).length;
  if (!clients.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No clients.")));
}

function renderDenials() {
  const box = $("denials");
  if (!state.denials.length) return;
  box.replaceChildren(...state.denials.map((d) => el("div", { class: "denial", dataset: { testid: "denial" } },
    el("div", { class: "head" }, el("span", { class: "time" }, timeOf(d.at) + " "), el("strong", {}, d.action), " on ", el("code", {}, d.resource), " for client ", el("code", {}, d.client_id)),
    el("div", { class: "error" }, d.reason),
    d.statement
      ? [el("div", {}, "deciding statement: ", el("strong", { dataset: { testid: "denial-statement-label" } }, d.statement.label)),
        el("pre", { dataset: { testid: "denial-statement" } }, pretty(d.statement.source))]
      : el("div", { class: "note" }, "no statement allows it (implicit deny)"),
  )));
}

// -- try it -------------------------------------------------------------------------------
function tryMode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function updateMode() {
  const mode = tryMode();
  document.querySelector(".mode-sql").hidden = mode !== "sql";
  document.querySelector(".mode-rule").hidden = mode !== "rule";
}

async function post(path, body) {
  const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  return [response.status, await response.json()];
}

async function runTry(event) {
  event.preventDefault();
  const [, answer] = await post("/console/try", {
    mode: tryMode(), sql: $("try-sql").value, rule: $("try-rule").value,
    topic: $("try-topic").value, payload: $("try-payload").value, client_id: $("try-client").value,
  });
  const box = $("try-result");
  const parts = [];
  if (answer.error) parts.push(el("p", { class: "error", dataset: { testid: "try-error" } }, answer.error));
  for (const d of answer.diagnostics || []) parts.push(el("p", { class: "error", dataset: { testid: "try-diagnostic" } }, d));
  if (!answer.error && !(answer.results || []).length) {
    parts.push(el("p", { class: "empty", dataset: { testid: "try-no-match" } }, `No rule matches (${answer.rules ?? 0} rules tried).`));
  }
  for (const r of answer.results || []) {
    parts.push(el("div", { class: "step ok", dataset: { testid: "try-rule-result" } },
      el("div", { class: "head" }, el("strong", {}, r.rule), el("span", { class: "badge ok" }, "matched")),
      el("h3", {}, "Output"), el("pre", { dataset: { testid: "try-output" } }, pretty(r.output)),
      r.actions.map((a) => el("div", { class: "step sub skip" }, el("strong", {}, a.type), el("pre", {}, pretty(Object.fromEntries(Object.entries(a).filter(([k]) => k !== "type")))))),
    ));
  }
  box.replaceChildren(...parts);
}

async function publishAs() {
  const [status, answer] = await post("/console/publish", {
    client_id: $("try-client").value, topic: $("try-topic").value, payload: $("try-payload").value, qos: 0,
  });
  $("try-result").replaceChildren(status === 200
    ? el("p", { dataset: { testid: "publish-result" } }, `Published on ${answer.published} as ${$("try-client").value}: see the Messages tab.`)
    : el("p", { class: "error", dataset: { testid: "publish-result" } }, `Refused (${status}): ${answer.error}`));
}

// -- tabs, pause, stream -----------------------------------------------------------------
function showTab(name) {
  for (const b of document.querySelectorAll(".tabs button")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
  for (const p of document.querySelectorAll(".panel")) p.classList.toggle("active", p.id === "panel-" + name);
  if (name === "rules") renderEvaluations();
}

function setPaused(paused) {
  state.paused = paused;
  $("pause").setAttribute("aria-pressed", String(paused));
  $("pause").textContent = paused ? "Resume" : "Pause";
  if (!paused) {
    const held = state.held;
    state.held = [];
    held.forEach(apply);
  }
  updatePausedNote();
}

function updatePausedNote() {
  const note = $("paused-note");
  note.hidden = !state.paused;
  note.textContent = `Paused: ${state.held.length} events held` + (state.dropped ? `, ${state.dropped} dropped` : "");
}

function receive(events) {
  if (state.paused) {
    state.held.push(...events);
    if (state.held.length > PAUSED_MAX) {
      state.dropped += state.held.length - PAUSED_MAX;
      state.held.splice(0, state.held.length - PAUSED_MAX);
    }
    updatePausedNote();
    return;
  }
  events.forEach(apply);
}

function connect() {
  const source = new EventSource("/console/events");
  const status = $("stream-status");
  source.onopen = () => { status.textContent = "live"; status.className = "dot on"; };
  source.onerror = () => { status.textContent = "reconnecting…"; status.className = "dot off"; };
  source.onmessage = (e) => receive(JSON.parse(e.data));
  source.addEventListener("state", (e) => {
    const s = JSON.parse(e.data);
    $("auth").textContent = "auth: " + s.auth;
    $("auth").title = s.auth;
    renderClients(s.clients);
    renderRules(s.rules);
  });
  source.addEventListener("dropped", (e) => {
    const n = JSON.parse(e.data).dropped;
    state.dropped += n;
    const note = $("dropped-note");
    note.hidden = false;
    note.textContent = `${state.dropped} events dropped (the console fell behind)`;
  });
}

for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
$("pause").addEventListener("click", () => setPaused(!state.paused));
$("clear").addEventListener("click", () => {
  state.messages.clear(); state.order = []; state.selected = null;
  renderMessages();
  $("message-detail").replaceChildren(el("p", { class: "empty" }, "Cleared."));
  $("count-messages").textContent = "0";
});
for (const id of ["filter-topic", "filter-client", "filter-lifecycle"]) $(id).addEventListener("input", renderMessages);
for (const r of document.querySelectorAll('input[name="mode"]')) r.addEventListener("change", updateMode);
$("try-form").addEventListener("submit", runTry);
$("try-publish").addEventListener("click", publishAs);
updateMode();
connect();
