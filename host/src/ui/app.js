// Caxton's status page: plain JavaScript, no build step, no network but
// this host's API. The token (when the host asks for one) is kept in
// sessionStorage: it lasts for this browser tab's session only.
"use strict";

const TOKEN_KEY = "caxton-token";
const REFRESH_MS = 5000;
const HISTORY = 60; // samples kept for the sparklines (5 minutes)

const $ = (id) => document.getElementById(id);
const history = [];
let timer = null;

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = { accept: "application/json", ...(options.headers || {}) };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) throw new Unauthorized();
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message || body.error.code : response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return body;
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function duration(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600);
  const m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

function showLogin(message) {
  if (timer) { clearInterval(timer); timer = null; }
  $("main").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("health").textContent = "token needed";
  $("health").className = "badge bad";
  $("token").focus();
}

function setText(id, text, className) {
  const node = $(id);
  node.textContent = text;
  if (className !== undefined) node.className = className;
}

function renderStatus(status) {
  setText("version", `v${status.version}`);
  setText("health", "up", "badge ok");
  setText("uptime", duration(status.uptime_seconds));
  setText("rss", bytes(status.resident_memory_bytes));
  setText("pool", `${status.pool.in_use} of ${status.pool.size} slots in use`);
  const e = status.embeddings;
  setText("embeddings", e.model ? `${e.state} (${e.model})` : e.state, e.state);
  const detail = $("embeddings-detail");
  detail.hidden = !e.detail;
  detail.textContent = e.detail || "";
  const providers = Object.entries(status.llm_providers || {});
  setText("llm", providers.length
    ? providers.map(([name, p]) => `${name}: ${p.status}`).join(", ")
    : "none configured");

  const rows = $("agents").tBodies[0];
  rows.replaceChildren(...status.agents.map((a) => {
    const row = element("tr");
    row.dataset.agent = a.name;
    row.append(
      element("td", a.name),
      element("td", a.kind === "agent" ? `agent (${a.runs})` : "tool"),
      element("td", a.status || (a.reload_error ? "degraded" : "running"),
        a.status || (a.reload_error ? "degraded" : "running")),
      element("td", a.queue ? a.queue.queued : "-", "num"),
      element("td", a.counters ? a.counters.messages : "-", "num"),
      element("td", a.counters ? a.counters.failures : "-", "num"),
      element("td", a.reload_error || ""),
    );
    return row;
  }));

  const m = status.memory;
  if (m && !m.error) {
    setText("entities", m.entities);
    setText("observations", m.observations_without_embedding
      ? `${m.observations} (${m.observations_without_embedding} without embedding)`
      : m.observations);
    setText("relations", m.relations);
    setText("database", bytes(m.database_bytes));
    setText("index", `${m.index_entries} vectors, ${bytes(m.index_bytes)}`);
  }

  history.push({
    t: Date.now(),
    requests: status.totals.requests,
    messages: status.totals.messages,
    rss: (status.resident_memory_bytes || 0) / 1048576,
    pool: status.pool.in_use,
    cpu: status.cpu_seconds_total || 0,
  });
  if (history.length > HISTORY) history.shift();
  const cpu = series("cpu", true);
  setText("cpu", cpu.length ? `${(cpu[cpu.length - 1] * 100).toFixed(1)} %` : "measuring…");
  drawSparks();
  setText("updated", `updated ${new Date().toLocaleTimeString()}`);
}

// Rates come from consecutive totals; gauges are drawn as they are.
function series(key, rate) {
  if (!rate) return history.map((h) => h[key]);
  const out = [];
  for (let i = 1; i < history.length; i++) {
    const seconds = (history[i].t - history[i - 1].t) / 1000;
    out.push(seconds > 0 ? Math.max(0, history[i][key] - history[i - 1][key]) / seconds : 0);
  }
  return out;
}

function spark(id, values) {
  const svg = $(`spark-${id}`);
  const now = $(`now-${id}`);
  if (values.length === 0) { svg.replaceChildren(); now.textContent = ""; return; }
  const max = Math.max(...values, 1e-9), min = Math.min(...values, 0);
  const step = values.length > 1 ? 120 / (values.length - 1) : 0;
  const points = values.map((v, i) =>
    `${(i * step).toFixed(1)},${(28 - (v - min) / (max - min || 1) * 26).toFixed(1)}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", values.length > 1 ? points.join(" ") : `0,${points[0].split(",")[1]} 120,${points[0].split(",")[1]}`);
  svg.replaceChildren(line);
  const last = values[values.length - 1];
  now.textContent = last >= 100 ? last.toFixed(0) : last.toFixed(1);
}

function drawSparks() {
  spark("requests", series("requests", true));
  spark("messages", series("messages", true));
  spark("rss", series("rss", false));
  spark("pool", series("pool", false));
}

function renderConversations(list) {
  const items = list.conversations.map((c) => {
    const item = element("li");
    const link = element("a", c.id);
    link.href = `#conversation=${encodeURIComponent(c.id)}`;
    link.dataset.id = c.id;
    link.addEventListener("click", (event) => { event.preventDefault(); openConversation(c.id); });
    item.append(link, document.createTextNode(
      ` ${c.participants.join(", ")} · ${c.messages} messages · ${c.status} · ${new Date(c.last_activity).toLocaleString()}`));
    return item;
  });
  $("conversations").replaceChildren(...(items.length ? items : [element("li", "none yet", "note")]));
}

async function openConversation(id) {
  $("thread").hidden = false;
  $("thread-id").textContent = id;
  const list = $("thread-messages");
  list.replaceChildren(element("li", "loading…", "note"));
  try {
    const thread = await api(`/api/v1/conversations/${encodeURIComponent(id)}/messages`);
    list.replaceChildren(...thread.messages.map((m) => {
      const item = element("li");
      item.append(
        element("strong", `${m.sender} → ${m.receiver || "everyone"}`),
        document.createTextNode(` ${m.performative} · ${new Date(m.created_at).toLocaleTimeString()}`),
        element("pre", typeof m.content === "string" ? m.content : JSON.stringify(m.content, null, 2)),
      );
      return item;
    }));
  } catch (error) {
    if (error instanceof Unauthorized) return showLogin("The token was not accepted.");
    list.replaceChildren(element("li", error.message, "error"));
  }
}

async function search(event) {
  event.preventDefault();
  const query = $("query").value.trim();
  if (!query) return;
  setText("search-status", "searching…");
  try {
    const result = await api("/api/v1/memory/search", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query, limit: 10 }),
    });
    const hits = result.results || result.hits || [];
    setText("search-status", `${hits.length} hit${hits.length === 1 ? "" : "s"}`);
    $("hits").replaceChildren(...hits.map((h) => {
      const item = element("li");
      item.append(
        element("strong", h.entity),
        document.createTextNode(` (${h.entity_type}, ${h.scope}) `),
        element("span", h.observation),
        element("span", h.similarity !== null && h.similarity !== undefined
          ? ` · similarity ${h.similarity.toFixed(2)}` : " · keyword match", "note"),
      );
      return item;
    }));
  } catch (error) {
    if (error instanceof Unauthorized) return showLogin("The token was not accepted.");
    setText("search-status", error.message, "note error");
  }
}

async function refresh() {
  try {
    const [status, conversations] = await Promise.all([
      api("/api/v1/status"),
      api("/api/v1/conversations?limit=20").catch((error) => {
        if (error instanceof Unauthorized) throw error;
        return { conversations: [] };
      }),
    ]);
    $("login").hidden = true;
    $("main").hidden = false;
    renderStatus(status);
    renderConversations(conversations);
    return true;
  } catch (error) {
    if (error instanceof Unauthorized) {
      showLogin(sessionStorage.getItem(TOKEN_KEY) ? "The token was not accepted." : "");
      return false;
    }
    setText("health", "unreachable", "badge bad");
    setText("updated", error.message);
    return true;
  }
}

async function start() {
  if (await refresh()) {
    if (!timer) timer = setInterval(refresh, REFRESH_MS);
    const wanted = location.hash.match(/^#conversation=(.+)$/);
    if (wanted) {
      try { openConversation(decodeURIComponent(wanted[1])); } catch (_) { /* a mangled link */ }
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    start();
  });
  $("search").addEventListener("submit", search);
  $("thread-close").addEventListener("click", () => { $("thread").hidden = true; });
  start();
});
