import t from 'tap'
import { MemoryTicketStore } from '../plugins/index.js'
import { ticketStoreContract } from './ticket-store-contract.js'

const record = { user: 'alice', expiresAt: Number.MAX_SAFE_INTEGER }

t.test('MemoryTicketStore keeps the TicketStore contract', async (t) => {
  ticketStoreContract(t, () => new MemoryTicketStore())
})

t.test('a ticket expires after its ttl, on the store\'s clock', async (t) => {
  let now = 1_000_000
  const store = new MemoryTicketStore({ now: () => now })
  await store.issue('early', record, 30)
  await store.issue('late', record, 30)
  now += 29_999
  t.same(await store.redeem('early'), record, 'alive 1 ms before the ttl')
  now += 1
  t.equal(await store.redeem('late'), null, 'gone at the ttl')
  t.equal(store.size, 0, 'an expired ticket is dropped when it is looked up')
})

t.test('issuing sweeps expired tickets, so unused ones do not pile up', async (t) => {
  let now = 0
  const store = new MemoryTicketStore({ now: () => now })
  for (let i = 0; i < 100; i++) await store.issue(`old-${i}`, record, 1)
  t.equal(store.size, 100)
  now += 1000
  await store.issue('new', record, 1)
  t.equal(store.size, 1)
  t.equal(store.evicted, 0, 'expired tickets are not counted as evicted')
})

t.test('a flood of unused tickets is bounded: the oldest are evicted', async (t) => {
  const store = new MemoryTicketStore({ maxTickets: 3 })
  for (let i = 0; i < 10; i++) await store.issue(`t${i}`, { ...record, user: `u${i}` }, 30)
  t.equal(store.size, 3)
  t.equal(store.evicted, 7)
  t.equal(await store.redeem('t6'), null, 'the oldest went first')
  t.same(await store.redeem('t7'), { ...record, user: 'u7' })
  t.same(await store.redeem('t9'), { ...record, user: 'u9' })
})

t.test('a store of one still works', async (t) => {
  const store = new MemoryTicketStore({ maxTickets: 1 })
  await store.issue('a', record, 30)
  await store.issue('b', record, 30)
  t.equal(await store.redeem('a'), null)
  t.same(await store.redeem('b'), record)
})

t.test('maxTickets must be a positive integer', async (t) => {
  for (const maxTickets of [0, -1, 1.5, Number.NaN, '10']) {
    t.throws(() => new MemoryTicketStore({ maxTickets: maxTickets as number }), { code: 'FST_NOTIFY_INVALID_OPTION' }, String(maxTickets))
  }
})
