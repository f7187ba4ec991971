// One suite for every TicketStore, in the style of mqemitter's abstractTest: each backend's test
// file calls it with a builder.
import type { TicketRecord, TicketStore } from '../../plugins/index.js'
import type { StoreSuite } from './store-suite.js'

const alice: TicketRecord = { user: 'alice', expiresAt: 1767225600000 }
let n = 0
// Stores are called by the tickets plugin with 43-character tickets; these are shaped alike.
const ticket = (): string => `${String(++n).padStart(4, '0')}${'x'.repeat(39)}`

export function ticketStoreSuite ({ builder, test }: StoreSuite<TicketStore>): void {
  test('redeems an issued ticket once, with the record it was issued for', async (t) => {
    const { store } = await builder(t)
    const one = ticket()
    await store.issue(one, alice, 30)
    t.same(await store.redeem(one), alice)
    t.equal(await store.redeem(one), null)
  })

  test('redeeming a ticket it never issued gives null', async (t) => {
    const { store } = await builder(t)
    t.equal(await store.redeem(ticket()), null)
  })

  test('tickets are independent of each other', async (t) => {
    const { store } = await builder(t)
    const [one, two] = [ticket(), ticket()]
    const bob = { user: 'bob/+#*', expiresAt: 1767229200000 }
    await store.issue(one, alice, 30)
    await store.issue(two, bob, 30)
    t.same(await store.redeem(two), bob)
    t.same(await store.redeem(one), alice)
  })

  test('a ticket is redeemable until its TTL runs out, and not after', async (t) => {
    const { store, elapse } = await builder(t)
    const [early, late] = [ticket(), ticket()]
    await store.issue(early, alice, 30)
    await store.issue(late, alice, 30)
    await elapse(29)
    t.same(await store.redeem(early), alice, 'one second before expiry')
    await elapse(2)
    t.equal(await store.redeem(late), null, 'one second after expiry')
  })

  test('of twenty concurrent redeems of one ticket exactly one wins', async (t) => {
    const { store } = await builder(t)
    const one = ticket()
    await store.issue(one, alice, 30)
    const results = await Promise.all(Array.from({ length: 20 }, () => store.redeem(one)))
    t.equal(results.filter((r) => r !== null).length, 1)
    t.same(results.find((r) => r !== null), alice)
  })
}
