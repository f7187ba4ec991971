import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import type { TicketStore } from '../plugins/index.js'

/**
 * What every TicketStore must do, whatever its backend (mqemitter's abstract-test style): run it
 * against each store with a builder that gives a fresh, empty store.
 */
export function ticketStoreContract (t: Test, build: (t: Test) => TicketStore | Promise<TicketStore>): void {
  const fresh = (): string => randomBytes(32).toString('base64url')

  t.test('redeems an issued ticket once, with its record', async (t) => {
    const store = await build(t)
    const ticket = fresh()
    const record = { user: 'alice', expiresAt: Date.now() + 60_000 }
    await store.issue(ticket, record, 30)
    t.same(await store.redeem(ticket), record)
    t.equal(await store.redeem(ticket), null, 'single use')
  })

  t.test('answers null for a ticket it never issued', async (t) => {
    const store = await build(t)
    t.equal(await store.redeem(fresh()), null)
  })

  t.test('keeps tickets apart', async (t) => {
    const store = await build(t)
    const [a, b] = [fresh(), fresh()]
    await store.issue(a, { user: 'alice', expiresAt: 1 }, 30)
    await store.issue(b, { user: 'bob', expiresAt: 2 }, 30)
    t.same(await store.redeem(b), { user: 'bob', expiresAt: 2 })
    t.same(await store.redeem(a), { user: 'alice', expiresAt: 1 })
  })

  t.test('lets exactly one of many concurrent redemptions win', async (t) => {
    const store = await build(t)
    const ticket = fresh()
    await store.issue(ticket, { user: 'alice', expiresAt: 1 }, 30)
    const results = await Promise.all(Array.from({ length: 10 }, () => store.redeem(ticket)))
    t.equal(results.filter((r) => r !== null).length, 1)
  })
}
