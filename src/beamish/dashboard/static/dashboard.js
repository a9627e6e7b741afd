// The dashboard page: a Phoenix V2 socket of its own (JSON arrays over a WebSocket), one
// channel, "dashboard:live", and two pages drawn from what the channel pushes.
"use strict";

const COLUMNS = [
  ["pid", "pid"], ["name", "name"], ["message_queue_len", "mailbox"], ["memory", "memory"],
  ["messages_handled", "messages"], ["current_function", "current function"],
  ["status", "status"],
];
const token = document.body.dataset.token;
const base = location.pathname.replace(/\/+$/, "");
let socket = null, ref = 0, joinRef = null, replies = new Map();
let query = { sort: "pid", descending: false, search: "", page: 0 }, shown = null, pages = 1;
let view = "home";

function send(event, payload) {
  const id = String(++ref);
  socket.send(JSON.stringify([joinRef, id, "dashboard:live", event, payload]));
  return new Promise((resolve) => replies.set(id, resolve));
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${location.host}${base}/live/websocket?vsn=2.0.0&token=` +
    encodeURIComponent(token);
  socket = new WebSocket(url);
  socket.onopen = () => {
    joinRef = String(++ref);
    socket.send(JSON.stringify([joinRef, joinRef, "dashboard:live", "phx_join", {}]));
  };
  socket.onmessage = (frame) => {
    const [, id, , event, payload] = JSON.parse(frame.data);
    if (event === "phx_reply") {
      if (id === joinRef) {
        status(payload.status === "ok" ? "live" : "refused");
        if (view !== "home") send("view", { view });
        if (view === "logs") watchLogs();
      }
      const resolve = replies.get(id);
      if (resolve) { replies.delete(id); resolve(payload); }
    } else if (event === "home") drawHome(payload);
    else if (event === "processes") drawProcesses(payload);
    else if (event === "applications") drawApplications(payload.applications);
    else if (event === "sockets") drawSockets(payload);
    else if (event === "data") drawPools(payload.pools);
    else if (event === "log") addLog(payload);
    else if (event === "metrics") drawMetrics(payload.metrics);
    else if (event === "node_error") status(`${payload.node}: ${payload.reason}`);
  };
  socket.onclose = () => { status("disconnected; retrying"); setTimeout(connect, 2000); };
  setInterval(() => socket.readyState === 1 &&
    socket.send(JSON.stringify([null, String(++ref), "phoenix", "heartbeat", {}])), 30000);
}

function status(text) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.classList.toggle("live", text === "live");
}

function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function drawNodes(all, viewing) {
  const select = document.getElementById("node");
  const current = [...select.options].map((o) => o.value).join(" ");
  if (current !== all.join(" ")) {
    select.replaceChildren(...all.map((name) => {
      const option = document.createElement("option");
      option.value = option.textContent = name;
      return option;
    }));
  }
  select.value = viewing;
}

function drawHome(h) {
  if (h.nodes) drawNodes(h.nodes, h.viewing);
  const cards = [
    ["node", h.node], ["uptime", `${Math.floor(h.uptime)} s`],
    ["processes", `${h.processes.toLocaleString()} / ${h.process_limit.toLocaleString()}`],
    ["run queue", h.run_queue], ["memory (node)", bytes(h.memory)],
    ["messages", h.messages.toLocaleString()], ["crashed", h.crashed],
    ["long schedules", h.long_schedules], ["python", h.python], ["os pid", h.os_pid],
    ["cpu (machine)", `${h.cpu_percent.toFixed(0)} %`],
    ["load", h.load.map((l) => l.toFixed(2)).join(" ")],
    ["memory available", `${bytes(h.os_memory_available)} / ${bytes(h.os_memory_total)}`],
    ["disk free", `${bytes(h.disk_free)} / ${bytes(h.disk_total)}`],
    ["platform", h.platform],
  ];
  drawCards("cards", cards);
}

function drawCards(id, cards) {
  document.getElementById(id).replaceChildren(...cards.map(([label, value]) => {
    const card = document.createElement("div");
    card.className = "card";
    card.dataset.card = label;
    const l = document.createElement("div"); l.className = "label"; l.textContent = label;
    const v = document.createElement("div"); v.className = "value"; v.textContent = value;
    card.append(l, v);
    return card;
  }));
}

function drawHead() {
  const head = document.getElementById("head");
  head.replaceChildren(...COLUMNS.map(([key, label]) => {
    const th = document.createElement("th");
    th.textContent = label + (query.sort === key ? (query.descending ? " ↓" : " ↑") : "");
    th.classList.toggle("sorted", query.sort === key);
    th.onclick = () => {
      query = { ...query, descending: query.sort === key ? !query.descending : key !== "pid" &&
        key !== "name", sort: key, page: 0 };
      ask();
    };
    return th;
  }));
}

function drawProcesses(p) {
  pages = p.pages;
  const rows = document.getElementById("rows");
  rows.replaceChildren(...p.rows.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.pid = r.pid;
    for (const [key] of COLUMNS) {
      const td = document.createElement("td");
      td.textContent = key === "memory" ? bytes(r[key]) : r[key];
      tr.append(td);
    }
    tr.onclick = () => details(r.pid);
    return tr;
  }));
  document.getElementById("count").textContent =
    `${p.matching.toLocaleString()} of ${p.total.toLocaleString()} processes` +
    (p.partial ? ` (sorted and searched among the first ${p.scanned.toLocaleString()})` : "");
  document.getElementById("pageno").textContent = `page ${p.page + 1} of ${p.pages}`;
}

function ask() { drawHead(); send("query", query); }

function drawNode(node) {
  const li = document.createElement("li");
  li.className = node.type;
  const label = document.createElement("span");
  label.className = "proc";
  label.dataset.pid = node.pid;
  label.dataset.id = node.id;
  label.textContent = node.name || node.id;
  const pid = document.createElement("span");
  pid.className = "pid";
  pid.textContent = node.pid + (node.unreachable ? " (did not answer)" : "");
  label.onclick = () => details(node.pid);
  li.append(label, pid);
  if (node.children.length || node.more) {
    const ul = document.createElement("ul");
    ul.append(...node.children.map(drawNode));
    if (node.more) {
      const more = document.createElement("li");
      more.textContent = `… and ${node.more} more`;
      ul.append(more);
    }
    li.append(ul);
  }
  return li;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function drawSockets(s) {
  const cards = [["connections", s.total.toLocaleString()],
    ["topics", s.topic_count.toLocaleString()],
    ...Object.entries(s.by_socket).map(([k, n]) => [k, n.toLocaleString()])];
  drawCards("socket-cards", cards);
  document.getElementById("presences").replaceChildren(...s.presences.flatMap((p) =>
    p.fullest.map((t) => {
      const tr = document.createElement("tr");
      tr.dataset.topic = t.topic;
      tr.append(cell(p.tracker), cell(t.topic), cell(t.keys));
      return tr;
    })));
  document.getElementById("pubsub-topics").replaceChildren(...(s.pubsub || []).flatMap((p) =>
    p.busiest.map((t) => {
      const tr = document.createElement("tr");
      tr.append(cell(p.pubsub), cell(t.topic), cell(t.subscribers));
      return tr;
    })));
  document.getElementById("topics").replaceChildren(...s.topics.map((t) => {
    const tr = document.createElement("tr");
    tr.append(cell(t.topic), cell(t.channels));
    return tr;
  }));
  document.getElementById("connections").replaceChildren(...s.connections.map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.pid = c.pid;
    tr.append(cell(c.pid), cell(c.socket), cell(c.transport), cell(c.id ?? ""),
      cell(c.channels), cell(c.topics.join(", ")), cell(c.message_queue_len));
    tr.onclick = () => details(c.pid);
    return tr;
  }));
}

// -- the Metrics page: a chart per metric (uPlot, when the server serves it), else a table
const POINTS = 120, LINES = 5;
const charts = new Map();  // metric name -> {times, series: Map(key -> {values, last}), plot}

if (document.body.dataset.charts) {
  const css = document.createElement("link");
  css.rel = "stylesheet"; css.href = "vendor/uplot.css";
  const js = document.createElement("script");
  js.src = "vendor/uplot.js";
  document.head.append(css, js);
}

function plotted(kind, row, previous, seconds) {
  if (kind === "last_value") return row.value;
  if (kind === "counter" || kind === "sum") {
    return previous === undefined || seconds <= 0 ? 0 : (row.value - previous.value) / seconds;
  }
  if (previous === undefined || row.count === previous.count) return 0;
  return (row.sum - previous.sum) / (row.count - previous.count);  // the mean of the new ones
}

function drawMetrics(metrics) {
  const now = Date.now() / 1000;
  document.getElementById("metrics-note").textContent = window.uPlot ? "" :
    "charts need uPlot (Dashboard(chart_assets=...)); the figures now:";
  const box = document.getElementById("charts");
  for (const metric of metrics) {
    let chart = charts.get(metric.name);
    if (!chart) {
      const holder = document.createElement("div");
      holder.className = "chart";
      holder.dataset.metric = metric.name;
      const title = document.createElement("h3");
      const shown = metric.unit === "seconds" ? "ms" : (metric.unit || "");
      const unit = metric.kind === "counter" || metric.kind === "sum" ? "per second" :
        metric.kind === "last_value" ? shown : `mean ${shown}`;
      title.textContent = `${metric.name} (${unit.trim()})`;
      title.title = metric.description;
      const area = document.createElement("div");
      const caption = document.createElement("p");
      caption.className = "caption";
      holder.append(title, area, caption);
      box.append(holder);
      chart = { times: [], series: new Map(), holder, area, caption, plot: null, keys: "" };
      charts.set(metric.name, chart);
    }
    const seconds = chart.times.length ? now - chart.times[chart.times.length - 1] : 0;
    chart.times.push(now);
    const total = metric.series_total ?? metric.series.length;
    chart.caption.textContent = total > LINES ?
      `the ${LINES} largest of ${total} series drawn; /metrics has them all` : "";
    for (const row of metric.series.slice(0, LINES)) {
      const key = Object.entries(row.labels).map(([k, v]) => `${k}=${v}`).join(" ") || "all";
      let line = chart.series.get(key);
      if (!line) {
        line = { values: new Array(chart.times.length - 1).fill(null), last: undefined };
        chart.series.set(key, line);
      }
      const scale = metric.unit === "seconds" && metric.kind !== "counter" ? 1000 : 1;
      line.values.push(plotted(metric.kind, row, line.last, seconds) * scale);
      line.last = row;
    }
    for (const line of chart.series.values()) {
      while (line.values.length < chart.times.length) line.values.push(null);
      while (line.values.length > POINTS) line.values.shift();
    }
    while (chart.times.length > POINTS) chart.times.shift();
    const first = chart.series.values().next().value;
    chart.holder.dataset.points = String(chart.times.length);
    chart.holder.dataset.last = first ? String(first.values[first.values.length - 1] ?? 0) : "";
    render(chart, metric);
  }
}

function render(chart, metric) {
  const keys = [...chart.series.keys()];
  if (!window.uPlot) {
    chart.area.textContent = keys.map((k) => {
      const row = chart.series.get(k).last;
      return `${k}: ${row.value ?? `${row.count} observations, sum ${row.sum}`}`;
    }).join("\n") || "no events yet";
    return;
  }
  const data = [chart.times, ...keys.map((k) => chart.series.get(k).values)];
  if (chart.plot && chart.keys === keys.join("|")) { chart.plot.setData(data); return; }
  if (chart.plot) chart.plot.destroy();
  const colors = ["#5b3cc4", "#1b7f3b", "#b3261e", "#8a5a00", "#0b6bcb"];
  chart.plot = new window.uPlot({
    width: 520, height: 180, legend: { show: keys.length > 0 },
    series: [{}, ...keys.map((k, i) => ({ label: k, stroke: colors[i % colors.length] }))],
  }, data, chart.area);
  chart.keys = keys.join("|");
}

function addLog(line) {
  const box = document.getElementById("log-lines");
  const row = document.createElement("div");
  row.className = `log ${line.level}`;
  const when = new Date(line.time * 1000).toISOString().slice(11, 23);
  const dropped = line.dropped ? `(${line.dropped} dropped) ` : "";
  row.textContent = `${dropped}${when} ${line.level.toUpperCase()} ${line.pid} ` +
    `${line.request_id ? "req=" + line.request_id + " " : ""}${line.logger}: ${line.message}`;
  box.append(row);
  while (box.children.length > 500) box.firstChild.remove();
}

function watchLogs() {
  send("logs", { match: document.getElementById("log-match").value,
    level: document.getElementById("log-level").value });
}

function drawPools(pools) {
  const keys = ["pool", "size", "connected", "idle", "in_use", "waiting", "checkouts",
    "timeouts", "overloads", "connect_errors", "disconnects", "last_connect_error"];
  document.getElementById("pools").replaceChildren(...pools.map((p) => {
    const tr = document.createElement("tr");
    tr.dataset.pool = p.pool;
    tr.append(...keys.map((k) => cell(p[k] ?? "")));
    return tr;
  }));
}

function drawApplications(apps) {
  document.getElementById("trees").replaceChildren(...apps.map((app) => {
    const box = document.createElement("div");
    box.className = "app";
    box.dataset.app = app.name;
    const h = document.createElement("h2");
    h.textContent = `${app.name} (${app.status})`;
    box.append(h);
    if (app.tree) {
      const ul = document.createElement("ul");
      ul.className = "tree";
      ul.append(drawNode(app.tree));
      box.append(ul);
    }
    return box;
  }));
}

async function details(pid) {
  shown = pid;
  const reply = await send("details", { pid });
  const aside = document.getElementById("details");
  aside.hidden = false;
  document.getElementById("details-title").textContent = pid;
  document.getElementById("details-body").textContent =
    JSON.stringify(reply.response, null, 2);
}

function page(name) {
  if (socket && socket.readyState === 1 && joinRef) {
    send("view", { view: name });
    if (name === "logs") watchLogs();
  }
  view = name;
  for (const section of document.querySelectorAll(".page")) section.hidden = section.id !== name;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === name);
}

document.getElementById("search").oninput = (e) => {
  query = { ...query, search: e.target.value, page: 0 };
  ask();
};
document.getElementById("prev").onclick = () => {
  if (query.page > 0) { query = { ...query, page: query.page - 1 }; ask(); }
};
document.getElementById("next").onclick = () => {
  if (query.page + 1 < pages) { query = { ...query, page: query.page + 1 }; ask(); }
};
document.getElementById("kill").onclick = async () => {
  const reply = await send("kill", { pid: shown });
  document.getElementById("details-body").textContent =
    reply.status === "ok" ? `${shown} was killed` : JSON.stringify(reply.response);
};
document.getElementById("node").onchange = (e) => send("node", { node: e.target.value });
document.getElementById("log-match").oninput = watchLogs;
document.getElementById("log-level").onchange = watchLogs;
document.getElementById("log-clear").onclick = () =>
  document.getElementById("log-lines").replaceChildren();
document.getElementById("close").onclick = () => { document.getElementById("details").hidden = true; };
window.onhashchange = () => page(location.hash.slice(1) || "home");
page(location.hash.slice(1) || "home");
drawHead();
connect();
