// The demo's service worker: shows an order pushed while the page was closed or offline. The
// payload is the `message` frame (or `{"truncated":true}` without data when it was too long).
self.addEventListener('push', (event) => {
  const message = event.data?.json() ?? {}
  const { orderId = '', status = 'updated' } = message.data ?? {}
  const title = message.truncated ? 'Order update' : `Order ${orderId.slice(0, 8)} ${status}`
  event.waitUntil(self.registration.showNotification(title, { body: 'notify-edge demo', tag: message.id, data: message }))
})

self.addEventListener('notificationclick', (event) => {
  event.notification.close()
  event.waitUntil(self.clients.matchAll({ type: 'window' }).then((windows) => windows[0]?.focus() ?? self.clients.openWindow('/')))
})
