import pg from 'pg'
import { insertNotification, outboxMigration } from '../plugins/index.js'

// The order service's book in PostgreSQL: an order's new status and the notification it causes
// are written in one transaction, and the edge's outbox relay publishes the notification once
// committed. A crash between the two writes cannot happen: there is only one.

interface Order { orderId: string, status: string }

export interface PostgresOrderBook {
  /** Stores the order's status and its `order` notification to `user`, atomically. */
  set (user: string, order: Order): Promise<void>
  list (user: string): Promise<Order[]>
  /** Who placed the order (the `order-status` channel's authorization), or null. */
  owner (orderId: string): Promise<string | null>
  close (): Promise<void>
}

export async function postgresOrderBook (databaseUrl: string, outboxTable: string): Promise<PostgresOrderBook> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 })
  // An idle client that loses the server must not crash the demo; the next query reconnects.
  pool.on('error', () => {})
  // The demo sets its schema up itself; a real service runs sql/notify_outbox.sql with its migrations.
  await pool.query(`${outboxMigration(outboxTable)}
    CREATE TABLE IF NOT EXISTS demo_orders (
      user_id text NOT NULL, order_id text NOT NULL, status text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (user_id, order_id)
    );`)
  return {
    async set (user, { orderId, status }) {
      const client = await pool.connect()
      try {
        await client.query('BEGIN')
        await client.query(`INSERT INTO demo_orders (user_id, order_id, status) VALUES ($1, $2, $3)
          ON CONFLICT (user_id, order_id) DO UPDATE SET status = excluded.status, updated_at = now()`, [user, orderId, status])
        await insertNotification(client, { stream: 'order', user, data: { orderId, status } }, { table: outboxTable })
        await client.query('COMMIT')
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {})
        throw err
      } finally {
        client.release()
      }
    },
    async list (user) {
      const { rows } = await pool.query('SELECT order_id, status FROM demo_orders WHERE user_id = $1 ORDER BY updated_at DESC LIMIT 50', [user])
      return rows.map((row) => ({ orderId: row.order_id as string, status: row.status as string }))
    },
    async owner (orderId) {
      const { rows } = await pool.query('SELECT user_id FROM demo_orders WHERE order_id = $1 LIMIT 1', [orderId])
      return rows.length === 0 ? null : rows[0].user_id as string
    },
    close: () => pool.end()
  }
}
