import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { InvalidOptionError } from '../errors.js'
import { positiveInteger } from '../util.js'
import { MemoryHistoryStore } from './memory-store.js'
import type { HistoryStore } from './store.js'

export type { AppendedMessage, HistoryBounds, HistoryRead, HistoryStore, OnceKey } from './store.js'
export { MemoryHistoryStore, type MemoryHistoryStoreOptions } from './memory-store.js'
export { RedisHistoryStore, type RedisHistoryClient, type RedisHistoryStoreOptions } from './redis-store.js'

export interface NotifyHistoryOptions {
  /**
   * Where history lives. It is not closed by the plugin unless `closeStore` is true.
   * @default a `MemoryHistoryStore`, closed on app close
   */
  store?: HistoryStore
  /** Close a given `store` when the app closes. @default false */
  closeStore?: boolean
  /**
   * Most messages one subscribe replays per stream; when more were missed the stream is listed
   * in `gaps` and goes live without a replay.
   * @default 300
   */
  maxReplay?: number
}

/** `app.notifyHistory`: the store that streams declaring `history` use, and the replay cap. */
export interface NotifyHistory {
  readonly store: HistoryStore
  readonly maxReplay: number
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Message history for resume (see `NotifyHistory`). */
    notifyHistory: NotifyHistory
  }
}

function isStore (value: unknown): value is HistoryStore {
  const store = value as HistoryStore
  return typeof store?.append === 'function' && typeof store.read === 'function' && typeof store.latest === 'function' &&
    typeof store.close === 'function' && typeof store.appendPublishes === 'boolean'
}

async function fastifyNotifyHistory (app: FastifyInstance, opts: NotifyHistoryOptions): Promise<void> {
  const maxReplay = positiveInteger('maxReplay', opts.maxReplay, 300)
  if (opts.store !== undefined && !isStore(opts.store)) {
    throw new InvalidOptionError('history store must implement append, read, latest, close and appendPublishes')
  }
  const store = opts.store ?? new MemoryHistoryStore()
  app.decorate('notifyHistory', { store, maxReplay })
  if (opts.store === undefined || opts.closeStore === true) {
    app.addHook('onClose', () => store.close())
  }
}

export const notifyHistory = fp(fastifyNotifyHistory, {
  fastify: '5.x',
  name: 'notify-edge-history'
})
export default notifyHistory
