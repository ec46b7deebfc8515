/**
 * The JSON of a WatchResponse, for the gateway's watch streams (POST /v3/watch and the WebSocket watch). Equal to
 * `encodeMessage(WatchResponse, resp)`, but an event message reuses the JSON of its events and of its header when the
 * same arrays and header objects come again: the watch hub hands every watcher of one shape (range and filters) the
 * same Event[] for a revision, and the member the same header for a revision, so one event to N watchers of a shape is
 * encoded once, and each watcher's message only adds its watch_id (issue 17: one encode per shape, not per watcher).
 */
import { isSharedEvents } from '../../../kv/watch.js'
import * as M from '../../../protocol/descriptors.js'
import type { Event, KeyValue, ResponseHeader, WatchResponse } from '../../../protocol/types.js'
import { encodeBase64 } from './base64.js'
import { encodeMessage } from './encode.js'

/** The events' JSON of the Event[] the hub shares among watchers (isSharedEvents); others are sent once. */
const eventsJson = new WeakMap<readonly Event[], string>()
/** The last events encoded, whether shared or not: a shared array's next message usually follows at once. */
let lastEvents: readonly Event[] | undefined
let lastEventsJson = ''
let lastHeader: ResponseHeader | undefined
let lastHeaderJson = ''

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

/**
 * A large event message as three parts (session 10, issue 17): `head` and `tail` are the message's own short text
 * (`{"result":{"header":...,"watch_id":"N","events":` and `}}`), `events` the UTF-8 of its events' JSON, encoded once
 * per Event[] the hub shares (a catch-up batch of up to 1,000 revisions, ~250 KB for one key) and handed by reference
 * to every watcher's frame. Building one string per watcher of that size and encoding it again cost the member
 * 1.5 µs per event delivered in the all-match put row (a socket layer flattening, measuring and copying a 250 KB rope
 * per message: 64% of its CPU, bench/lib/cpuprofile-window.mjs); with the parts a message costs its head.
 */
export interface WatchTextParts {
  head: string
  events: Uint8Array
  tail: string
}

/** Shared event arrays' JSON at least this long go as parts (watchResultParts); shorter ones as one string. */
export const watchPartsMinBytes = 16 * 1024

/** The UTF-8 of the events' JSON of a shared Event[] (isSharedEvents), once per array. */
const eventsUtf8 = new WeakMap<readonly Event[], Uint8Array>()
const utf8 = new TextEncoder()

/**
 * watchResultJson's text, or for an event message whose events the hub shares and whose JSON is at least
 * watchPartsMinBytes, its parts (WatchTextParts): `head + decode(events) + tail` is watchResultJson(resp).
 */
export function watchResultParts(resp: WatchResponse): string | WatchTextParts {
  const evs = resp.events
  if (evs.length < 16 || !isSharedEvents(evs) || resp.created || resp.canceled || resp.compact_revision !== 0) {
    return watchResultJson(resp)
  }
  if (resp.cancel_reason !== '' || resp.fragment) return watchResultJson(resp)
  let bytes = eventsUtf8.get(evs)
  if (bytes === undefined) {
    let ej = eventsJson.get(evs)
    if (ej === undefined) {
      watchJsonStats.eventEncodes++
      ej = eventsJsonText(evs)
    }
    if (ej.length < watchPartsMinBytes) {
      eventsJson.set(evs, ej)
      return watchResultJson(resp)
    }
    bytes = utf8.encode(ej)
    eventsUtf8.set(evs, bytes)
  }
  let head = '{"result":{'
  if (resp.header !== undefined) {
    if (resp.header !== lastHeader) {
      lastHeader = resp.header
      lastHeaderJson = `"header":${headerText(resp.header)},`
    }
    head += lastHeaderJson
  }
  if (resp.watch_id !== 0) head += `"watch_id":"${resp.watch_id}",`
  return { head: `${head}"events":`, events: bytes, tail: '}}' }
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
  let ej: string | undefined
  if (evs === lastEvents) ej = lastEventsJson
  else {
    const shared = isSharedEvents(evs)
    if (shared) ej = eventsJson.get(evs)
    if (ej === undefined) {
      watchJsonStats.eventEncodes++
      ej = eventsJsonText(evs)
      if (shared) eventsJson.set(evs, ej)
    }
    lastEvents = evs
    lastEventsJson = ej
  }
  let out = '{'
  if (resp.header !== undefined) {
    // The member hands every message of one revision the same header object: the last one's text is kept.
    if (resp.header !== lastHeader) {
      lastHeader = resp.header
      lastHeaderJson = `"header":${headerText(resp.header)},`
    }
    out += lastHeaderJson
  }
  if (resp.watch_id !== 0) out += `"watch_id":"${resp.watch_id}",`
  return out + '"events":' + ej + '}'
}

/*
 * The event messages' JSON written field by field: what encodeMessage writes from the descriptors (proto field order,
 * zero values omitted, int64 as strings, bytes as padded base64, enums by name) for these three messages, without
 * walking the descriptors per field (test/security/watch-fanout.test.ts checks them against encodeMessage).
 */

/** encodeMessage(M.ResponseHeader, h). */
function headerText(h: ResponseHeader): string {
  let out = '{'
  let sep = ''
  if (h.cluster_id !== undefined && h.cluster_id !== null && h.cluster_id !== '0' && h.cluster_id !== '') {
    out += `"cluster_id":"${h.cluster_id}"`
    sep = ','
  }
  if (h.member_id !== undefined && h.member_id !== null && h.member_id !== '0' && h.member_id !== '') {
    out += `${sep}"member_id":"${h.member_id}"`
    sep = ','
  }
  if (h.revision) {
    out += `${sep}"revision":"${h.revision}"`
    sep = ','
  }
  if (h.raft_term) out += `${sep}"raft_term":"${h.raft_term}"`
  return out + '}'
}

/** encodeMessage(M.KeyValue, kv). */
function keyValueText(kv: KeyValue): string {
  let out = '{'
  let sep = ''
  if (kv.key !== undefined && kv.key !== null && kv.key.length > 0) {
    out += `"key":"${encodeBase64(kv.key)}"`
    sep = ','
  }
  if (kv.create_revision) {
    out += `${sep}"create_revision":"${kv.create_revision}"`
    sep = ','
  }
  if (kv.mod_revision) {
    out += `${sep}"mod_revision":"${kv.mod_revision}"`
    sep = ','
  }
  if (kv.version) {
    out += `${sep}"version":"${kv.version}"`
    sep = ','
  }
  if (kv.value !== undefined && kv.value !== null && kv.value.length > 0) {
    out += `${sep}"value":"${encodeBase64(kv.value)}"`
    sep = ','
  }
  if (kv.lease) out += `${sep}"lease":"${kv.lease}"`
  return out + '}'
}

const eventTypeNames = M.Event.fields[0]!.enumNames!

/** encodeMessage(M.WatchResponse, { events }) without its '{"events":' and '}': the events array. */
function eventsJsonText(evs: readonly Event[]): string {
  let out = '['
  for (let i = 0; i < evs.length; i++) {
    const e = evs[i]!
    let ev = '{'
    let sep = ''
    if (e.type) {
      const name = eventTypeNames[e.type]
      ev += name === undefined ? `"type":${e.type}` : `"type":"${name}"`
      sep = ','
    }
    if (e.kv !== undefined && e.kv !== null) {
      ev += `${sep}"kv":${keyValueText(e.kv)}`
      sep = ','
    }
    if (e.prev_kv !== undefined && e.prev_kv !== null) ev += `${sep}"prev_kv":${keyValueText(e.prev_kv)}`
    out += i === 0 ? `${ev}}` : `,${ev}}`
  }
  return out + ']'
}
