// runwire web page: browse the caller's sessions and runs, watch a run's events live.
// Plain browser JavaScript, no framework, no build step. Every text from the API is put
// in the page with textContent (never as HTML). The API key lives in sessionStorage
// (this tab only) and comes only from the user typing or pasting it: a key in a link
// (#key=...) is dropped unused, since a link could otherwise sign a victim in to the
// link maker's account and send everything they type there.
"use strict";

const KEY_STORAGE = "runwire.apiKey";
const state = {
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  session: null, // selected session id
  run: null, // run id whose transcript is shown
  stream: null, // AbortController of the open event stream
  sessionsPage: null,
  runsPage: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function notice(message) {
  const box = $("notice");
  box.textContent = message || "";
  box.hidden = !message;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function pretty(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

// -- the API ------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", Authorization: `Bearer ${state.key}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value) q.append(name, value);
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

// Server-Sent Events over fetch (EventSource cannot send an Authorization header).
async function readEvents(path, lastEventId, onMessage, signal) {
  const headers = { Accept: "text/event-stream", Authorization: `Bearer ${state.key}` };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  const response = await fetch(path, { headers, signal });
  if (!response.ok) {
    throw new ApiError(response.status, await response.json().catch(() => null));
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const message = { event: "message", data: [], id: null };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") message.event = text;
        else if (field === "data") message.data.push(text);
        else if (field === "id") message.id = text;
      }
      if (message.data.length) onMessage(message.event, message.id, message.data.join("\n"));
    }
  }
}

// -- key ----------------------------------------------------------------------------

async function useKey(key) {
  state.key = key.trim();
  sessionStorage.setItem(KEY_STORAGE, state.key);
  try {
    const me = await api("/v1/me");
    $("whoami").textContent = `${me.user_id}${me.access === "read" ? " (read-only)" : ""}`;
    notice("");
    return true;
  } catch (error) {
    $("whoami").textContent = "not signed in";
    notice(error.status === 401 ? "That API key is not valid." : `Cannot reach the API: ${error.message}`);
    return false;
  }
}

// -- usage: tokens per day, drawn as SVG bars (no chart library) ------------------------

const USAGE_DAYS = 14;
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes, title) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (title) {
    const tip = document.createElementNS(SVG, "title");
    tip.textContent = title;
    node.append(tip);
  }
  return node;
}

function utcDay(offset) {
  const day = new Date();
  day.setUTCDate(day.getUTCDate() - offset);
  return day.toISOString().slice(0, 10);
}

function costText(group) {
  if (group.cost === null) return `cost unknown (no price for ${group.unpriced_models.join(", ")})`;
  return `${Number(group.cost).toFixed(4)} ${group.currency}`;
}

async function loadUsage() {
  let body;
  try {
    body = await api("/v1/usage" + query({ by: "day", since: `${USAGE_DAYS}d`, limit: String(USAGE_DAYS) }));
  } catch (error) {
    notice(`Usage: ${error.message}`);
    return;
  }
  drawUsage(body.groups);
  $("usage").hidden = false;
}

function drawUsage(groups) {
  const byDay = new Map(groups.map((g) => [g.key, g]));
  const days = [];
  for (let i = USAGE_DAYS - 1; i >= 0; i--) days.push(utcDay(i));
  const most = Math.max(1, ...groups.map((g) => g.total_tokens));
  const width = 700 / USAGE_DAYS;
  const bars = [];
  days.forEach((day, i) => {
    const g = byDay.get(day);
    const x = i * width + 2;
    if (!g) {
      bars.push(svg("rect", { class: "empty", x, y: 108, width: width - 4, height: 2 }, `${day}: no usage`));
      return;
    }
    const tip = `${day}: ${g.total_tokens.toLocaleString()} tokens in ${g.calls} call(s), ` +
      `${g.output_tokens.toLocaleString()} output; ${costText(g)}`;
    const outH = (g.output_tokens / most) * 108;
    const inH = ((g.total_tokens - g.output_tokens) / most) * 108;
    const bar = svg("g", { class: "day", "data-day": day, "data-tokens": g.total_tokens }, tip);
    bar.append(svg("rect", { class: "input", x, y: 110 - inH - outH, width: width - 4, height: inH }));
    bar.append(svg("rect", { class: "output", x, y: 110 - outH, width: width - 4, height: outH }));
    bars.push(bar);
  });
  $("usage-chart").replaceChildren(...bars);
  $("usage-first").textContent = days[0];
  $("usage-last").textContent = days[days.length - 1];
  const tokens = groups.reduce((sum, g) => sum + g.total_tokens, 0);
  const unknown = [...new Set(groups.flatMap((g) => g.unpriced_models))];
  const cost = groups.reduce((sum, g) => sum + (g.cost === null ? 0 : Number(g.cost)), 0);
  const currency = groups.length ? groups[0].currency : "";
  $("usage-total").textContent =
    `${tokens.toLocaleString()} tokens · ` +
    (unknown.length
      ? `cost unknown (no price for ${unknown.join(", ")})`
      : `${cost.toFixed(4)} ${currency}`.trim());
}

// -- sessions -----------------------------------------------------------------------

async function loadSessions(more = false) {
  const list = $("session-list");
  if (!more) state.sessionsPage = null;
  try {
    const page = await api(
      "/v1/sessions" +
        query({
          status: $("status-filter").value,
          label: $("label-filter").value.trim(),
          limit: "30",
          page: more ? state.sessionsPage : null,
        }),
    );
    // Swapped in at once, so a refresh never shows an empty list in between.
    const items = page.items.map(sessionItem);
    if (more) list.append(...items);
    else list.replaceChildren(...items);
    if (!list.children.length) list.append(el("li", "sub", "No sessions yet."));
    state.sessionsPage = page.next_page;
    $("more-sessions").hidden = !page.next_page;
  } catch (error) {
    notice(`Sessions: ${error.message}`);
  }
}

function sessionItem(session) {
  const item = el("li");
  item.dataset.id = session.session_id;
  item.title = session.session_id;
  if (session.session_id === state.session) item.classList.add("selected");
  item.append(el("div", "id", session.session_id));
  const labels = Object.entries(session.labels || {}).map(([k, v]) => `${k}=${v}`).join(" ");
  item.append(
    el("div", "sub", `${session.status} · ${session.run_count} run(s) · ${when(session.last_activity_at)}`),
  );
  if (labels) item.append(el("div", "sub", labels));
  item.addEventListener("click", () => selectSession(session.session_id));
  return item;
}

async function selectSession(sessionId) {
  state.session = sessionId;
  for (const li of $("session-list").children) {
    li.classList.toggle("selected", li.dataset.id === sessionId);
  }
  setHash();
  $("session-info").textContent = sessionId ? `Session ${sessionId}` : "New session";
  await loadRuns();
}

// -- runs ---------------------------------------------------------------------------

async function loadRuns(more = false) {
  const list = $("run-list");
  if (!more) state.runsPage = null;
  if (!state.session) {
    list.replaceChildren();
    $("more-runs").hidden = true;
    return;
  }
  try {
    const page = await api(
      `/v1/sessions/${encodeURIComponent(state.session)}/runs` +
        query({ limit: "30", page: more ? state.runsPage : null }),
    );
    const items = page.items.map(runItem);
    if (more) list.append(...items);
    else list.replaceChildren(...items);
    state.runsPage = page.next_page;
    $("more-runs").hidden = !page.next_page;
  } catch (error) {
    notice(`Runs: ${error.message}`);
  }
}

function runItem(run) {
  const item = el("li");
  item.dataset.id = run.run_id;
  item.title = run.run_id;
  if (run.run_id === state.run) item.classList.add("selected");
  const head = el("div");
  head.append(el("span", "id", run.run_id), document.createTextNode(" "));
  head.append(el("span", `badge ${run.status}`, run.status));
  item.append(head);
  item.append(
    el(
      "div",
      "sub",
      `${when(run.started_at)} · ${run.agent_id || "default agent"} · ${run.tool_call_count} tool call(s)`,
    ),
  );
  item.addEventListener("click", () => openRun(run.run_id));
  return item;
}

async function startRun(prompt) {
  try {
    const body = { prompt };
    if (state.session) body.session_id = state.session;
    const started = await api("/v1/runs", { method: "POST", body });
    $("prompt").value = "";
    state.session = started.session_id;
    await loadSessions();
    await selectSession(started.session_id);
    await openRun(started.run_id);
  } catch (error) {
    notice(`Start run: ${error.message}`);
  }
}

// -- the transcript, live --------------------------------------------------------------

// The stream is ahead of the run-status store, so the status it shows wins
// over the store's, in the header and in the run list alike.
function setStatus(status) {
  const badges = [$("run-status")];
  for (const li of $("run-list").children) {
    if (li.dataset.id === state.run) badges.push(...li.getElementsByClassName("badge"));
  }
  for (const badge of badges) {
    badge.hidden = !status;
    badge.textContent = status || "";
    badge.className = `badge ${status || ""}`;
  }
}

function setLive(on) {
  const live = $("live");
  live.hidden = false;
  live.textContent = on ? "live" : "ended";
  live.classList.toggle("ended", !on);
}

function block(className, who, text, ref) {
  const item = el("li", className);
  const head = el("div", "who", who);
  if (ref) head.append(" · ", el("span", "ref", ref));
  item.append(head);
  if (text !== undefined) item.append(el("div", "text", text));
  return item;
}

function renderEvent(event, tools) {
  const p = event.payload || {};
  switch (event.type) {
    case "user_message":
      return block("user", "user", (p.parts || []).join("\n"));
    case "thinking": {
      if (p.redacted) return block("thinking", "thinking (redacted)", "The provider hid this reasoning.");
      return block("thinking", p.signature ? "thinking · signed" : "thinking", p.text || "");
    }
    case "assistant_text":
      return block("assistant", "assistant", p.text);
    case "tool_use": {
      tools.set(p.id, p.name);
      const item = block("tool-use", `tool call · ${p.name}`, undefined, p.id);
      item.append(el("pre", null, pretty(p.input)));
      return item;
    }
    case "tool_result": {
      const name = tools.get(p.tool_use_id) || "tool";
      const item = block(
        p.is_error ? "tool-result error" : "tool-result",
        `${p.is_error ? "tool error" : "tool result"} · ${name}`,
        undefined,
        p.tool_use_id,
      );
      item.append(el("pre", null, pretty(p.content)));
      return item;
    }
    case "planner_note":
      return block("note", "planner note", p.text);
    case "run_started":
      return el("li", "status", `run started${p.agent_id ? ` · agent ${p.agent_id}` : ""}`);
    case "run_status_changed":
      return el("li", "status", `status → ${p.status}${p.phase ? ` (${p.phase})` : ""}${p.reason ? ` · ${p.reason}` : ""}`);
    case "usage":
      return el("li", "status", `usage · ${p.provider}/${p.model} · ${p.input_tokens} in, ${p.output_tokens} out`);
    case "run_completed":
      return el("li", "status final", `run completed${p.stop_reason ? ` (${p.stop_reason})` : ""}`);
    case "run_failed":
      return el("li", "status final failed", `run failed · ${p.error_kind}: ${p.message}`);
    case "run_canceled":
      return el("li", "status final", `run canceled${p.reason ? ` · ${p.reason}` : ""}`);
    default:
      return el("li", "status", event.type);
  }
}

// -- live views: the answer as it streams, tools as they run ---------------------------
// Live events (no SSE id) draw provisional items; the canonical event that settles their
// cause (the delta being answered, or the tool_use) removes them, so what stays is
// exactly the run's log, whatever was lost or came late.

const SETTLING = new Set([
  "thinking", "assistant_text", "tool_use", "usage", "tool_result",
  "run_completed", "run_failed", "run_canceled",
]);

class LiveItems {
  constructor(list) {
    this.list = list;
    this.items = new Map(); // cause -> {item, stream, blocks: Map(index -> {kind, node})}
    this.settled = new Set();
  }

  chunk(event) {
    const cause = event.causation_id;
    const p = event.payload || {};
    if (!cause || this.settled.has(cause)) return;
    let live = this.items.get(cause);
    if (!live || live.stream !== p.stream_id) {
      if (live) live.item.remove();
      const item = block("assistant streaming", "assistant · writing…");
      this.list.append(item);
      live = { item, stream: p.stream_id, blocks: new Map(), next: 0 };
      this.items.set(cause, live);
    }
    if (p.seq < live.next) return; // a repeat (a reconnected stream reads the answer again)
    live.next = p.seq + 1;
    for (const d of p.deltas || []) {
      let part = live.blocks.get(d.index);
      if (!part) {
        const className = d.kind === "thinking" ? "text thinking" : d.kind === "tool_input" ? "tool-input" : "text";
        const node = el(d.kind === "tool_input" ? "pre" : "div", className, "");
        if (d.kind === "tool_input") node.textContent = `${d.tool_name || "tool"} `;
        live.item.append(node);
        part = { kind: d.kind, node };
        live.blocks.set(d.index, part);
      }
      part.node.textContent += d.text;
    }
  }

  tool(event) {
    const cause = event.causation_id;
    const p = event.payload || {};
    if (!cause || this.settled.has(cause)) return;
    let live = this.items.get(cause);
    if (!live) {
      live = { item: el("li", "status tool-running"), stream: null, blocks: new Map() };
      this.list.append(live.item);
      this.items.set(cause, live);
    }
    live.item.textContent = event.type === "live_tool_started"
      ? `${p.name} running…`
      : `${p.name} finished in ${p.duration_ms} ms${p.is_error ? " (error)" : ""}`;
  }

  canonical(event) {
    if (STATUS_OF[event.type] && event.type !== "run_started") {
      for (const live of this.items.values()) live.item.remove();
      this.items.clear();
    }
    const cause = event.causation_id;
    if (!cause || !SETTLING.has(event.type)) return;
    this.settled.add(cause);
    const live = this.items.get(cause);
    if (live) live.item.remove();
    this.items.delete(cause);
  }
}

const STATUS_OF = {
  run_started: "pending",
  run_completed: "completed",
  run_failed: "failed",
  run_canceled: "canceled",
};

// The run's family: the runs it started through agents called as tools, and theirs.
async function showTree(runId) {
  const list = $("run-tree");
  list.replaceChildren();
  list.hidden = true;
  let tree;
  try {
    tree = await api(`/v1/runs/${encodeURIComponent(runId)}/tree`);
  } catch (error) {
    return; // the transcript matters more than the tree
  }
  if (state.run !== runId || tree.items.length < 2) return;
  for (const node of tree.items) {
    const item = el("li", node.run.run_id === runId ? "selected" : "");
    item.style.paddingLeft = `${node.depth * 1.2}em`;
    item.dataset.id = node.run.run_id;
    const link = el("button", "link", `${node.run.agent_id || "run"} · ${node.run.status}`);
    link.type = "button";
    link.title = node.run.run_id;
    link.addEventListener("click", () => openRun(node.run.run_id));
    item.append(link);
    list.append(item);
  }
  list.hidden = false;
}

async function openRun(runId) {
  if (state.stream) state.stream.abort();
  state.run = runId;
  setHash();
  for (const li of $("run-list").children) li.classList.toggle("selected", li.dataset.id === runId);
  const transcript = $("transcript");
  transcript.replaceChildren();
  $("run-info").textContent = `Run ${runId}`;
  try {
    const run = await api(`/v1/runs/${encodeURIComponent(runId)}`);
    setStatus(run.status);
    $("run-info").textContent = `Run ${run.run_id} · started ${when(run.started_at)}`;
  } catch (error) {
    notice(`Run: ${error.message}`);
    return;
  }
  showTree(runId);
  const controller = new AbortController();
  state.stream = controller;
  const tools = new Map();
  const liveItems = new LiveItems(transcript);
  let lastId = null;
  let ended = false;
  setLive(true);
  while (!ended && !controller.signal.aborted) {
    try {
      await readEvents(
        `/v1/runs/${encodeURIComponent(runId)}/events?live=true`,
        lastId,
        (kind, id, data) => {
          if (kind === "end") {
            ended = true;
            return;
          }
          if (kind === "error") return;
          const event = JSON.parse(data);
          if (kind === "live_chunk") return liveItems.chunk(event);
          if (kind.startsWith("live_tool_")) return liveItems.tool(event);
          lastId = id;
          liveItems.canonical(event);
          transcript.append(renderEvent(event, tools));
          if (event.type === "run_status_changed") setStatus(event.payload.status);
          else if (STATUS_OF[event.type]) setStatus(STATUS_OF[event.type]);
          // The usage projector applies it a moment after the log has it.
          else if (event.type === "usage") setTimeout(loadUsage, 1000);
        },
        controller.signal,
      );
    } catch (error) {
      if (controller.signal.aborted) return;
      if (error.status) {
        notice(`Events: ${error.message}`);
        break;
      }
    }
    if (!ended && !controller.signal.aborted) await new Promise((r) => setTimeout(r, 2000));
  }
  if (state.stream === controller) {
    setLive(false);
    state.stream = null;
  }
}

// -- wiring -------------------------------------------------------------------------------

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const droppedKey = params.has("key");
  if (droppedKey) {
    // Never used: out of the address bar (and this entry of the history) at once.
    params.delete("key");
    history.replaceState(null, "", `${location.pathname}${location.search}#${params}`);
  }
  return { droppedKey, session: params.get("session"), run: params.get("run") };
}

async function openWanted(wanted) {
  if (wanted.session) await selectSession(wanted.session);
  if (wanted.run) await openRun(wanted.run);
}

function setHash() {
  const params = new URLSearchParams();
  if (state.session) params.set("session", state.session);
  if (state.run) params.set("run", state.run);
  history.replaceState(null, "", `${location.pathname}${location.search}#${params}`);
}

async function start() {
  $("key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (await useKey($("key-input").value)) {
      $("key-input").value = "";
      await loadSessions();
      loadUsage();
      await openWanted(readHash());
    }
  });
  $("session-filter").addEventListener("submit", (e) => {
    e.preventDefault();
    loadSessions();
  });
  $("refresh-sessions").addEventListener("click", () => loadSessions());
  $("refresh-usage").addEventListener("click", () => loadUsage());
  $("more-sessions").addEventListener("click", () => loadSessions(true));
  $("refresh-runs").addEventListener("click", () => loadRuns());
  $("more-runs").addEventListener("click", () => loadRuns(true));
  $("run-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const prompt = $("prompt").value.trim();
    if (prompt) startRun(prompt);
  });

  const wanted = readHash();
  const signedIn = Boolean(state.key) && (await useKey(state.key));
  if (wanted.droppedKey) {
    notice("This link carried an API key; it was not used. Only a key you paste here signs you in.");
  }
  if (!signedIn) return;
  await loadSessions();
  loadUsage();
  await openWanted(wanted);
}

start();
