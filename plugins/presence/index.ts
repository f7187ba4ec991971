import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { InvalidOptionError } from '../errors.js'
import { MemoryPresenceStore } from './memory-store.js'
import type { PresenceStore } from './store.js'

export type { PresenceStore, StreamPresence, UserPresence } from './store.js'
export { PresenceTracker, type PresenceReporter } from './tracker.js'
export { MemoryPresenceStore } from './memory-store.js'
export {
  presenceKeyPrefix, RedisPresenceReader, RedisPresenceStore,
  type RedisPresenceClient, type RedisPresenceReaderOptions, type RedisPresenceStoreOptions
} from './redis-store.js'

export interface NotifyPresenceOptions {
  /**
   * Where presence lives. It is not closed by the plugin unless `closeStore` is true.
   * @default a `MemoryPresenceStore` (this process only), closed on app close
   */
  store?: PresenceStore
  /** Close a given `store` when the app closes (on Redis: remove this instance's share). @default false */
  closeStore?: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Who is connected (see `PresenceStore`); the streams routes report to its tracker. */
    notifyPresence: PresenceStore
  }
}

function isStore (value: unknown): value is PresenceStore {
  const store = value as PresenceStore
  return typeof store?.users === 'function' && typeof store.stream === 'function' &&
    typeof store.close === 'function' && typeof store.tracker?.connected === 'function'
}

async function fastifyNotifyPresence (app: FastifyInstance, opts: NotifyPresenceOptions): Promise<void> {
  if (opts.store !== undefined && !isStore(opts.store)) {
    throw new InvalidOptionError('presence store must implement users, stream, close and tracker')
  }
  const store = opts.store ?? new MemoryPresenceStore()
  app.decorate('notifyPresence', store)
  if (opts.store === undefined || opts.closeStore === true) {
    app.addHook('onClose', () => store.close())
  }
}

export const notifyPresence = fp(fastifyNotifyPresence, {
  fastify: '5.x',
  name: 'notify-edge-presence'
})
export default notifyPresence
