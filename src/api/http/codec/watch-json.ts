/**
 * The JSON of a WatchResponse, for the gateway's watch streams (POST /v3/watch and the WebSocket watch). Equal to
 * `encodeMessage(WatchResponse, resp)`, but an event message reuses the JSON of its events and of its header when the
 * same arrays and header objects come again: the watch hub hands every watcher of one shape (range and filters) the
 * same Event[] for a revision, and the member the same header for a revision, so one event to N watchers of a shape is
 * encoded once, and each watcher's message only adds its watch_id (issue 17: one encode per shape, not per watcher).
 */
import * as M from '../../../protocol/descriptors.js'
import type { Event, ResponseHeader, WatchResponse } from '../../../protocol/types.js'
import { encodeMessage } from './encode.js'

const eventsJson = new WeakMap<readonly Event[], string>()
const headerJson = new WeakMap<ResponseHeader, string>()

/** Encodes calls made since start (tests count them to prove the sharing). */
export const watchJsonStats = { eventEncodes: 0, textReuses: 0 }

/**
 * The last event message's text and its parts: the watchers of one shape on many streams get the same events and
 * header, and each stream numbers its watchers from 0, so replicas (one watcher per stream) all get the same text:
 * built once, and the socket layer can share its frame bytes (src/runtime/node/split-wss.ts).
 */
let last:
  | { events: readonly Event[]; header: ResponseHeader | undefined; watchId: WatchResponse['watch_id']; text: string }
  | undefined

/** `{"result":<WatchResponse JSON>}`, the gateway's frame for one watch message. */
export function watchResultJson(resp: WatchResponse): string {
  const plain =
    resp.events.length > 0 &&
    !resp.created &&
    !resp.canceled &&
    resp.compact_revision === 0 &&
    resp.cancel_reason === '' &&
    !resp.fragment
  if (
    plain &&
    last !== undefined &&
    last.events === resp.events &&
    last.header === resp.header &&
    last.watchId === resp.watch_id
  ) {
    watchJsonStats.textReuses++
    return last.text
  }
  const text = `{"result":${encodeWatchResponse(resp)}}`
  if (plain) last = { events: resp.events, header: resp.header, watchId: resp.watch_id, text }
  return text
}

export function encodeWatchResponse(resp: WatchResponse): string {
  const evs = resp.events
  if (
    evs.length === 0 ||
    resp.created ||
    resp.canceled ||
    resp.compact_revision !== 0 ||
    resp.cancel_reason !== '' ||
    resp.fragment
  ) {
    return encodeMessage(M.WatchResponse, resp)
  }
  let ej = eventsJson.get(evs)
  if (ej === undefined) {
    watchJsonStats.eventEncodes++
    // '{"events":[...]}' -> '[...]' (events is the last field of WatchResponse, so it goes last below too).
    ej = encodeMessage(M.WatchResponse, { events: evs }).slice(10, -1)
    eventsJson.set(evs, ej)
  }
  let out = '{'
  if (resp.header !== undefined) {
    let hj = headerJson.get(resp.header)
    if (hj === undefined) {
      hj = encodeMessage(M.WatchResponse, { header: resp.header })
      headerJson.set(resp.header, hj)
    }
    // '{"header":{...}}' -> '"header":{...},'; an all-zero header encodes as '{}' and is omitted.
    if (hj.length > 2) out += hj.slice(1, -1) + ','
  }
  if (resp.watch_id !== 0) out += `"watch_id":"${resp.watch_id}",`
  return out + '"events":' + ej + '}'
}
