// The typed layer: what a stream declaration means to the compiler. Types only (nothing here
// exists at run time), so that the server, a remote publisher and the browser client all read
// the same declaration without importing each other.
import type { Static, TSchema } from 'typebox'

/** public: one topic for all; private: one per user; channel: one per key (`room:lobby`). */
export type StreamKind = 'public' | 'private' | 'channel'

/** What the typed layer reads from a declared stream. */
export interface StreamShape {
  readonly name: string
  readonly kind: StreamKind
  readonly schema?: unknown
}

/** Stream name → its kind and the type of its messages' `data`. */
export type StreamTypeMap = Record<string, { kind: StreamKind, data: unknown }>

/** Nothing declared to the compiler: any stream name, either kind, any data. */
export type AnyStreams = Record<string, { kind: StreamKind, data: unknown }>

/** A TypeBox schema's static type; `unknown` for a plain JSON schema (or none). */
export type DataOf<Schema> = Schema extends TSchema & { '~kind': string } ? Static<Schema> : unknown

/** The type map of a declaration (`defineStreams([...])`). */
export type StreamTypes<Declaration extends readonly StreamShape[]> = {
  [S in Declaration[number] as S['name']]: { kind: S['kind'], data: S extends { schema: infer Schema } ? DataOf<Schema> : unknown }
}

/** A declaration (array) or a type map, as a type map; anything else is `AnyStreams`. */
export type StreamsOf<T> = T extends readonly StreamShape[] ? StreamTypes<T> : T extends StreamTypeMap ? T : AnyStreams

/**
 * The app's streams, declared to the compiler once (as @fastify/jwt's `FastifyJWT`): in your app,
 * `declare module 'fastify-notify-edge' { interface NotifyEdgeStreams { streams: typeof streams } }`
 * types `app.notify.publish` everywhere. Left empty, publishing takes any stream and any data.
 */
export interface NotifyEdgeStreams {}

/** The registered streams' type map (`AnyStreams` when nothing is registered). */
export type RegisteredStreams = NotifyEdgeStreams extends { streams: infer D } ? StreamsOf<D> : AnyStreams

/** The channel streams of a type map. */
type ChannelNames<M> = { [N in keyof M & string]: M[N] extends { kind: 'channel' } ? N : never }[keyof M & string]

/** The names a client subscribes to: the streams of a declaration or type map, a channel's with a key (`room:lobby`). */
export type StreamName<Streams> = Exclude<keyof StreamsOf<Streams> & string, ChannelNames<StreamsOf<Streams>>> | `${ChannelNames<StreamsOf<Streams>>}:${string}`

/** The `data` type of one stream of a declaration or type map (of a channel's, for `room:<key>`). */
export type StreamData<Streams, Name extends string> = Name extends `${infer Channel}:${string}`
  ? StreamsOf<Streams>[Channel] extends { data: infer D } ? D : unknown
  : StreamsOf<Streams>[Name] extends { data: infer D } ? D : unknown

type Names<M> = keyof M & string
type Kind<M, N extends Names<M>> = M[N] extends { kind: infer K } ? K : never
type Data<M, N extends Names<M>> = M[N] extends { data: infer D } ? D : never

/** A publish to one user of a private stream. */
export type UserPublish<Streams = RegisteredStreams, M = StreamsOf<Streams>> = {
  [N in Names<M>]: 'private' extends Kind<M, N> ? { stream: N, user: string, users?: never, key?: never, keys?: never, data: Data<M, N> } : never
}[Names<M>]

/** A publish to several users of a private stream. */
export type UsersPublish<Streams = RegisteredStreams, M = StreamsOf<Streams>> = {
  [N in Names<M>]: 'private' extends Kind<M, N> ? { stream: N, users: string[], user?: never, key?: never, keys?: never, data: Data<M, N> } : never
}[Names<M>]

/** A publish to a public stream: no `user`, no `users`. */
export type PublicPublish<Streams = RegisteredStreams, M = StreamsOf<Streams>> = {
  [N in Names<M>]: 'public' extends Kind<M, N> ? { stream: N, user?: never, users?: never, key?: never, keys?: never, data: Data<M, N> } : never
}[Names<M>]

/** A publish to one key of a channel stream (`room` + `lobby` reaches `room:lobby`). */
export type KeyPublish<Streams = RegisteredStreams, M = StreamsOf<Streams>> = {
  [N in Names<M>]: 'channel' extends Kind<M, N> ? { stream: N, key: string, keys?: never, user?: never, users?: never, data: Data<M, N> } : never
}[Names<M>]

/** A publish to several keys of a channel stream, in one call. */
export type KeysPublish<Streams = RegisteredStreams, M = StreamsOf<Streams>> = {
  [N in Names<M>]: 'channel' extends Kind<M, N> ? { stream: N, keys: string[], key?: never, user?: never, users?: never, data: Data<M, N> } : never
}[Names<M>]

/** What `publish` takes (SPEC section 5); an adapter casts what it received to it before publishing. */
export type PublishInput<Streams = RegisteredStreams, M = StreamsOf<Streams>> = UserPublish<M> | UsersPublish<M> | PublicPublish<M> | KeyPublish<M> | KeysPublish<M>

/** The answer to a publish on a public stream. */
export interface PublicPublishResult { id: string }
/** The answer to a publish to one user; `online` is left out only when the bus cannot tell (a given emitter other than mqemitter-redis). */
export interface UserPublishResult { id: string, online?: boolean }
/** The answer to a publish to several keys of a channel: ids in the order of `keys`. */
export interface KeysPublishResult { ids: string[] }
/** The answer to a publish to several users: ids in the order of `users`; `offline` (possibly `[]`) left out only when the bus cannot tell. */
export interface UsersPublishResult { ids: string[], offline?: string[] }

export type PublishResult = PublicPublishResult | UserPublishResult | UsersPublishResult | KeysPublishResult

/** The answer `publish` resolves with for an input of type `I`. */
export type PublishResultOf<I> = I extends { users: string[] }
  ? UsersPublishResult
  : I extends { keys: string[] } ? KeysPublishResult : I extends { user: string } ? UserPublishResult : PublicPublishResult

/**
 * Publishing, typed by the declared streams (a declaration, `typeof streams`, or a type map): the
 * stream names, `user`/`users` by kind, each stream's `data`, and a result that follows the input.
 */
export interface Publisher<Streams = RegisteredStreams, M = StreamsOf<Streams>> {
  publish (input: UsersPublish<M>): Promise<UsersPublishResult>
  publish (input: UserPublish<M>): Promise<UserPublishResult>
  publish (input: PublicPublish<M>): Promise<PublicPublishResult>
  publish (input: KeysPublish<M>): Promise<KeysPublishResult>
  publish (input: KeyPublish<M>): Promise<PublicPublishResult>
  publish (input: PublishInput<M>): Promise<PublishResult>
}
