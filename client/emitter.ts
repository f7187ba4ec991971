export type Listener<T> = (payload: T) => void

/** A tiny typed event emitter; `emit` returns what the listeners threw instead of throwing. */
export class Emitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>()

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof Events> (event: K, listener: Listener<Events[K]>): () => void {
    let set = this.#listeners.get(event)
    if (set === undefined) {
      set = new Set()
      this.#listeners.set(event, set)
    }
    set.add(listener)
    return () => this.off(event, listener)
  }

  off<K extends keyof Events> (event: K, listener: Listener<Events[K]>): void {
    this.#listeners.get(event)?.delete(listener)
  }

  emit<K extends keyof Events> (event: K, payload: Events[K]): unknown[] {
    const thrown: unknown[] = []
    const set = this.#listeners.get(event) as Set<Listener<Events[K]>> | undefined
    for (const listener of [...(set ?? [])]) {
      try {
        listener(payload)
      } catch (err) {
        thrown.push(err)
      }
    }
    return thrown
  }
}
