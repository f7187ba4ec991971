import { createError } from '@fastify/error'

// Every error the plugins raise, in one place with one prefix; tests match on `code`.

/** An option given at registration is missing or invalid. */
export const InvalidOptionError = createError('FST_NOTIFY_INVALID_OPTION', 'Invalid option: %s', 500, TypeError)

/** The JWT is missing, malformed, expired or signed with the wrong key. */
export const UnauthorizedError = createError('FST_NOTIFY_UNAUTHORIZED', 'Unauthorized: %s', 401)

/** The x-api-key header is missing or wrong. */
export const BadApiKeyError = createError('FST_NOTIFY_BAD_API_KEY', 'Missing or invalid x-api-key', 401)

/** The handshake's Origin is not allowed. */
export const ForbiddenOriginError = createError('FST_NOTIFY_FORBIDDEN_ORIGIN', 'Origin not allowed: %s', 403)

/** The publish names a stream that was not declared. */
export const UnknownStreamError = createError('FST_NOTIFY_UNKNOWN_STREAM', 'Unknown stream: %s', 400)

/** A private stream needs `user` or `users`. */
export const UserRequiredError = createError('FST_NOTIFY_USER_REQUIRED', 'Stream %s is private: give "user" or "users"', 400)

/** A public stream takes no `user` or `users`. */
export const UserNotAllowedError = createError('FST_NOTIFY_USER_NOT_ALLOWED', 'Stream %s is public: "user" and "users" are not allowed', 400)

/** A channel stream needs `key` or `keys` (SPEC section 12). */
export const KeyRequiredError = createError('FST_NOTIFY_KEY_REQUIRED', 'Stream %s is a channel: give "key" or "keys"', 400)

/** Only a channel stream takes `key` or `keys`. */
export const KeyNotAllowedError = createError('FST_NOTIFY_KEY_NOT_ALLOWED', 'Stream %s is not a channel: "key" and "keys" are not allowed', 400)

/** A channel key is not 1 to 128 characters of `[A-Za-z0-9_@.=-]`. */
export const InvalidKeyError = createError('FST_NOTIFY_INVALID_KEY', 'Invalid channel key: %s', 400)

/** A user id is empty, too long or not a string. */
export const InvalidUserError = createError('FST_NOTIFY_INVALID_USER', 'Invalid user: %s', 400)

/** The publish has no `data`. */
export const DataRequiredError = createError('FST_NOTIFY_DATA_REQUIRED', '"data" is required', 400)

/** `data` fails the stream's schema. */
export const InvalidDataError = createError('FST_NOTIFY_INVALID_DATA', 'data for stream %s is invalid: %s', 400)

/** The publish body is not a JSON object of the expected shape. */
export const BadPublishError = createError('FST_NOTIFY_BAD_PUBLISH', 'Bad publish request: %s', 400)

/** A payload is not UTF-8 JSON, holds a `__proto__` or `constructor.prototype` key, or nests too deep (every ingress, one rule). */
export const InvalidJsonError = createError('FST_NOTIFY_INVALID_JSON', 'Invalid JSON payload: %s', 400)

/** The body is over the publish API's limit. */
export const PayloadTooLargeError = createError('FST_NOTIFY_PAYLOAD_TOO_LARGE', 'Body is over the limit of %d bytes', 413)

/** The bus could not take the message in time (e.g. Redis is down). */
export const BusUnavailableError = createError('FST_NOTIFY_BUS_UNAVAILABLE', 'Notification bus unavailable: %s', 503)

/** The ticket store could not be reached. */
export const TicketStoreUnavailableError = createError('FST_NOTIFY_TICKET_STORE_UNAVAILABLE', 'Ticket store unavailable: %s', 503)

/** The user already holds `maxConnectionsPerUser` sockets on this route. */
export const TooManyConnectionsError = createError('FST_NOTIFY_TOO_MANY_CONNECTIONS', 'Too many connections: at most %d per user', 429)

/** Too many ticket requests from one user or address. */
export const TicketRateLimitedError = createError('FST_NOTIFY_TICKET_RATE_LIMITED', 'Too many ticket requests, retry in %s', 429)

/** The `Idempotency-Key` (or AMQP `messageId`, gRPC `idempotency_key`) is not 1 to 128 printable characters. */
export const BadIdempotencyKeyError = createError('FST_NOTIFY_BAD_IDEMPOTENCY_KEY', 'Idempotency key must be 1 to 128 printable ASCII characters', 400)

/** A publish with the same idempotency key is still under way elsewhere; retry later. */
export const IdempotencyInProgressError = createError('FST_NOTIFY_IDEMPOTENCY_IN_PROGRESS', 'A publish with this idempotency key is in progress', 409)

/** The idempotency store could not be reached, so the publish was not attempted. */
export const IdempotencyStoreUnavailableError = createError('FST_NOTIFY_IDEMPOTENCY_STORE_UNAVAILABLE', 'Idempotency store unavailable: %s', 503)

/** The publisher's stream declarations differ from the edge's (a stream it does not know, another kind, schema or history). */
export const DeclarationMismatchError = createError('FST_NOTIFY_DECLARATION_MISMATCH', 'Stream declarations differ from the edge\'s: %s', 500)

/** The edge refused a publisher's publish for a reason the publisher cannot fix by retrying (a wrong key, a body over its limit). */
export const EdgeRefusedError = createError('FST_NOTIFY_EDGE_REFUSED', 'The edge refused the publish: %s', 500)

/** The bus cannot carry this topic (Redis Cluster's sharded pub/sub takes exact topics only). */
export const UnsupportedTopicError = createError('FST_NOTIFY_UNSUPPORTED_TOPIC', 'Topic not supported by this bus: %s', 500)

/** A presence query is malformed: no or several of user/stream, a bad user id, a private stream. */
export const BadPresenceQueryError = createError('FST_NOTIFY_BAD_PRESENCE_QUERY', 'Bad presence query: %s', 400)

/** Presence could not be read in time (e.g. Redis is down). */
export const PresenceUnavailableError = createError('FST_NOTIFY_PRESENCE_UNAVAILABLE', 'Presence unavailable: %s', 503)

/** `app.notify.presence()` has nothing to ask: an edge registered with `presence: false`, a publisher over gRPC or AMQP. */
export const PresenceDisabledError = createError('FST_NOTIFY_PRESENCE_DISABLED', 'Presence is not available: %s', 501)

/** A publisher on Redis found no edge's stream declarations under its topic prefix: a wrong `topicPrefix`, or no edge has started yet. */
export const UnknownPrefixError = createError('FST_NOTIFY_UNKNOWN_PREFIX', 'No edge has declared its streams under topic prefix "%s" on this Redis: check topicPrefix (the edges\' TOPIC_PREFIX); publishes go through once an edge with this prefix has started', 503)

/** The body of `POST`/`DELETE /push/subscriptions` is not a usable `PushSubscription` (or its endpoint is not an allowed push service). */
export const BadPushSubscriptionError = createError('FST_NOTIFY_BAD_PUSH_SUBSCRIPTION', 'Bad push subscription: %s', 400)

/** The push subscription store could not be reached. */
export const PushStoreUnavailableError = createError('FST_NOTIFY_PUSH_STORE_UNAVAILABLE', 'Push subscription store unavailable: %s', 503)

/** The admin API's `x-api-key` is missing or wrong. */
export const BadAdminKeyError = createError('FST_NOTIFY_BAD_ADMIN_KEY', 'Missing or invalid admin x-api-key', 401)

/** An admin action (disconnect, revoke, subscribe, unsubscribe) is malformed. */
export const BadAdminRequestError = createError('FST_NOTIFY_BAD_ADMIN_REQUEST', 'Bad admin request: %s', 400)

/** The admin action could not be carried to the instances (the bus or the revocation store is down). */
export const ControlUnavailableError = createError('FST_NOTIFY_CONTROL_UNAVAILABLE', 'Control unavailable: %s', 503)

/** The edge is at one of its own limits (connections, handshake rate); retry after `Retry-After` seconds, on another instance. */
export const EdgeBusyError = createError('FST_NOTIFY_EDGE_BUSY', 'Instance busy: %s', 503)

/** `app.notify`'s control methods have nothing to act through: no control plugin, or a publisher over gRPC or AMQP. */
export const ControlDisabledError = createError('FST_NOTIFY_CONTROL_DISABLED', 'Control is not available: %s', 501)

/** An SSE request is malformed: no `streams`, too many, or a name too long. */
export const BadSseRequestError = createError('FST_NOTIFY_BAD_SSE_REQUEST', 'Bad SSE request: %s', 400)

/**
 * A publish was sent to Redis but no answer came in time (a stall, a dropped connection): it may
 * have happened or not. Retry with the same idempotency key, which answers the original ids if it did.
 */
export const OutcomeUnknownError = createError('FST_NOTIFY_OUTCOME_UNKNOWN', 'Publish outcome unknown: %s; retry with the same idempotency key', 503)

/** The fleet-wide publish rate store (Redis) did not answer: the client publish answers `UNAVAILABLE`. */
export const RateStoreUnavailableError = createError('FST_NOTIFY_RATE_STORE_UNAVAILABLE', 'Publish rate store unavailable: %s', 503)
