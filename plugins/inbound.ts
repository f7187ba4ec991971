// What flows from clients into the edge (SPEC section 13): the frames a socket sends to publish
// or to call a method, and the hooks a stream declares to decide on client publishes. A leaf:
// the streams routes hand these frames to whatever serves them (the upstream plugin) through
// `Inbound`, and declarations name the hook types, without importing each other.
import type { Principal } from './principal.js'

/** Where a client publish goes: a stream, and a channel's key (SPEC section 12) when it has one. */
export interface PublishTarget {
  stream: string
  key?: string
}

/**
 * A client-publish hook's answer: `true` or `{ allow: true }` publishes as sent; `{ allow: true,
 * data }` publishes `data` instead; `false` or `{ allow: false, reason?, message? }` refuses with
 * `FORBIDDEN` (and `reason`, a code of the app's, `[A-Za-z0-9_.-]{1,64}`).
 */
export type ClientPublishVerdict = boolean | { allow: true, data?: unknown } | { allow: false, reason?: string, message?: string }

/** Decides on one client publish; sync or async. */
export type ClientPublishHook = (principal: Principal, target: PublishTarget, data: unknown) => ClientPublishVerdict | Promise<ClientPublishVerdict>

/**
 * Whether clients may publish to a stream: `true` (any authenticated connection, as sent), a hook
 * deciding per message, or the URL of a backend's hook, as text or `{ url }` (a dedicated edge:
 * POST, see docs/upstream.md).
 */
export type ClientPublishPolicy = true | ClientPublishHook | string | { url: string }

/** A correlation id as the client sent it, echoed back untouched. */
export type InboundId = string | number | undefined

/** `{"event":"publish","stream":"room:lobby","data":…,"id":"c5","idempotencyKey"?:"…"}` */
export interface PublishFrame {
  event: 'publish'
  id: InboundId
  /** The stream as the client named it: `chat`, or `room:lobby` for a channel. */
  stream: string
  data: unknown
  idempotencyKey: string | undefined
  /** Size of the frame as received, for the publish size limit. */
  bytes: number
}

/** `{"event":"rpc","method":"orders.place","data":…,"id":"c6"}` */
export interface RpcFrame {
  event: 'rpc'
  id: InboundId
  method: string
  data: unknown
}

/** The socket a frame came from, as the upstream side sees it. */
export interface InboundCaller {
  readonly principal: Principal
  /** Sends a frame to the socket (dropped once it has closed). */
  send (text: string): void
  /**
   * Holds what the socket is written until the next `send` (or `release`), so that what a publish
   * delivers to its own sender leaves with its answer, in one write. Optional: a caller may send at once.
   */
  hold? (): void
  /** Ends a `hold` that no `send` ended. */
  release? (): void
  /**
   * Sends an answer as fan-out is written: at the end of the job, or with the next flush when the
   * socket was written a moment ago, so that answers finishing together share a write. Optional:
   * `send` otherwise.
   */
  sendBatched? (text: string): void
}

/** Serves client publishes and RPCs for the streams routes; each call sends its own answer frame. */
export interface Inbound {
  /** Resolves once the answer (`published` or `error`) is sent: a socket's publishes run in order. */
  publish (caller: InboundCaller, frame: PublishFrame): Promise<void>
  /** Starts a call; its answer (`result` or `error`) is sent whenever it comes. */
  rpc (caller: InboundCaller, frame: RpcFrame): void
  /**
   * Whether the caller may use a channel key whose `authorize` a backend answers (a declared
   * `remoteAuthorize`): asks it, or reuses the yes this connection got within the stream's
   * `cacheTtl`. Never rejects: a no, a failure or a timeout is false.
   */
  authorizeKey (caller: InboundCaller, target: Required<PublishTarget>): Promise<boolean>
}
