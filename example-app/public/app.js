// The demo page: log in, take a one-time ticket, open the socket, show what arrives.
const $ = (id) => document.getElementById(id)
let token = null
let user = null

function setState (state) {
  $('state').dataset.state = state
  $('state').textContent = state
}

function show (stream, text) {
  const item = document.createElement('li')
  item.dataset.stream = stream
  item.textContent = text
  const when = document.createElement('small')
  when.textContent = `${stream} · ${new Date().toLocaleTimeString()}`
  item.append(when)
  $('feed').prepend(item)
}

async function post (path, body, headers = {}) {
  const res = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  const json = await res.json()
  if (!res.ok) throw new Error(json.message || res.statusText)
  return json
}

async function connect () {
  setState('connecting')
  const { ticket } = await post('/ws/ticket', {}, { authorization: `Bearer ${token}` })
  const url = new URL(`/ws?ticket=${encodeURIComponent(ticket)}`, location.href)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  const socket = new WebSocket(url)
  socket.onopen = () => socket.send(JSON.stringify({ event: 'subscribe', streams: ['order', 'promotional'], id: 'initial' }))
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data)
    if (frame.event === 'subscribed') setState('live')
    if (frame.event === 'message') {
      const text = frame.stream === 'order' ? `order ${frame.data.orderId.slice(0, 8)}: ${frame.data.status}` : JSON.stringify(frame.data)
      show(frame.stream, text)
    }
    if (frame.event === 'error') show('error', `${frame.code}: ${frame.message}`)
  }
  socket.onclose = (event) => {
    setState('offline')
    show('error', `disconnected (${event.code}); log in again to reconnect`)
  }
}

$('login').addEventListener('submit', async (event) => {
  event.preventDefault()
  user = $('user').value.trim()
  try {
    ;({ token } = await post('/auth/login', { user, ttl: 3600 }))
    await connect()
    $('actions').hidden = false
  } catch (err) {
    setState('offline')
    show('error', err.message)
  }
})

$('order').addEventListener('click', () => post('/orders', { user }).catch((err) => show('error', err.message)))
$('promo').addEventListener('click', () =>
  post('/demo/promotion', {}).catch((err) => show('error', err.message)))
