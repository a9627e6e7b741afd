// The chat page: the stock phoenix client, served by the demo from node_modules.
import {Presence, Socket} from "../vendor/phoenix/phoenix.mjs"

const $ = (id) => document.getElementById(id)
// Over LongPoll when a WebSocket cannot be opened within 2.5 s (a proxy that refuses them)
// the socket under this page's own path: the page works mounted anywhere (make run serves
// it at /chat/, beside the other examples)
const socket = new Socket(new URL("socket", document.baseURI).pathname, {longPollFallbackMs: 2500})
let channel = null
let username = ""

socket.onOpen(() => setStatus("online"))
socket.onError(() => setStatus("reconnecting"))
socket.onClose(() => setStatus("reconnecting"))
socket.connect()

$("username").value = localStorage.getItem("chat.username") || ""
if (location.hash.length > 1) $("room").value = decodeURIComponent(location.hash.slice(1))

$("join").addEventListener("submit", (event) => {
  event.preventDefault()
  username = $("username").value.trim()
  localStorage.setItem("chat.username", username)
  join($("room").value.trim() || "lobby")
})

$("leave").addEventListener("click", () => {
  channel.leave()
  channel = null
  showJoin("")
})

$("compose").addEventListener("submit", (event) => {
  event.preventDefault()
  const input = $("body")
  const body = input.value.trim()
  if (!body || !channel) return
  input.value = ""
  const failed = (reason) => {
    $("send-error").textContent = reason
    if (!input.value) input.value = body // give the text back
  }
  channel.push("new_msg", {body})
    .receive("ok", () => { $("send-error").textContent = "" })
    .receive("error", ({reason}) => failed(reason))
    .receive("timeout", () => failed("not sent: the server did not answer"))
})

function join(room) {
  $("join-error").textContent = ""
  channel = socket.channel(`room:${room}`, {username})
  const presence = new Presence(channel)
  const seen = new Set() // message ids shown, so that none is shown twice
  presence.onSync(() => showOnline(presence))
  channel.on("new_msg", (message) => addMessage(message, seen))
  channel.join()
    .receive("ok", ({messages, node}) => {
      $("node").textContent = node === "nonode@nohost" ? "" : `node ${node}`
      // after every join, and every rejoin (the server may have restarted), start over
      // from the room's history
      seen.clear()
      $("messages").replaceChildren()
      messages.forEach((message) => addMessage(message, seen))
      showChat(room)
    })
    .receive("error", ({reason}) => {
      channel.leave() // or the client would try again and again
      channel = null
      showJoin(reason)
    })
    .receive("timeout", () => { $("join-error").textContent = "no answer yet; still trying…" })
}

function addMessage({id, user, body, at}, seen) {
  if (seen.has(id)) return
  seen.add(id)
  const item = element("li", user === username ? "mine" : "")
  const time = element("time", "", new Date(at).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"}))
  time.dateTime = at
  item.append(element("span", "user", user), time, element("p", "text", body))
  const list = $("messages")
  list.append(item)
  list.scrollTop = list.scrollHeight
}

function showOnline(presence) {
  const people = presence.list((name, {metas}) => ({name, tabs: metas.length}))
  people.sort((a, b) => a.name.localeCompare(b.name))
  $("online").replaceChildren(...people.map(({name, tabs}) => {
    const item = element("li", name === username ? "me" : "", name)
    if (tabs > 1) item.append(element("small", "", ` ×${tabs}`))
    return item
  }))
}

function showChat(room) {
  $("room-name").textContent = `#${room}`
  history.replaceState(null, "", `#${encodeURIComponent(room)}`)
  $("join").hidden = true
  $("chat").hidden = false
  $("body").focus()
}

function showJoin(reason) {
  $("join-error").textContent = reason
  $("chat").hidden = true
  $("join").hidden = false
}

function setStatus(state) {
  $("status").dataset.state = state
  $("status").textContent = state === "reconnecting" ? "reconnecting…" : state
}

function element(tag, className, text = "") {
  const node = document.createElement(tag)
  if (className) node.className = className
  node.textContent = text // text only: nothing a user typed becomes HTML
  return node
}
