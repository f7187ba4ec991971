/**
 * The part of a WebSocket the client uses. The browser's `WebSocket` and the `ws` package's
 * both fit, so the library type-checks with the DOM lib and runs on Node 20 with `ws`.
 */
export interface WebSocketLike {
  readonly readyState: number
  send (data: string): void
  close (code?: number, reason?: string): void
  /** `ws` only: drops the connection without the closing handshake. */
  terminate?: () => void
  addEventListener (type: 'open' | 'error', listener: () => void): void
  addEventListener (type: 'message', listener: (event: { data: unknown }) => void): void
  addEventListener (type: 'close', listener: (event: { code: number, reason: string }) => void): void
}

export type WebSocketConstructor = new (url: string) => WebSocketLike

export const OPEN = 1

/** The endpoint as a ws: or wss: URL; relative URLs resolve against the page, http(s) maps to ws(s). */
export function socketUrl (url: string): URL | null {
  let parsed: URL
  try {
    parsed = new URL(url, typeof location === 'undefined' ? undefined : location.href)
  } catch {
    return null
  }
  if (parsed.protocol === 'http:') parsed.protocol = 'ws:'
  if (parsed.protocol === 'https:') parsed.protocol = 'wss:'
  return parsed.protocol === 'ws:' || parsed.protocol === 'wss:' ? parsed : null
}
