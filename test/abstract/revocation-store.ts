// One suite for every RevocationStore: each backend's test file calls it with a builder. Expiry
// runs on the real clock (the Redis store's is Redis's and the caller's), in a few hundred ms.
import type { RevocationStore } from '../../plugins/index.js'
import type { StoreSuite } from './store-suite.js'

const later = (ms: number): number => Date.now() + ms
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export function revocationStoreSuite ({ builder, test }: StoreSuite<RevocationStore>): void {
  test('lists what was added, tokens and users alike', async (t) => {
    const { store } = await builder(t)
    t.same(await store.list(), [])
    const token = { jti: 'j1', expiresAt: later(60_000) }
    const user = { user: 'alice/+#*', before: 1767225600000, expiresAt: later(60_000) }
    await store.add(token)
    await store.add(user)
    const listed = await store.list()
    t.equal(listed.length, 2)
    t.same(listed.find((entry) => 'jti' in entry), token)
    t.same(listed.find((entry) => 'user' in entry), user)
  })

  test('an entry goes once past its expiry; an expired one is never listed', async (t) => {
    const { store } = await builder(t)
    await store.add({ jti: 'short', expiresAt: later(150) })
    await store.add({ jti: 'long', expiresAt: later(60_000) })
    await store.add({ jti: 'past', expiresAt: Date.now() - 1 })
    t.same((await store.list()).map((entry) => (entry as { jti: string }).jti).sort(), ['long', 'short'])
    await pause(300)
    t.same((await store.list()).map((entry) => (entry as { jti: string }).jti), ['long'])
  })

  test('adding the same token twice keeps one entry, with the later expiry', async (t) => {
    const { store } = await builder(t)
    const expiresAt = later(60_000)
    await store.add({ jti: 'twice', expiresAt })
    await store.add({ jti: 'twice', expiresAt: expiresAt - 1000 })
    t.same(await store.list(), [{ jti: 'twice', expiresAt }])
  })
}
