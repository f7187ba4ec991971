import { timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { API_KEY, type Notification } from '../lib/shared.js'

const KEY = Buffer.from(API_KEY)
const BODY_LIMIT = 65536

/**
 * The plain contenders' equivalent of the project's `POST /notifications`: an `x-api-key`
 * checked in constant time, a JSON body `{ stream, data }` of bounded size, 202 once published.
 * The sustained scenario feeds every contender through it, one publish per request.
 */
export function handlePublish (req: IncomingMessage, res: ServerResponse, publish: (stream: string, data: Notification) => string): boolean {
  if (req.method !== 'POST' || req.url !== '/notifications') return false
  const key = Buffer.from(String(req.headers['x-api-key'] ?? ''))
  if (key.length !== KEY.length || !timingSafeEqual(key, KEY)) {
    req.resume()
    res.writeHead(401).end()
    return true
  }
  const chunks: Buffer[] = []
  let size = 0
  req.on('data', (chunk: Buffer) => {
    size += chunk.length
    if (size <= BODY_LIMIT) chunks.push(chunk)
  })
  req.on('end', () => {
    let body: { stream?: unknown, data?: unknown }
    try {
      body = size > BODY_LIMIT ? {} : JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch {
      body = {}
    }
    if (typeof body?.stream !== 'string' || body.data === null || typeof body.data !== 'object') {
      res.writeHead(400).end()
      return
    }
    const reply = JSON.stringify({ id: publish(body.stream, body.data as Notification) })
    res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(reply) }).end(reply)
  })
  return true
}
