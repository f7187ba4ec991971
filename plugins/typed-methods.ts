// The typed layer of RPC methods (SPEC section 13), as typed.ts is for streams: types only, so the
// server, a dedicated edge's config and the browser client read one declaration.
import type { DataOf } from './typed.js'

/** What the typed layer reads from a declared method: TypeBox schemas of its data and answer. */
export interface MethodShape {
  readonly url: string
  readonly request?: unknown
  readonly response?: unknown
}

/** Method name → the types of its `data` and of its answer. */
export type MethodTypeMap = Record<string, { request: unknown, response: unknown }>

/** Nothing declared to the compiler: any method, any data, any answer. */
export type AnyMethods = Record<string, { request: unknown, response: unknown }>

/** The type map of a declaration (`defineMethods({...})`). */
export type MethodTypes<Declaration extends Record<string, MethodShape>> = {
  [N in keyof Declaration & string]: {
    request: Declaration[N] extends { request: infer S } ? DataOf<S> : unknown
    response: Declaration[N] extends { response: infer S } ? DataOf<S> : unknown
  }
}

/** A declaration or a type map, as a type map; anything else is `AnyMethods`. */
export type MethodsOf<T> = T extends MethodTypeMap ? T : T extends Record<string, MethodShape> ? MethodTypes<T> : AnyMethods

export type MethodName<Methods> = keyof MethodsOf<Methods> & string

export type MethodRequest<Methods, Name extends string> = MethodsOf<Methods>[Name] extends { request: infer R } ? R : unknown

export type MethodResponse<Methods, Name extends string> = MethodsOf<Methods>[Name] extends { response: infer R } ? R : unknown
