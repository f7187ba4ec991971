// One suite for every IdempotencyStore, as test/abstract/ticket-store.ts does for tickets.
import type { IdempotencyStore } from '../../plugins/index.js'
import type { StoreSuite } from './store-suite.js'

let n = 0
const key = (): string => `key-${++n} with spaces/and:colons`

export function idempotencyStoreSuite ({ builder, test }: StoreSuite<IdempotencyStore>): void {
  test('the first claim takes the key; later claims see it pending, then done with the result', async (t) => {
    const { store } = await builder(t)
    const k = key()
    t.equal(await store.claim(k, 'a', 10), null)
    t.same(await store.claim(k, 'b', 10), { state: 'pending' })
    await store.complete(k, { ids: ['1-0', '1-1'] }, 600)
    t.same(await store.claim(k, 'c', 10), { state: 'done', result: { ids: ['1-0', '1-1'] } })
  })

  test('of twenty concurrent claims of one key exactly one takes it', async (t) => {
    const { store } = await builder(t)
    const k = key()
    const claims = await Promise.all(Array.from({ length: 20 }, (_, i) => store.claim(k, `t${i}`, 10)))
    t.equal(claims.filter((c) => c === null).length, 1)
  })

  test('release frees the key for a retry, but only for the claim that holds it', async (t) => {
    const { store } = await builder(t)
    const k = key()
    await store.claim(k, 'first', 10)
    await store.release(k, 'someone-else')
    t.same(await store.claim(k, 'x', 10), { state: 'pending' }, 'another token cannot free it')
    await store.release(k, 'first')
    t.equal(await store.claim(k, 'second', 10), null, 'free again after its holder released it')
    await store.complete(k, { id: '2-0' }, 600)
    await store.release(k, 'second')
    t.same(await store.claim(k, 'y', 10), { state: 'done', result: { id: '2-0' } }, 'a result is never released')
  })

  test('a pending marker expires (its holder died), and a result expires after its ttl', async (t) => {
    const { store, elapse } = await builder(t)
    const [crashed, done] = [key(), key()]
    await store.claim(crashed, 'dead', 10)
    await store.claim(done, 'ok', 10)
    await store.complete(done, { id: '3-0' }, 600)
    await elapse(11)
    t.equal(await store.claim(crashed, 'next', 10), null, 'a dead holder does not block the key forever')
    t.same(await store.claim(done, 'z', 10), { state: 'done', result: { id: '3-0' } }, 'the result outlives the pending ttl')
    await elapse(600)
    t.equal(await store.claim(done, 'later', 10), null, 'gone after its ttl')
  })

  test('extend keeps a pending marker alive, but only for the claim that holds it', async (t) => {
    const { store, elapse } = await builder(t)
    const [held, done] = [key(), key()]
    await store.claim(held, 'holder', 10)
    await elapse(8)
    await store.extend(held, 'someone-else', 10)
    await store.extend(held, 'holder', 10)
    await elapse(8)
    t.same(await store.claim(held, 'retry', 10), { state: 'pending' }, 'still held 16 s after its 10 s claim')
    await elapse(3)
    t.equal(await store.claim(held, 'later', 10), null, 'expires once no longer extended')
    await store.claim(done, 'ok', 10)
    await store.complete(done, { id: '5-0' }, 600)
    await store.extend(done, 'ok', 1)
    await elapse(2)
    t.same(await store.claim(done, 'z', 10), { state: 'done', result: { id: '5-0' } }, 'a result is never shortened')
  })

  test('keys are independent of each other', async (t) => {
    const { store } = await builder(t)
    const [one, two] = [key(), key()]
    t.equal(await store.claim(one, 'a', 10), null)
    t.equal(await store.claim(two, 'a', 10), null)
    await store.complete(two, { id: '4-0' }, 600)
    t.same(await store.claim(one, 'b', 10), { state: 'pending' })
  })
}
