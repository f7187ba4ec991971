// Offline delivery in the demo (SPEC section 18): VAPID_* turn Web Push on for the order stream,
// SMTP_URL turns e-mail on; GET /demo/push tells the page the VAPID public key.
import type { FastifyInstance } from 'fastify'
import { PUSH_SERVICE_HOSTS, type NotifyOfflineOptions, type OfflineEmailMessage } from '../plugins/index.js'
import type { AppConfig } from './config.js'

function orderMail (message: OfflineEmailMessage): { subject: string, text: string } {
  const { orderId, status } = message.data as { orderId: string, status: string }
  return {
    subject: `Your order ${orderId.slice(0, 8)} is ${status}`,
    text: `Hello ${message.user},\n\nyour order ${orderId} is ${status}.\n\n(You were offline when it happened: notify-edge demo.)`
  }
}

/** The offline options the environment asks for, or undefined when it asks for none. */
export function offlineOptions (config: AppConfig): NotifyOfflineOptions | undefined {
  const push = config.vapid === undefined ? undefined : { vapid: config.vapid, allowedEndpointHosts: config.pushEndpointHosts ?? [...PUSH_SERVICE_HOSTS] }
  const email = config.smtpUrl === undefined
    ? undefined
    // Demo users have no mailbox: each gets one at example.com, which accepts nothing real.
    : { transport: config.smtpUrl, from: config.smtpFrom, address: (user: string) => `${encodeURIComponent(user)}@example.com` }
  if (push === undefined && email === undefined) return undefined
  return {
    streams: { order: email === undefined ? {} : { email: orderMail } },
    push,
    email,
    preference: () => push !== undefined && email !== undefined ? 'both' : push !== undefined ? 'push' : 'email'
  }
}

/** `GET /demo/push` → `{"publicKey"}`, null when Web Push is off. */
export async function pushKeyRoute (app: FastifyInstance, config: AppConfig): Promise<void> {
  app.get('/demo/push', async () => ({ publicKey: config.vapid?.publicKey ?? null }))
}
