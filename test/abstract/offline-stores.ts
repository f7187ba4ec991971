// One suite for every PushSubscriptionStore and one for every DeliveryClaimStore: memory and
// Redis run the same tests (test/offline-stores.test.ts).
import type { DeliveryClaimStore, PushSubscriptionJSON, PushSubscriptionStore } from '../../plugins/index.js'
import type { StoreSuite } from './store-suite.js'

let n = 0
// User ids the topics allow, including the characters a Redis key or hash tag could trip on.
const user = (): string => `user-${++n} {with}/odd:chars`
const subscription = (name: string): PushSubscriptionJSON => ({
  endpoint: `https://push.example/${name}`,
  expirationTime: null,
  keys: { p256dh: `p256dh-${name}`, auth: `auth-${name}` }
})

export function pushSubscriptionStoreSuite ({ builder, test }: StoreSuite<PushSubscriptionStore>): void {
  test('adds, lists oldest first, replaces by endpoint, removes', async (t) => {
    const { store } = await builder(t)
    const u = user()
    t.same(await store.list(u), [])
    t.equal(await store.add(u, subscription('a'), 10), 1)
    t.equal(await store.add(u, subscription('b'), 10), 2)
    const renewed = { ...subscription('a'), keys: { p256dh: 'new', auth: 'new' } }
    t.equal(await store.add(u, renewed, 10), 2, 'same endpoint: replaced, not added')
    t.same(await store.list(u), [subscription('b'), renewed], 're-adding makes it the newest')
    t.equal(await store.remove(u, subscription('b').endpoint), true)
    t.equal(await store.remove(u, subscription('b').endpoint), false)
    t.same(await store.list(u), [renewed])
  })

  test('keeps at most `max` per user, dropping the oldest', async (t) => {
    const { store } = await builder(t)
    const u = user()
    for (const name of ['1', '2', '3', '4']) await store.add(u, subscription(name), 3)
    t.same((await store.list(u)).map((s) => s.endpoint), ['2', '3', '4'].map((name) => subscription(name).endpoint))
    t.equal(await store.add(u, subscription('5'), 1), 1, 'a lower cap trims at once')
    t.same(await store.list(u), [subscription('5')])
  })

  test("users' subscriptions are apart", async (t) => {
    const { store } = await builder(t)
    const [one, two] = [user(), user()]
    await store.add(one, subscription('x'), 10)
    t.same(await store.list(two), [])
    t.equal(await store.remove(two, subscription('x').endpoint), false)
    t.same(await store.list(one), [subscription('x')])
  })
}

export function deliveryClaimStoreSuite ({ builder, test }: StoreSuite<DeliveryClaimStore>): void {
  test('the first claim of a key wins, later ones lose until it expires', async (t) => {
    const { store, elapse } = await builder(t)
    const key = `push:${user()}:1-0`
    t.equal(await store.claim(key, 10), true)
    t.equal(await store.claim(key, 10), false)
    t.equal(await store.claim(`${key}x`, 10), true, 'keys are independent')
    await elapse(11)
    t.equal(await store.claim(key, 10), true, 'free again after its ttl')
  })

  test('of twenty concurrent claims exactly one wins', async (t) => {
    const { store } = await builder(t)
    const key = `email:${user()}:2-0`
    const won = await Promise.all(Array.from({ length: 20 }, () => store.claim(key, 10)))
    t.equal(won.filter(Boolean).length, 1)
  })
}
