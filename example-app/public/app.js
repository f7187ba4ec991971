// The demo page, on the notify-edge client SDK served from the build output.
import { connect } from '/client/index.js'

const $ = (id) => document.getElementById(id)
const STATES = { connecting: 'connecting', open: 'live', reconnecting: 'reconnecting', closed: 'offline' }
const STEPS = ['placed', 'paid', 'shipped']
let user = null
let token = null
let notify = null

function setState (state, detail = '') {
  $('state').dataset.state = state
  $('state').textContent = state
  $('state-detail').textContent = detail
}

// Where the auth and order services are: on this origin when one process runs them all, on their
// own when the edge is split out (`npm run start:split`).
const services = await fetch('/demo/services').then((res) => res.ok ? res.json() : {}, () => ({}))
const at = (service, path) => `${services[service] ?? ''}${path}`

async function post (path, body, headers = {}) {
  const res = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  const json = await res.json()
  if (!res.ok) throw Object.assign(new Error(json.message || res.statusText), { status: res.status })
  return json
}

// Demo auth: logging in again stands in for a real token refresh.
async function login () {
  ;({ token } = await post(at('auth', '/auth/login'), { user, ttl: 3600 }))
  return token
}

async function getTicket () {
  const ask = async () => (await post('/ws/ticket', {}, { authorization: `Bearer ${token}` })).ticket
  try {
    return await ask()
  } catch (err) {
    if (err.status !== 401) throw err
    await login()
    return ask()
  }
}

function prepend (list, item) {
  list.querySelector('.empty')?.remove()
  list.prepend(item)
}

function notification (stream, message, text) {
  const item = document.createElement('li')
  item.dataset.stream = stream
  if (message !== null) item.dataset.id = message.id
  const body = document.createElement('span')
  body.textContent = text
  const meta = document.createElement('small')
  meta.textContent = `${stream} · ${new Date(message?.ts ?? Date.now()).toLocaleTimeString()}`
  item.append(body, meta)
  prepend($('feed'), item)
  return item
}

function showOrder (message) {
  const { orderId, status } = message.data
  const item = notification('order', message, `Order ${orderId.slice(0, 8)} ${status}`)
  item.dataset.order = orderId
  item.dataset.status = status
  showCard(orderId, status)
}

// After a gap, the order cards are rebuilt from the order service: some updates never arrived.
// Over the socket when it is open (RPC `orders.list`), else over HTTP.
async function refetchOrders () {
  if (notify?.state === 'open') {
    for (const { orderId, status } of (await notify.rpc('orders.list')).orders) showCard(orderId, status)
    return
  }
  const get = () => fetch(at('orders', '/orders'), { headers: { authorization: `Bearer ${token}` } })
  let res = await get()
  if (res.status === 401) {
    await login()
    res = await get()
  }
  if (!res.ok) throw new Error(`refetching orders: ${res.status}`)
  for (const { orderId, status } of (await res.json()).orders) showCard(orderId, status)
}

function showCard (orderId, status) {
  let card = $('orders').querySelector(`[data-order="${CSS.escape(orderId)}"]`)
  if (card === null) {
    card = document.createElement('li')
    card.dataset.order = orderId
    const name = document.createElement('span')
    name.className = 'order-id'
    name.textContent = `#${orderId.slice(0, 8)}`
    const steps = document.createElement('ol')
    steps.className = 'steps'
    for (const step of STEPS) {
      const li = document.createElement('li')
      li.dataset.step = step
      li.textContent = step
      steps.append(li)
    }
    card.append(name, steps)
    prepend($('orders'), card)
  }
  card.dataset.status = status
  const reached = STEPS.indexOf(status)
  for (const li of card.querySelectorAll('[data-step]')) li.classList.toggle('done', STEPS.indexOf(li.dataset.step) <= reached)
}

function start () {
  // The transport switch: auto falls back to Server-Sent Events when a WebSocket cannot be opened.
  notify = connect({ url: '/ws', getTicket, getToken: login, transport: $('transport').value })
  setState('connecting')
  notify.on('state', (state) => setState(STATES[state]))
  notify.on('disconnected', ({ code, willRetry, delay }) => {
    if (willRetry) setState('reconnecting', `lost (${code}), retrying in ${(delay / 1000).toFixed(1)} s`)
    else setState('offline', code === 1000 ? '' : `closed (${code})`)
  })
  notify.on('gap', ({ stream }) => {
    notification('system', null, `Some ${stream} updates were lost on the way${stream === 'order' ? ': orders refetched.' : '.'}`)
    if (stream === 'order') refetchOrders().catch((err) => notification('error', null, err.message))
  })
  notify.on('error', (err) => {
    // While the server is down every attempt fails to fetch a ticket: that is the state, not news.
    if (err.code === 'NOTIFY_CLIENT_CREDENTIAL_FAILED') $('state-detail').textContent = 'cannot reach the server, retrying'
    else notification('error', null, `${err.code}: ${err.message}`)
  })
  notify.subscribe('order', showOrder)
  notify.subscribe('promotional', (message) => notification('promotional', message, message.data.text ?? JSON.stringify(message.data)))
  showChannels()
}

$('login').addEventListener('submit', async (event) => {
  event.preventDefault()
  user = $('user').value.trim()
  try {
    await login()
  } catch (err) {
    notification('error', null, err.message)
    return
  }
  $('who').textContent = user
  $('login').hidden = true
  $('session').hidden = false
  start()
  setUpPush()
})

// Web Push for the order stream while offline (SPEC section 18), when the server has VAPID keys:
// a service worker, a push subscription, registered with the edge under this user's JWT.
let pushSubscription = null
function sayPush (state, text) {
  $('push').hidden = false
  $('push').dataset.state = state
  $('push').textContent = text
}

async function setUpPush () {
  const res = await fetch('/demo/push').catch(() => null)
  const { publicKey = null } = res?.ok ? await res.json() : {}
  if (publicKey === null) return
  if (!('serviceWorker' in navigator) || !('PushManager' in window)) {
    return sayPush('unsupported', 'This browser has no Web Push: offline notifications cannot reach it.')
  }
  try {
    const registration = await navigator.serviceWorker.register('/sw.js')
    await navigator.serviceWorker.ready
    const key = Uint8Array.from(atob(publicKey.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0))
    // A browser whose push service is out of reach (headless Chromium) never answers: bounded.
    const late = new Promise((_resolve, reject) => setTimeout(() => reject(new Error('no answer within 5 s')), 5000))
    pushSubscription = await registration.pushManager.getSubscription() ??
      await Promise.race([registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }), late])
    await post('/push/subscriptions', pushSubscription.toJSON(), { authorization: `Bearer ${token}` })
    sayPush('on', 'Push notifications on: orders reach you while you are offline.')
  } catch (err) {
    if (err.name === 'NotAllowedError') sayPush('blocked', 'Notifications are blocked for this page: offline orders will not reach you.')
    // Headless and de-Googled browsers have no push service to subscribe with.
    else sayPush('unavailable', `This browser has no push service (${err.message}): offline notifications cannot reach it.`)
  }
}

$('logout').addEventListener('click', async () => {
  if (pushSubscription !== null) {
    await fetch('/push/subscriptions', { method: 'DELETE', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ endpoint: pushSubscription.endpoint }) }).catch(() => {})
    await pushSubscription.unsubscribe().catch(() => {})
    pushSubscription = null
  }
  await notify?.close()
  notify = token = null
  $('session').hidden = true
  $('login').hidden = false
})

const act = (button, path, body, then = () => {}) => async () => {
  button.disabled = true
  try {
    const sent = body()
    then(await post(path, sent), sent)
  } catch (err) {
    notification('error', null, err.message)
  } finally {
    button.disabled = false
  }
}
// An order for someone with no live connection answers `online: false`: the order service's
// offline fallback (an e-mail, in a real service) fired, and the page says so.
const placedFor = (reply, body) => {
  if (reply.online === false) notification('fallback', null, `${body.user} is offline: the order service would send an e-mail`)
  else if (body.user !== user) notification('fallback', null, `${body.user} saw order ${reply.orderId.slice(0, 8)} live`)
}
const placeOverHttp = act($('order'), at('orders', '/orders'), () => ({ user: $('order-user').value.trim() || user }), placedFor)
// Your own order, while the socket is open, goes over it: the RPC `orders.place`, served by the
// order service's POST /orders for the signed-in user (forwarded to it when the edge is split out).
$('order').addEventListener('click', async () => {
  const forWhom = $('order-user').value.trim() || user
  if (forWhom !== user || notify?.state !== 'open') return placeOverHttp()
  $('order').disabled = true
  try {
    const reply = await notify.rpc('orders.place')
    $('order').dataset.via = 'rpc'
    placedFor(reply, { user })
  } catch (err) {
    // On SSE, which only receives, the order goes over HTTP as anyone else's.
    if (err.code === 'NOTIFY_CLIENT_NOT_CONNECTED') return placeOverHttp()
    notification('error', null, `${err.code}: ${err.message}`)
  } finally {
    $('order').disabled = false
  }
})
$('promo').addEventListener('click', act($('promo'), at('orders', '/demo/promotion'), () => ({})))

// Chat rooms: the `room` channel, one key per room (`room:lobby`). A line is published over the
// socket (SPEC section 13), the server setting `from`; on SSE, which only receives, it is posted
// to the example's /rooms route instead, which publishes it for us.
let room = null
let leaveRoom = () => {}
const authorized = (path, init = {}) => fetch(path, { ...init, headers: { ...init.headers, authorization: `Bearer ${token}` } })

function chatLine (message) {
  if ($('chat').querySelector(`[data-id="${CSS.escape(message.id)}"]`) !== null) return
  const item = document.createElement('li')
  item.dataset.id = message.id
  item.textContent = `${message.from ?? message.data.from ?? '?'}: ${message.data.text}`
  $('chat').querySelector('.empty')?.remove()
  $('chat').append(item)
}

function showMembers (members) {
  $('members').textContent = [...members].sort().join(', ')
  $('members').dataset.members = [...members].sort().join(',')
}

let members = new Set()
async function joinRoom (name) {
  leaveRoom()
  room = name
  localStorage.setItem('notify-demo-room', name)
  $('room-name').textContent = name
  $('chat').replaceChildren()
  leaveRoom = notify.subscribe(`room:${name}`, chatLine)
  // What the room said before we came (or before a reload), then live lines as they come.
  const res = await authorized(`/rooms/${encodeURIComponent(name)}/messages`)
  // A room we may not use answers 403 here, and the subscribe an error (shown below).
  if (!res.ok) return
  for (const message of (await res.json()).messages ?? []) chatLine(message)
  members = new Set((await authorized(`/rooms/${encodeURIComponent(name)}/members`).then((res) => res.json())).members ?? [])
  members.add(user)
  showMembers(members)
}

function onPresence (event, joined) {
  if (room === null || event.stream !== `room:${room}`) return
  if (joined) members.add(event.user)
  else members.delete(event.user)
  showMembers(members)
}

$('join-room').addEventListener('submit', (event) => {
  event.preventDefault()
  joinRoom($('room').value.trim()).catch((err) => notification('error', null, err.message))
})

$('say').addEventListener('submit', async (event) => {
  event.preventDefault()
  if (room === null) return
  const text = $('text').value
  try {
    await notify.publish(`room:${room}`, { text })
    $('text').value = ''
    return
  } catch (err) {
    // A refusal of the line itself is final; a socket that cannot publish (SSE) falls back.
    if (err.code === 'BAD_REQUEST' || err.code === 'RATE_LIMITED' || err.code === 'FORBIDDEN') return notification('error', null, `${err.code}: ${err.message}`)
  }
  const res = await authorized(`/rooms/${encodeURIComponent(room)}/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text }) })
  if (res.ok) $('text').value = ''
  else notification('error', null, (await res.json()).message)
})

// One order's channel (`order-status:<orderId>`): its owner and support staff may follow it.
$('follow').addEventListener('submit', (event) => {
  event.preventDefault()
  const orderId = $('follow-id').value.trim()
  notify.subscribe(`order-status:${orderId}`, (message) => {
    const item = document.createElement('li')
    item.dataset.order = message.data.orderId
    item.dataset.status = message.data.status
    item.textContent = `#${message.data.orderId.slice(0, 8)} ${message.data.status}`
    $('followed').querySelector('.empty')?.remove()
    $('followed').append(item)
  })
})

// Shown once signed in, with the rest of the session.
function showChannels () {
  $('chat-room').hidden = false
  $('follow-order').hidden = false
  notify.on('join', (event) => onPresence(event, true))
  notify.on('leave', (event) => onPresence(event, false))
  notify.on('error', (err) => {
    if (err.stream?.startsWith('order-status:')) $('followed').dataset.refused = err.stream
    if (err.stream?.startsWith('room:')) $('chat').dataset.refused = err.stream
  })
  const saved = localStorage.getItem('notify-demo-room')
  if (saved !== null) {
    $('room').value = saved
    joinRoom(saved).catch((err) => notification('error', null, err.message))
  }
}
