/**
 * gRPC's `grpc-status: 0` trailers of a unary answer in the same socket write as its HEADERS and DATA frames.
 *
 * node:http2's `sendTrailers` defers the trailers to a `setImmediate` ("so we don't do it on nghttp2 stack"): the
 * answer then leaves in two writes a loop turn apart (HEADERS+DATA, then the trailers' HEADERS), and the client
 * wakes twice per call. nghttp2 itself allows `nghttp2_submit_trailer` from inside the data source's read callback
 * (its documentation: "nghttp2_submit_trailer() can be used inside nghttp2_data_source_read_callback"), which is
 * where Node emits 'wantTrailers': submitting there puts the trailers' frame in the send pass that is running, so the
 * answer leaves in one write, as grpc-go's (etcd's) does. Issue 12, docs/benchmarks.md gRPC "Session 10".
 *
 * That takes Node's internals (the stream's native handle and its state flags), found by name at first use and
 * checked; on any other runtime or Node that does not match, `sendOkTrailersNow` answers false and the caller uses the
 * public `sendTrailers`. On by default since session 11 (on Node 20); NODE_H2_SYNC_TRAILERS=0 in the environment turns
 * it off (the A/B switch). Since session 11 it also submits the answer's HEADERS through the handle with a list built
 * once (`respondOkNow`, instead of `respond`).
 */
import type { ServerHttp2Stream } from 'node:http2'

/** node:http2's STREAM_FLAGS_HAS_TRAILERS (lib/internal/http2/core.js): cleared once trailers are submitted. */
const streamFlagsHasTrailers = 0x20
/** `{ 'grpc-status': '0' }` as Node's mapToHeaders encodes it for the native handle: name NUL value NUL flags, count. */
const okTrailersList: [string, number] = ['grpc-status\u00000\u0000\u0000', 1]
/** `{ ':status': 200, 'content-type': 'application/grpc' }` the same way (pseudo-headers first, as mapToHeaders). */
const okHeadersList: [string, number] = [
  ':status\u0000200\u0000\u0000content-type\u0000application/grpc\u0000\u0000',
  2,
]
/** node:http2's STREAM_FLAGS_HEADERS_SENT and STREAM_OPTION_GET_TRAILERS (respond's waitForTrailers). */
const streamFlagsHeadersSent = 0x4
const streamOptionGetTrailers = 0x2

export interface Internals {
  handle: symbol
  state: symbol
  maybeDestroy: symbol
  updateTimer: symbol
}

/**
 * On unless NODE_H2_SYNC_TRAILERS=0 in the environment (read at the first answer), and only on the Node major line
 * the native header lists' encoding was read from (20): another major may encode headers for the handle differently,
 * and a malformed list would break every gRPC answer. Session 10 left it opt-in (its quiet A/B found no 1-client gain
 * from the trailers alone); session 11's alternated A/B with the HEADERS through the handle too found ~10% less
 * server CPU per 1-client put (docs/benchmarks.md gRPC "Session 11"), so it is on by default.
 */
let internals: Internals | null | undefined

function enabled(): boolean {
  return (
    typeof process !== 'undefined' &&
    process.env?.NODE_H2_SYNC_TRAILERS !== '0' &&
    process.versions?.node?.split('.')[0] === '20'
  )
}

function symbolOf(o: object, description: string): symbol | undefined {
  return Object.getOwnPropertySymbols(o).find((s) => s.description === description)
}

/** The symbols, if this stream looks like the Node 20 Http2Stream the fast path was written against, else null. */
export function findTrailerInternals(stream: ServerHttp2Stream): Internals | null {
  const handle = symbolOf(stream, 'kHandle')
  const state = symbolOf(stream, 'state')
  let maybeDestroy: symbol | undefined
  let updateTimer: symbol | undefined
  for (let p = Object.getPrototypeOf(stream); p && !(maybeDestroy && updateTimer); p = Object.getPrototypeOf(p)) {
    maybeDestroy ??= symbolOf(p, 'kMaybeDestroy')
    updateTimer ??= symbolOf(p, 'kUpdateTimer')
  }
  if (!handle || !state || !maybeDestroy || !updateTimer) return null
  const h = (stream as unknown as Record<symbol, { trailers?: unknown; respond?: unknown } | undefined>)[handle]
  const s = (stream as unknown as Record<symbol, { flags?: unknown; trailersReady?: unknown } | undefined>)[state]
  if (typeof h?.trailers !== 'function' || typeof h.respond !== 'function') return null
  if (typeof s?.flags !== 'number' || typeof s.trailersReady !== 'boolean') return null
  const st = stream as unknown as Record<symbol, unknown>
  if (typeof st[maybeDestroy] !== 'function' || typeof st[updateTimer] !== 'function') return null
  return { handle, state, maybeDestroy, updateTimer }
}

/**
 * Instead of `stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })`:
 * the same HEADERS submitted through the native handle with the header list built once, as Node's respond does
 * after copying the headers (processHeaders), spreading the options and mapping the headers to that list on every
 * call (session 11: ~3% of a call's CPU, client and server, in bench/lib/grpc-door.ts). Answers false (nothing done)
 * where the fast path is off or the internals are not there: then call `respond`. The stream's `sentHeaders` stays
 * undefined (the raw unary path never reads it).
 */
export function respondOkNow(stream: ServerHttp2Stream): boolean {
  if (internals === undefined) internals = enabled() ? findTrailerInternals(stream) : null
  if (internals === null) return false
  const st = stream as unknown as Record<symbol, unknown>
  const state = st[internals.state] as { flags: number }
  if ((state.flags & streamFlagsHeadersSent) !== 0) return false
  ;(st[internals.updateTimer] as () => void).call(stream)
  state.flags |= streamFlagsHeadersSent | streamFlagsHasTrailers
  const ret = (st[internals.handle] as { respond(list: [string, number], options: number): number }).respond(
    okHeadersList,
    streamOptionGetTrailers,
  )
  if (ret < 0) stream.destroy(new Error(`http2 respond: nghttp2 error ${ret}`))
  return true
}

/**
 * In a 'wantTrailers' listener: submits `grpc-status: 0` at once (what Node's finishSendTrailers does a turn later)
 * and answers true, or answers false (nothing done) where the internals are not there: then call `sendTrailers`.
 */
export function sendOkTrailersNow(stream: ServerHttp2Stream): boolean {
  if (internals === undefined) internals = enabled() ? findTrailerInternals(stream) : null
  if (internals === null) return false
  const st = stream as unknown as Record<symbol, unknown>
  const state = st[internals.state] as { flags: number; trailersReady: boolean }
  if (!state.trailersReady) return false
  state.flags &= ~streamFlagsHasTrailers
  const ret = (st[internals.handle] as { trailers(list: [string, number]): number }).trailers(okTrailersList)
  if (ret < 0) stream.destroy(new Error(`http2 trailers: nghttp2 error ${ret}`))
  else (st[internals.maybeDestroy] as () => void).call(stream)
  return true
}

/** Whether the fast path is in use (after the first answer); for tests and the bench's notes. */
export function syncTrailersInUse(): boolean | undefined {
  return internals === undefined ? undefined : internals !== null
}
