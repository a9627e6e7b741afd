// The dashboard page: the stock phoenix client and uPlot, both served from npm's install.
import {Socket} from "../vendor/phoenix/phoenix.mjs"
import uPlot from "../vendor/uplot/uPlot.esm.js"

const $ = (id) => document.getElementById(id)
const LABELS = {
  page_views: ["Page views", "/s"], signups: ["Sign-ups", "/s"], orders: ["Orders", "/s"],
  revenue: ["Revenue", "€/s"], checkout_ms: ["Checkout time, p99", "ms"], errors: ["Errors", "/s"],
}
const WIDTH = {"1m": 1, "1h": 60} // seconds per point
let windowName = "1m"
let lastFrame = null
let skipped = 0
const charts = {}

// the socket under this page's own path: the page works mounted anywhere
const socketPath = new URL("socket", document.baseURI).pathname
const socket = new Socket(socketPath, {longPollFallbackMs: 2500})
socket.onOpen(() => setStatus("online"))
socket.onError(() => setStatus("reconnecting"))
socket.onClose(() => setStatus("reconnecting"))
socket.connect()

const channel = socket.channel("analytics:live", {})
channel.on("state", (frame) => show(frame))
channel.join()
  .receive("ok", ({frame}) => { lastFrame = null; show(frame) })
  .receive("error", ({reason}) => setStatus(`refused: ${reason}`))

$("incident").addEventListener("click", () => {
  channel.push("incident", {seconds: 15})
    .receive("ok", () => { $("incident-error").textContent = "" })
    .receive("error", ({reason}) => { $("incident-error").textContent = reason })
})

for (const name of Object.keys(WIDTH)) {
  $(`window-${name}`).addEventListener("click", () => {
    windowName = name
    for (const other of Object.keys(WIDTH)) $(`window-${other}`).classList.toggle("on", other === name)
    for (const key of Object.keys(charts)) { charts[key].destroy(); delete charts[key] }
    $("cards").replaceChildren()
    if (lastFrame) draw(lastFrame)
  })
}

function show(frame) {
  if (lastFrame && frame.seq > lastFrame.seq + 1) skipped += frame.seq - lastFrame.seq - 1
  if (lastFrame && frame.seq <= lastFrame.seq && frame.seq !== 0) return // an old frame
  lastFrame = frame
  $("seq").textContent = frame.seq
  $("age").textContent = frame.newest ? `${Math.max(0, Date.now() - frame.newest)} ms` : "–"
  $("skipped").textContent = skipped
  const sum = (counts) => Object.entries(counts).filter(([k]) => k !== "revenue" && k !== "checkout_ms")
    .reduce((total, [, n]) => total + n, 0)
  $("made").textContent = sum(frame.made).toLocaleString()
  $("counted").textContent = sum(frame.counted).toLocaleString()
  $("lost").textContent = frame.lost
  $("incident-state").hidden = !frame.incident
  draw(frame)
}

function draw(frame) {
  const width = WIDTH[windowName]
  for (const [name, windows] of Object.entries(frame.metrics)) {
    const data = windows[windowName]
    if (!data) continue
    const [label, unit] = LABELS[name] || [name, ""]
    // per second, without the bucket still filling (the last one)
    const series = data.series.slice(0, -1)
    const perSecond = name === "checkout_ms" ? series : series.map((v) => v / width)
    const end = (Math.floor(frame.at / 1000 / width) - 1) * width
    const xs = perSecond.map((_, i) => end - (perSecond.length - 1 - i) * width)
    let card = charts[name]
    if (!card) card = charts[name] = makeCard(name, label, unit)
    const latest = perSecond.length ? perSecond[perSecond.length - 1] : 0 // the last full one
    card.now.innerHTML = name === "checkout_ms"
      ? `${data.p50} <small>ms p50</small> · ${data.p99} <small>ms p99</small>`
      : `${format(latest)} <small>${unit} · ${format(data.total ?? data.count)} in the window</small>`
    card.plot.setData([xs, perSecond])
  }
}

function makeCard(name, label, unit) {
  const element = document.createElement("article")
  element.className = "card"
  element.dataset.metric = name
  const title = document.createElement("h2")
  title.textContent = label
  const now = document.createElement("p")
  now.className = "now"
  element.append(title, now)
  $("cards").append(element)
  const plot = new uPlot({
    width: Math.max(280, element.clientWidth - 32), height: 150, legend: {show: false},
    scales: {x: {time: true}}, axes: [{}, {size: 60}],
    series: [{}, {label, stroke: "#6d3bd8", width: 2, fill: "rgba(109,59,216,.08)"}],
  }, [[], []], element)
  return {element, now, plot, destroy: () => { plot.destroy(); element.remove() }}
}

function format(n) {
  return n >= 100 ? Math.round(n).toLocaleString() : (Math.round(n * 10) / 10).toLocaleString()
}

function setStatus(text) {
  $("status").textContent = text
  $("status").dataset.state = text
}
