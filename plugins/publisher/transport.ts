import type { Deliver, PresenceSource } from '../publishing.js'
import type { ControlSender } from './control.js'

/** How a publisher's checked publishes reach the edges. */
export interface PublisherTransport {
  deliver: Deliver
  /** Where `app.notify.presence()` reads once its query is checked (`noPresence(why)` where nothing can be asked). */
  presence: PresenceSource
  /** Where `app.notify.disconnect()`, `revoke()`, `subscribe()` and `unsubscribe()` go; absent where they cannot (501). */
  control?: ControlSender
  /** At start-up: connects and checks the declarations against the edge's where it can. */
  ready (): Promise<void>
  /** Ends what the transport opened. */
  close (): Promise<void>
}
