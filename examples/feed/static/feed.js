// The feed page: the stock phoenix client, served from npm's install.
import {Presence, Socket} from "../vendor/phoenix/phoenix.mjs"

const $ = (id) => document.getElementById(id)
let socket = null
let timeline = null
let me = ""
const shown = new Map() // post id -> its element

$("name").value = localStorage.getItem("feed.name") || ""
$("signin").addEventListener("submit", (event) => {
  event.preventDefault()
  signIn($("name").value.trim())
})

function signIn(name) {
  me = name
  localStorage.setItem("feed.name", name)
  socket = new Socket(new URL("socket", document.baseURI).pathname,
                      {params: {user: name}, longPollFallbackMs: 2500})
  socket.onOpen(() => setStatus("online"))
  socket.onError(() => setStatus("reconnecting"))
  socket.onClose(() => setStatus("reconnecting"))
  socket.connect()
  timeline = socket.channel(`timeline:${name}`, {})
  timeline.on("post", (post) => addPost(post, true))
  timeline.on("post_updated", (post) => updatePost(post))
  timeline.on("reset", (snapshot) => render(snapshot))
  timeline.join()
    .receive("ok", (snapshot) => {
      $("signin").hidden = true
      $("app").hidden = false
      $("me").textContent = `@${name}`
      render(snapshot)
    })
    .receive("error", ({reason}) => {
      $("signin-error").textContent = reason
      timeline.leave()
      socket.disconnect()
    })
  const online = socket.channel("online:feed", {})
  const presence = new Presence(online)
  presence.onSync(() => list("online", presence.list((name) => name)))
  online.join()
}

function render({posts, following}) {
  shown.clear()
  $("posts").replaceChildren()
  posts.slice().reverse().forEach((post) => addPost(post, true))
  list("following", following, (name) => button("unfollow", () => follow(name, false)))
  suggestions()
}

function suggestions() {
  timeline.push("suggestions", {}).receive("ok", ({names}) =>
    list("suggestions", names, (name) => button("follow", () => follow(name, true))))
}

function follow(name, on) {
  timeline.push(on ? "follow" : "unfollow", {name})
    .receive("error", ({reason}) => { $("compose-error").textContent = reason })
}

$("compose").addEventListener("submit", (event) => {
  event.preventDefault()
  const body = $("body").value.trim()
  if (!body) return
  $("body").value = ""
  timeline.push("post", {body})
    .receive("ok", () => { $("compose-error").textContent = "" })
    .receive("error", ({reason}) => { $("compose-error").textContent = reason; $("body").value = body })
    .receive("timeout", () => { $("compose-error").textContent = "not posted: no answer"; $("body").value = body })
})
$("body").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("compose").requestSubmit() }
})

function addPost(post, top) {
  if (shown.has(post.id)) return updatePost(post)
  const item = document.createElement("li")
  item.className = "post"
  item.dataset.id = post.id
  const head = document.createElement("div")
  head.className = "head"
  head.append(text("span", "author", post.author),
              text("time", "", new Date(post.at).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"})))
  if (post.reply_to) head.append(text("span", "parent", `replying to #${post.reply_to}`))
  const like = button("", () => timeline.push(like.classList.contains("on") ? "unlike" : "like", {post: post.id}))
  like.classList.add("quiet", "like")
  const replies = button("", () => toggleThread(item, post.id))
  replies.classList.add("quiet", "replies")
  const actions = document.createElement("div")
  actions.append(like, replies)
  item.append(head, text("p", "text", post.body), actions)
  item.like = like
  item.repliesButton = replies
  shown.set(post.id, item)
  updatePost(post)
  if (top) $("posts").prepend(item); else $("posts").append(item)
}

function updatePost(post) {
  const item = shown.get(post.id)
  if (!item) return
  item.like.textContent = `♥ ${post.likes}`
  item.like.classList.toggle("on", post.liked)
  item.repliesButton.textContent = `↩ ${post.replies}`
  if (item.thread) loadThread(item, post.id)
}

function toggleThread(item, id) {
  if (item.thread) { item.thread.remove(); item.thread = null; return }
  item.thread = document.createElement("div")
  item.thread.className = "thread"
  item.append(item.thread)
  loadThread(item, id)
}

function loadThread(item, id) {
  timeline.push("thread", {post: id}).receive("ok", ({replies}) => {
    if (!item.thread) return
    const form = document.createElement("form")
    const input = document.createElement("input")
    input.placeholder = "reply"
    input.maxLength = 500
    form.append(input, button("Reply", null))
    form.addEventListener("submit", (event) => {
      event.preventDefault()
      const body = input.value.trim()
      if (body) timeline.push("post", {body, reply_to: id})
    })
    item.thread.replaceChildren(...replies.map((r) => {
      const line = text("p", "reply", "")
      line.append(text("b", "", r.author), document.createTextNode(` ${r.body}`))
      return line
    }), form)
  })
}

function list(id, names, action) {
  $(id).replaceChildren(...names.map((name) => {
    const item = text("li", "", "")
    item.append(text("span", "", name))
    if (action) item.append(action(name))
    return item
  }))
}

function button(label, onClick) {
  const b = document.createElement("button")
  b.type = onClick ? "button" : "submit"
  b.textContent = label
  if (onClick) b.addEventListener("click", onClick)
  return b
}

function text(tag, className, content) {
  const element = document.createElement(tag)
  if (className) element.className = className
  element.textContent = content
  return element
}

function setStatus(value) {
  $("status").textContent = value
  $("status").dataset.state = value
}
