// The stream page: the stock phoenix client, served from npm's install.
import {Socket} from "../vendor/phoenix/phoenix.mjs"

const $ = (id) => document.getElementById(id)
const decoder = new TextDecoder()
const socketPath = new URL("socket", document.baseURI).pathname // works mounted anywhere
const socket = new Socket(socketPath, {longPollFallbackMs: 2500})
socket.onOpen(() => setStatus("online"))
socket.onError(() => setStatus("reconnecting"))
socket.onClose(() => setStatus("reconnecting"))
socket.connect()

let channel = null
let lastSeq = 0
let skipped = 0
let shown = null // the blob URL on screen
const seen = new Set() // chat ids shown

function watch(name) {
  if (channel) channel.leave()
  channel = socket.channel("stream:main", name ? {name} : {})
  channel.on("segment", (payload) => showSegment(payload))
  channel.on("chat", (message) => addMessage(message))
  channel.on("viewers", ({count}) => { $("viewers").textContent = count })
  channel.join()
    .receive("ok", ({chat, viewers}) => {
      $("viewers").textContent = viewers
      $("messages").replaceChildren()
      seen.clear()
      chat.forEach(addMessage)
      $("name-form").hidden = Boolean(name)
      $("compose").hidden = !name
      $("error").textContent = ""
    })
    .receive("error", ({reason}) => { $("error").textContent = reason })
}

function showSegment(payload) {
  const bytes = new Uint8Array(payload)
  const newline = bytes.indexOf(10)
  const head = JSON.parse(decoder.decode(bytes.subarray(0, newline)))
  if (head.seq <= lastSeq && lastSeq - head.seq < 1000) return // not newer than what is shown
  if (lastSeq && head.seq > lastSeq + 1) {
    skipped += head.seq - lastSeq - 1
    $("behind").hidden = false
  } else if (lastSeq) {
    $("behind").hidden = true
  }
  lastSeq = head.seq
  const url = URL.createObjectURL(new Blob([bytes.subarray(newline + 1)], {type: "image/svg+xml"}))
  $("picture").src = url
  if (shown) URL.revokeObjectURL(shown)
  shown = url
  $("seq").textContent = head.seq
  $("age").textContent = `${Math.max(0, Date.now() - head.at)} ms`
  $("skipped").textContent = skipped
}

function addMessage({id, user, body}) {
  if (seen.has(id)) return
  seen.add(id)
  const item = document.createElement("li")
  const who = document.createElement("span")
  who.className = "user"
  who.textContent = user
  item.append(who, document.createTextNode(body))
  $("messages").append(item)
  item.scrollIntoView({block: "end"})
}

$("name-form").addEventListener("submit", (event) => {
  event.preventDefault()
  const name = $("name").value.trim()
  if (name) { localStorage.setItem("stream.name", name); watch(name) }
})

$("compose").addEventListener("submit", (event) => {
  event.preventDefault()
  const body = $("body").value.trim()
  if (!body || !channel) return
  $("body").value = ""
  channel.push("chat", {body})
    .receive("ok", () => { $("error").textContent = "" })
    .receive("error", ({reason}) => { $("error").textContent = reason; $("body").value = body })
    .receive("timeout", () => { $("error").textContent = "not sent: no answer"; $("body").value = body })
})

function setStatus(text) {
  $("status").textContent = text
  $("status").dataset.state = text
}

$("name").value = localStorage.getItem("stream.name") || ""
watch(null) // everyone watches; a name is only for the chat
