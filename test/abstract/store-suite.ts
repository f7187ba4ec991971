// What every store suite of this folder takes: a builder of fresh stores and tap's `test`.
import type tap from 'tap'

// The last overload of `test` is `(cb)`: its parameter is the subtest type.
export type Test = Parameters<Parameters<typeof tap.test>[0]>[0]

export interface StoreFixture<Store> {
  store: Store
  /** Lets `seconds` pass for the store's keys. */
  elapse (seconds: number): Promise<void>
}

export interface StoreSuite<Store> {
  /** Builds a fresh, empty store; anything it opens is closed by the builder through `t.teardown`. */
  builder (t: Test): Promise<StoreFixture<Store>>
  test: typeof tap.test
}
