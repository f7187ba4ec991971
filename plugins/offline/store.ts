// What offline delivery keeps: the users' push subscriptions, and one claim per message and
// channel so that a copy goes out once however many times (or places) its offline outcome is heard.

/** A browser's `PushSubscription` as `toJSON()` gives it: where to push, and the keys to encrypt for. */
export interface PushSubscriptionJSON {
  endpoint: string
  expirationTime?: number | null
  keys: { p256dh: string, auth: string }
}

/** A user's push subscriptions, keyed by endpoint. */
export interface PushSubscriptionStore {
  /**
   * Adds (or replaces, same endpoint) a subscription; past `max` per user the oldest go.
   * Resolves with how many the user holds now.
   */
  add (user: string, subscription: PushSubscriptionJSON, max: number): Promise<number>
  /** Removes the subscription with this endpoint; true when there was one. */
  remove (user: string, endpoint: string): Promise<boolean>
  /** The user's subscriptions, oldest first. */
  list (user: string): Promise<PushSubscriptionJSON[]>
}

/** One-time claims with a lifetime: of every caller of `claim(key)` within `ttl`, one gets true. */
export interface DeliveryClaimStore {
  claim (key: string, ttl: number): Promise<boolean>
}
