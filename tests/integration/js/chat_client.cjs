// The stock phoenix client (require("phoenix"), from node_modules) against the chat demo.
//
//   node --experimental-websocket chat_client.cjs http://127.0.0.1:PORT [longpoll]
//
// (the flag: Node 20). With "longpoll", both members use the client's LongPoll transport
// (plain HTTP requests) instead of a WebSocket.
//
// Driven by tests/integration/test_chat_phoenix_js.py. It prints one JSON object per line
// on stdout for each step and each event it sees, and reads lines on stdin: after
// {"event": "ready_for_restart"} the test restarts the server on the same port and writes
// "restarted"; the client must reconnect and rejoin by itself. Exits 0 after
// {"event": "done"}, 1 after {"event": "failed", "why": ...}.
"use strict"

const readline = require("node:readline")
const {LongPoll, Presence, Socket} = require("phoenix")

const url = process.argv[2]
const overLongPoll = process.argv[3] === "longpoll"
const topic = "room:node"
const WAIT_MS = 45000 // for each step; only reached when something is broken

// -- what happened, and waiting for it --------------------------------------------------------

const seen = []
const waiting = []

function say(event, data = {}) {
  const entry = {event, ...data}
  process.stdout.write(JSON.stringify(entry) + "\n")
  seen.push(entry)
  for (const waiter of [...waiting]) {
    if (waiter.matches(entry)) {
      waiting.splice(waiting.indexOf(waiter), 1)
      waiter.resolve(entry)
    }
  }
}

// The first event that matches, among those seen since `since` and those to come.
function waitFor(what, matches, since = 0) {
  const found = seen.slice(since).find(matches)
  if (found) return Promise.resolve(found)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${WAIT_MS} ms`)), WAIT_MS)
    waiting.push({matches, resolve: (entry) => { clearTimeout(timer); resolve(entry) }})
  })
}

function replyOf(push, what) {
  return new Promise((resolve, reject) => {
    push
      .receive("ok", resolve)
      .receive("error", (reply) => reject(new Error(`${what} refused: ${JSON.stringify(reply)}`)))
      .receive("timeout", () => reject(new Error(`${what}: no reply`)))
  })
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)

// -- the WebSocket the client uses --------------------------------------------------------------

// Node 20's WebSocket (undici) fires "error" but never "close" when a connection cannot be
// made (the server is down), and stays CONNECTING; the phoenix client reconnects on
// "close", so it would wait forever (nodejs/undici#3546; browsers and Node 22 follow the
// WHATWG spec). This WebSocket adds what the spec says: after such an error, the socket is
// CLOSED and "close" fires with code 1006. Where Node already does it, it changes nothing.
class SpecWebSocket extends WebSocket {
  #failed = false

  constructor(url, protocols) {
    super(url, protocols)
    this.addEventListener("error", () => {
      if (this.#failed || super.readyState !== WebSocket.CONNECTING) return
      this.#failed = true
      this.dispatchEvent(Object.assign(new Event("close"), {code: 1006, reason: "", wasClean: false}))
    })
  }

  get readyState() {
    return this.#failed ? WebSocket.CLOSED : super.readyState
  }
}

// -- a member of the room ---------------------------------------------------------------------

function member(name) {
  const socket = new Socket(url.replace(/^http/, "ws") + "/socket", {
    transport: overLongPoll ? LongPoll : SpecWebSocket,
    // quicker than the defaults (up to 5 s between attempts), so the test stays short
    reconnectAfterMs: (tries) => [50, 100, 200][tries - 1] || 500,
    rejoinAfterMs: (tries) => [100, 200][tries - 1] || 500,
    // CHAT_CLIENT_DEBUG=1 prints the client's own log (to stderr)
    logger: process.env.CHAT_CLIENT_DEBUG
      ? (kind, msg, data) => console.error(`${name} ${kind}: ${msg}`, data === undefined ? "" : JSON.stringify(data))
      : null,
  })
  const channel = socket.channel(topic, {username: name})
  const presence = new Presence(channel)
  let joinCount = 0
  presence.onSync(() => say("online", {who: name, users: presence.list((key) => key).sort()}))
  channel.on("presence_diff", ({joins, leaves}) =>
    say("presence_diff", {who: name, joins: Object.keys(joins), leaves: Object.keys(leaves)}))
  channel.on("new_msg", (message) => say("new_msg", {who: name, ...message}))
  socket.onClose(() => say("socket_closed", {who: name}))
  socket.onError(() => say("socket_error", {who: name}))
  socket.connect()
  channel.join()  // its "ok" hook runs again after every rejoin
    .receive("ok", ({messages}) => {
      joinCount += 1
      say(joinCount === 1 ? "joined" : "rejoined", {who: name, history: messages.map((m) => m.body)})
    })
    .receive("error", (reply) => say("join_refused", {who: name, reply}))
  return {name, socket, channel}
}

// -- the scenario -----------------------------------------------------------------------------

async function main() {
  const restarted = new Promise((resolve) => {
    readline.createInterface({input: process.stdin}).on("line", (line) => {
      if (line.trim() === "restarted") resolve()
    })
  })

  const ada = member("ada")
  await waitFor("ada's join", (e) => e.event === "joined" && e.who === "ada")
  await waitFor("ada online", (e) => e.event === "online" && e.who === "ada" && same(e.users, ["ada"]))

  const bob = member("bob")
  await waitFor("bob's join", (e) => e.event === "joined" && e.who === "bob")
  await waitFor("bob's join diff", (e) => e.event === "presence_diff" && e.who === "ada" && same(e.joins, ["bob"]))
  await waitFor("bob online for ada", (e) => e.event === "online" && e.who === "ada" && same(e.users, ["ada", "bob"]))

  const reply = await replyOf(ada.channel.push("new_msg", {body: "hello from node"}), "new_msg")
  say("reply", {who: "ada", status: "ok", id: reply.id})
  await waitFor("the broadcast to bob", (e) => e.event === "new_msg" && e.who === "bob" && e.id === reply.id)

  const beforeLeave = seen.length
  await replyOf(bob.channel.leave(), "leave")
  bob.socket.disconnect()
  await waitFor("bob's leave diff", (e) => e.event === "presence_diff" && e.who === "ada" && same(e.leaves, ["bob"]))
  await waitFor("bob gone for ada", (e) => e.event === "online" && e.who === "ada" && same(e.users, ["ada"]), beforeLeave)

  const beforeRestart = seen.length
  say("ready_for_restart")
  await waitFor("the connection to drop", (e) => e.who === "ada" && ["socket_closed", "socket_error"].includes(e.event))
  say("disconnected")
  await restarted
  say("told_restarted")
  const rejoined = await waitFor("ada's rejoin", (e) => e.event === "rejoined" && e.who === "ada")
  if (!same(rejoined.history, ["hello from node"])) {
    throw new Error(`the new server should have kept the history, got ${JSON.stringify(rejoined.history)}`)
  }

  const after = await replyOf(ada.channel.push("new_msg", {body: "after the restart"}), "new_msg")
  say("reply_after_restart", {who: "ada", status: "ok", id: after.id})
  await waitFor("the broadcast after the restart", (e) => e.event === "new_msg" && e.id === after.id)
  await waitFor("ada online again", (e) => e.event === "online" && e.who === "ada" && same(e.users, ["ada"]), beforeRestart)
  say("done")
}

main().then(
  () => process.exit(0),
  (error) => { say("failed", {why: String(error && error.stack || error)}); process.exit(1) },
)
