// A small WebSocket client for trying the edge by hand:
//   node docs/ws-listen.mjs <ws url with ?ticket=…> <stream,stream> <messages to wait for> [timeout s]
// Prints every frame it receives as one JSON line; exits 0 once it has the messages, 1 on timeout.
import WebSocket from 'ws'

const [url, streams = 'order,promotional', wanted = '1', timeout = '10'] = process.argv.slice(2)
if (url === undefined) {
  console.error('usage: node docs/ws-listen.mjs <ws url> [streams] [messages] [timeout s]')
  process.exit(2)
}

let received = 0
const socket = new WebSocket(url)
const timer = setTimeout(() => {
  console.error(`timed out with ${received} of ${wanted} messages`)
  process.exit(1)
}, Number(timeout) * 1000)

socket.on('unexpected-response', (_req, res) => {
  console.error(`handshake refused: HTTP ${res.statusCode}`)
  process.exit(1)
})
socket.on('message', (data) => {
  const frame = JSON.parse(data.toString())
  console.log(JSON.stringify(frame))
  if (frame.event === 'welcome') socket.send(JSON.stringify({ event: 'subscribe', streams: streams.split(','), id: 's1' }))
  if (frame.event === 'subscribed') console.error('ready')
  if (frame.event === 'message' && ++received >= Number(wanted)) {
    clearTimeout(timer)
    socket.close()
  }
})
socket.on('close', () => process.exit(received >= Number(wanted) ? 0 : 1))
