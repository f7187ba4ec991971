import type { Revocation } from '../control-commands.js'
import { RevocationList } from './revocation-list.js'
import type { RevocationStore } from './store.js'

/** Revocations in this process only: one instance, forgotten on restart. */
export class MemoryRevocationStore implements RevocationStore {
  readonly #list: RevocationList

  constructor (opts: { now?: () => number } = {}) {
    this.#list = new RevocationList(opts.now)
  }

  async add (revocation: Revocation): Promise<void> {
    this.#list.add(revocation)
  }

  async list (): Promise<Revocation[]> {
    return this.#list.entries()
  }
}
