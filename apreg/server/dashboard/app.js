// The apreg dashboard: status polled every 2 s, changes followed live through /v1/watch, an app's instances
// fetched only when it is opened, and the admin actions /v1/session lists for the logged-in user (none without
// --users). Plain DOM, no dependencies.
"use strict";

const MAX_CHANGES = 100;
const opened = new Set();  // apps whose instances are shown
let appsTimer = null;
let actions = [];  // {name, label, method, path} the server would take from this user

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

async function getJSON(path) {
  const response = await fetch(path, {headers: {Accept: "application/json"}});
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function ago(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function when(time) {  // an ISO string or milliseconds
  return time ? new Date(time).toLocaleTimeString() : "?";
}

function showStatus(status) {
  document.getElementById("node").textContent = `${status.node_id} · ${status.url}`;
  document.title = `apreg ${status.node_id}`;
  const sync = status.in_sync ? el("span", {class: "ok"}, "in sync") : el("span", {class: "bad"}, "not in sync");
  document.getElementById("summary").replaceChildren(
    sync, ` · up ${ago(status.uptime_s)} · ${status.instances} instances · ${status.conflicts} conflicts`);
  const rows = status.peers.map(p => el("tr", {},
    el("td", {}, p.url),
    el("td", {class: p.reachable ? "ok" : "bad"}, p.reachable ? "yes" : "no"),
    el("td", {}, p.stream ? "up" : "down"),
    el("td", {class: "muted"}, p.last_error || "")));
  document.querySelector("#peers tbody").replaceChildren(...rows);
  if (!rows.length) document.querySelector("#peers tbody").append(el("tr", {}, el("td", {colspan: 4}, "none")));
  showEurekaPeers(status.eureka_peers || []);
  showPreservation(status.self_preservation);
}

function showEurekaPeers(peers) {
  document.getElementById("eureka").hidden = !peers.length;
  const rows = peers.map(p => el("tr", {"data-eureka-peer": p.url},
    el("td", {}, p.url),
    el("td", {class: p.reachable ? "ok" : "bad"}, p.reachable ? "yes" : "no"),
    el("td", {}, p.queued), el("td", {}, p.sent), el("td", {}, p.refused), el("td", {}, p.dropped),
    el("td", {}, p.backoff_s ? `${p.backoff_s} s` : "-"),
    el("td", {class: "muted"}, p.last_error ? `${p.last_error} (${when(p.last_error_at * 1000)})` : "")));
  document.querySelector("#eureka-peers tbody").replaceChildren(...rows);
}

function showPreservation(sp) {
  const banner = document.getElementById("preservation");
  const text = document.getElementById("preservation-text");
  if (sp.active) {
    banner.hidden = false;
    banner.textContent = `Self-preservation is ON since ${when(sp.since)}: expired instances are not evicted.`;
    text.textContent = `Engaged because ${sp.reason}. It holds at least until ${when(sp.holds_until)} and ` +
      `releases by ${when(sp.releases_by)} at the latest if the silent instances stay silent.`;
    return;
  }
  banner.hidden = true;
  if (!sp.enabled) text.textContent = "Disabled (--no-self-preservation): expired leases are always evicted.";
  else if (!sp.expected) text.textContent = "Off: no live lease to expect renewals from yet.";
  else text.textContent = `Off: ${sp.renewals_in_window} renewals seen in the last window, ` +
    `${sp.threshold} needed (${sp.expected} expected from ${sp.instances} instances).`;
}

async function refreshStatus() {
  try {
    showStatus(await getJSON("/v1/status"));
  } catch (error) {
    document.getElementById("summary").replaceChildren(el("span", {class: "bad"}, `unreachable: ${error.message}`));
  }
}

async function refreshApps() {
  appsTimer = null;
  const summary = await getJSON("/v1/apps");
  document.getElementById("app-count").textContent = `(${summary.apps.length})`;
  const body = document.querySelector("#apps tbody");
  const rows = [];
  for (const app of summary.apps) {
    const name = el("td", {class: "app", "data-app": app.app}, app.app);
    name.addEventListener("click", () => toggle(app.app));
    const statuses = Object.entries(app.status).map(([s, n]) => el("span", {class: "status"}, `${s} ${n}`));
    rows.push(el("tr", {"data-app-row": app.app}, name, el("td", {}, app.instances), el("td", {}, ...statuses)));
    if (opened.has(app.app)) rows.push(await instancesRow(app.app));
  }
  body.replaceChildren(...rows);
}

function scheduleApps() {
  if (appsTimer === null) appsTimer = setTimeout(() => refreshApps().catch(console.warn), 250);
}

async function instancesRow(app) {
  const doc = await getJSON(`/eureka/apps/${encodeURIComponent(app)}`);
  const instances = [].concat(doc.application.instance || []);
  const lines = instances.map(i => {
    const meta = Object.entries(i.metadata || {}).filter(([k]) => k !== "@class" && k !== "zone").map(([k, v]) => `${k}=${v}`);
    return el("div", {"data-instance": i.instanceId},
              `${i.instanceId} ${i.status} ${i.hostName}:${i.port.$} zone=${(i.metadata || {}).zone || "-"}`,
              el("span", {class: "muted"}, meta.length ? ` · ${meta.join(", ")}` : ""),
              ...actions.map(action => actionButton(action, app, i.instanceId)));
  });
  return el("tr", {class: "instances"}, el("td", {colspan: 3}, ...lines));
}

function actionButton(action, app, id) {
  const button = el("button", {type: "button", "data-action": action.name}, action.label);
  button.addEventListener("click", event => {
    event.stopPropagation();
    if (action.name === "deregister" && !confirm(`Deregister ${app}/${id}?`)) return;
    act(action, app, id).catch(console.warn);
  });
  return button;
}

async function act(action, app, id) {
  const path = action.path.replace("{app}", encodeURIComponent(app)).replace("{id}", encodeURIComponent(id));
  const response = await fetch(path, {method: action.method, headers: {Accept: "application/json"}});
  const problem = document.getElementById("action-error");
  problem.hidden = response.ok;
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    problem.textContent = `${action.label} ${app}/${id}: HTTP ${response.status} ${body.detail || ""}`;
  }
  await refreshApps();
}

function showSession(session) {
  actions = session.actions;
  document.getElementById("session").textContent = !session.users ? "· read-only (no --users)"
    : `· ${session.user} (${session.role})${actions.length ? "" : ", read-only"}`;
}

function toggle(app) {
  if (opened.has(app)) opened.delete(app); else opened.add(app);
  refreshApps().catch(console.warn);
}

function showChange(change) {
  const list = document.getElementById("changes");
  const time = new Date(change.applied_ms).toLocaleTimeString();
  list.prepend(el("li", {"data-seq": change.seq}, `${time} ${change.action} ${change.app}/${change.instance_id}`));
  while (list.children.length > MAX_CHANGES) list.lastElementChild.remove();
}

async function start() {
  const status = await getJSON("/v1/status");
  showStatus(status);
  showSession(await getJSON("/v1/session"));
  await refreshApps();
  const stream = new EventSource(`/v1/watch?since=${Math.max(0, status.feed_seq - MAX_CHANGES)}`);
  stream.addEventListener("change", event => {
    showChange(JSON.parse(event.data));
    scheduleApps();
  });
  stream.addEventListener("resync", scheduleApps);
  setInterval(refreshStatus, 2000);
}

start().catch(error => {
  document.getElementById("summary").replaceChildren(el("span", {class: "bad"}, error.message));
});
