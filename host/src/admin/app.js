// The management page: polls the admin API every second and redraws. Rates are the change in
// request counts between two polls.
"use strict";

const POLL_MS = 1000;
let token = sessionStorage.getItem("wasmgate-admin-token") || "";
let previous = null; // { at, total, routes: { name: total } }

const $ = (id) => document.getElementById(id);

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function api(path, options = {}) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    $("token-form").hidden = false;
    throw new Error("the admin API needs its token");
  }
  const body = await response.json();
  if (!response.ok && !body.result) throw new Error(body.message || response.statusText);
  return body;
}

function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

function rate(now, count, before) {
  if (!previous || before === undefined) return "–";
  const elapsed = (now - previous.at) / 1000;
  return elapsed > 0 ? ((count - before) / elapsed).toFixed(1) : "–";
}

function drawStatus(status, routes, now) {
  $("version").textContent = status.version;
  $("uptime").textContent = duration(status.uptime_seconds);
  $("connections").textContent = status.connections.open;
  $("requests").textContent = status.requests.total;
  $("rate").textContent = rate(now, status.requests.total, previous && previous.total) + " req/s";
  const last = status.reloads.last;
  const error = $("reload-error");
  if (!last) {
    $("reload-state").textContent = "none since start";
    error.hidden = true;
  } else if (last.ok) {
    $("reload-state").textContent = "ok at " + last.at;
    error.hidden = true;
  } else {
    $("reload-state").textContent = "FAILED at " + last.at + "; the previous version keeps serving";
    error.textContent = last.error;
    error.hidden = false;
  }

  const body = $("routes");
  body.replaceChildren();
  for (const route of routes) {
    const tr = document.createElement("tr");
    tr.dataset.route = route.name;
    const before = previous ? previous.routes[route.name] : undefined;
    tr.append(
      cell(route.name),
      cell(route.prefix),
      cell(route.upstream),
      cell(route.plugins.join(" → ") || "none"),
      cell(route.requests.total, "num requests"),
      cell(route.requests["2xx"], "num"),
      cell(route.requests["4xx"], "num"),
      cell(route.requests["5xx"], "num"),
      cell(rate(now, route.requests.total, before), "num rate"),
    );
    body.append(tr);
  }
}

function drawPlugins(plugins) {
  const body = $("plugins");
  body.replaceChildren();
  for (const plugin of plugins) {
    const tr = document.createElement("tr");
    tr.dataset.plugin = plugin.route + "/" + plugin.name;
    tr.dataset.state = plugin.state;
    const sha = document.createElement("td");
    const code = document.createElement("code");
    code.textContent = plugin.sha256 ? plugin.sha256.slice(0, 12) : "–";
    code.title = plugin.sha256 || "";
    sha.append(code);
    tr.append(
      cell(plugin.route),
      cell(plugin.name),
      cell(plugin.state, "state " + plugin.state),
      sha,
      cell(plugin.loaded_at || "–"),
      cell(plugin.failure_policy || "–"),
      cell(plugin.error || "", "error"),
    );
    body.append(tr);
  }
}

async function poll() {
  try {
    const [status, routes, plugins] = await Promise.all([
      api("/status"),
      api("/routes"),
      api("/plugins"),
    ]);
    const now = Date.now();
    drawStatus(status, routes, now);
    drawPlugins(plugins);
    previous = {
      at: now,
      total: status.requests.total,
      routes: Object.fromEntries(routes.map((r) => [r.name, r.requests.total])),
    };
    $("problem").hidden = true;
  } catch (e) {
    $("problem").textContent = "Cannot read the admin API: " + e.message;
    $("problem").hidden = false;
  }
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value;
  sessionStorage.setItem("wasmgate-admin-token", token);
  $("token-form").hidden = true;
  poll();
});

$("reload").addEventListener("click", async () => {
  try {
    await api("/reload", { method: "POST" });
  } catch (e) {
    $("problem").textContent = "Reload: " + e.message;
    $("problem").hidden = false;
  }
  poll();
});

poll();
setInterval(poll, POLL_MS);
