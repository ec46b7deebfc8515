/**
 * A WatchResponse as a protobuf message for the gRPC Watch stream, encoding the events of one watch shape once: the
 * hub hands every watcher of a shape the same Event[] for a revision (and the member gives the messages of a revision
 * one header object), so the events and the header are serialized once here, not once per watcher (issue 17), and
 * each watcher's message only adds its watch_id (and fragment). The serialized parts ride in the message as
 * protobuf-es unknown fields, which toBinary writes verbatim, in the order given, after the known fields; an event
 * message's known fields are all left at their defaults (written as nothing), so the bytes are those of the canonical
 * encoding, fields in number order (test/grpc/watch-encode.test.ts checks it byte for byte). Such a message is for
 * the binary codec only (the gRPC front door has no other): decoded, it holds everything; as an object, its header
 * and events are in `$unknown`. Messages without events (created, canceled, progress) are converted as they are.
 */
import { create, toBinary, type UnknownField } from '@bufbuild/protobuf'
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire'
import { isSharedEvents } from '../../kv/watch.js'
import type { Event, WatchResponse } from '../../protocol/types.js'
import { encodeMessage } from './codec.js'
import { toProto } from './convert.js'
import * as pb from './gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import { EventSchema } from './gen/etcd/mvcc/mvccpb/kv_pb.js'

/** WatchResponse's field numbers (rpc.proto). */
const headerField = 1
const watchIdField = 2
const fragmentField = 7
const eventsField = 11

const encodedEvents = new WeakMap<readonly Event[], UnknownField[]>()
const encodedHeaders = new WeakMap<object, UnknownField>()
const empty = create(pb.WatchResponseSchema)
const fragmentTrue: UnknownField = { no: fragmentField, wireType: WireType.Varint, data: Uint8Array.of(1) }
/** watch_id varints of small ids, made once. */
const smallIds: UnknownField[] = []

/** How many event arrays were serialized: one per watch shape and revision, however many watchers (for tests). */
export const watchProtoStats = { eventEncodes: 0 }

function lengthDelimited(no: number, bytes: Uint8Array): UnknownField {
  return { no, wireType: WireType.LengthDelimited, data: new BinaryWriter().bytes(bytes).finish() }
}

function watchIdOf(id: WatchResponse['watch_id']): UnknownField | undefined {
  if (id === 0 || id === 0n) return undefined
  if (typeof id === 'number' && id > 0 && id < 4096) {
    let f = smallIds[id]
    if (f === undefined) {
      f = { no: watchIdField, wireType: WireType.Varint, data: new BinaryWriter().int64(id).finish() }
      smallIds[id] = f
    }
    return f
  }
  return { no: watchIdField, wireType: WireType.Varint, data: new BinaryWriter().int64(id).finish() }
}

export function watchResponseToProto(r: WatchResponse): pb.WatchResponse {
  if (r.events.length === 0 || r.created || r.canceled || r.compact_revision !== 0 || r.cancel_reason !== '') {
    return toProto(pb.WatchResponseSchema, r)
  }
  let events = encodedEvents.get(r.events)
  if (events === undefined) {
    watchProtoStats.eventEncodes++
    events = toProto(pb.WatchResponseSchema, { events: r.events }).events.map((e) =>
      lengthDelimited(eventsField, toBinary(EventSchema, e)),
    )
    encodedEvents.set(r.events, events)
  }
  const fields: UnknownField[] = []
  if (r.header !== undefined) {
    let h = encodedHeaders.get(r.header)
    if (h === undefined) {
      h = lengthDelimited(headerField, toBinary(pb.ResponseHeaderSchema, toProto(pb.ResponseHeaderSchema, r.header)))
      encodedHeaders.set(r.header, h)
    }
    fields.push(h)
  }
  const id = watchIdOf(r.watch_id)
  if (id !== undefined) fields.push(id)
  if (r.fragment) fields.push(fragmentTrue)
  for (const e of events) fields.push(e)
  // An empty message written out (protobuf-es messages are plain objects): create() or a spread per watcher cost more.
  return {
    $typeName: empty.$typeName,
    watchId: 0n,
    created: false,
    canceled: false,
    compactRevision: 0n,
    cancelReason: '',
    fragment: false,
    events: [],
    $unknown: fields,
  }
}

/**
 * How much a gRPC watch stream may hold for a slow client before the hub holds events back: bytes of events (an
 * Event[] shared by many watchers of one shape counts once, as it is held once) plus a small cost per message. A
 * count of messages alone (64) sent 10,000 watchers of one stream through the congested path at every event.
 */
export class WatchQueueBudget {
  private held = new WeakSet<readonly Event[]>()
  private bytes = 0

  constructor(private readonly maxBytes = 4 * 1024 * 1024) {}

  /** Counts a queued message; false once the stream holds more than the budget. */
  add(r: WatchResponse): boolean {
    this.bytes += 128
    if (r.events.length > 0 && !this.held.has(r.events)) {
      this.held.add(r.events)
      for (const e of r.events) {
        this.bytes += 64 + (e.kv?.key.length ?? 0) + (e.kv?.value.length ?? 0)
        if (e.prev_kv) this.bytes += 64 + e.prev_kv.key.length + e.prev_kv.value.length
      }
    }
    return this.bytes < this.maxBytes
  }

  /** The queue was taken for sending. */
  reset(): void {
    this.held = new WeakSet()
    this.bytes = 0
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The raw gRPC Watch path (./watch-session.ts): WatchResponses written straight into the bytes of gRPC messages.

/** The events of one Event[] as WatchResponse field 11 entries, and where each entry ends (for fragmenting). */
interface EncodedEvents {
  bytes: Uint8Array
  ends: number[]
}

/**
 * Encoded events kept for the Event[] the hub shares among watchers (isSharedEvents), plus the last one encoded: any
 * other array goes to one watcher once, and a WeakMap entry per message cost more than its encoding (issue 17).
 */
const rawEvents = new WeakMap<readonly Event[], EncodedEvents>()
let lastRawEvents: readonly Event[] | undefined
let lastRawEncoded: EncodedEvents | undefined
/** The last header encoded: the member hands every message of one revision the same header object. */
let lastRawHeader: object | undefined
let lastRawHeaderBytes: Uint8Array | undefined

/** Appends a varint (up to 2^32 - 1). */
function putUvarint(out: Uint8Array, at: number, v: number): number {
  while (v > 0x7f) {
    out[at++] = (v & 0x7f) | 0x80
    v >>>= 7
  }
  out[at++] = v
  return at
}

function uvarintSize(v: number): number {
  let n = 1
  while (v > 0x7f) {
    v >>>= 7
    n++
  }
  return n
}

/** A length-delimited field: tag, length, body. */
function delimited(tag: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + uvarintSize(body.length) + body.length)
  out.set(body, putUvarint(out, putUvarint(out, 0, tag), body.length))
  return out
}

function headerBytes(h: NonNullable<WatchResponse['header']>): Uint8Array {
  if (h !== lastRawHeader || lastRawHeaderBytes === undefined) {
    lastRawHeaderBytes = delimited((headerField << 3) | 2, encodeMessage(pb.ResponseHeaderSchema, h))
    lastRawHeader = h
  }
  return lastRawHeaderBytes
}

function eventsBytes(events: readonly Event[]): EncodedEvents {
  if (events === lastRawEvents && lastRawEncoded !== undefined) return lastRawEncoded
  const shared = isSharedEvents(events)
  let e = shared ? rawEvents.get(events) : undefined
  if (e === undefined) {
    watchProtoStats.eventEncodes++
    const parts = events.map((ev) => delimited((eventsField << 3) | 2, encodeMessage(EventSchema, ev)))
    let size = 0
    for (const p of parts) size += p.length
    const bytes = new Uint8Array(size)
    const ends: number[] = []
    let at = 0
    for (const p of parts) {
      bytes.set(p, at)
      at += p.length
      ends.push(at)
    }
    e = { bytes, ends }
    if (shared) rawEvents.set(events, e)
  }
  lastRawEvents = events
  lastRawEncoded = e
  return e
}

/** Size of the watch_id field (tag and int64 varint; none for 0). */
function watchIdSize(id: WatchResponse['watch_id']): number {
  if (id === 0 || id === 0n) return 0
  if (typeof id === 'number') {
    if (id < 0) return 11
    let n = 2
    for (let v = id; v >= 128; v = Math.floor(v / 128)) n++
    return n
  }
  let u = BigInt.asUintN(64, id)
  let n = 2
  for (; u >= 128n; u >>= 7n) n++
  return n
}

/** Writes the watch_id field (see watchIdSize) at `at`; returns the position after it. */
function putWatchId(b: Uint8Array, at: number, id: WatchResponse['watch_id']): number {
  if (id === 0 || id === 0n) return at
  b[at++] = (watchIdField << 3) | WireType.Varint
  if (typeof id === 'number' && id >= 0) {
    let v = id
    while (v >= 128) {
      b[at++] = (v % 128) | 0x80
      v = Math.floor(v / 128)
    }
    b[at++] = v
    return at
  }
  let u = BigInt.asUintN(64, BigInt(id))
  while (u >= 128n) {
    b[at++] = Number(u & 0x7fn) | 0x80
    u >>= 7n
  }
  b[at++] = Number(u)
  return at
}

const fragmentBytes = Uint8Array.of((fragmentField << 3) | WireType.Varint, 1)

/**
 * Buffers of written chunks, shared by every stream of the member (a turn takes one, the transport gives it back once
 * written): bounded in count and bytes for the whole member, so that idle streams hold no large buffer.
 */
const framesPool: Uint8Array[] = []
let framesPoolBytes = 0
/** At most this many buffers and bytes in the pool. */
const framesPoolMax = 16
const framesPoolBytesMax = 16 * 1024 * 1024

/**
 * Enveloped gRPC messages (flag byte, 4-byte length, body) appended into one buffer, taken as one chunk for one
 * write on the stream. A taken chunk is never written into again until the transport gives it back (`release`, once
 * written): one put to 10,000 watchers is ~1.3 MB, and a fresh buffer per turn (zero-filled, new pages) cost more
 * than the encoding. Small turns are copied out and their buffer stays with the stream.
 */
export class GrpcFrames {
  private buf: Uint8Array = empty8
  private pos = 0
  /** The last large turn's size: the next buffer starts there (the next turn is probably about as large). */
  private last = 0
  /** Messages appended since the last take. */
  count = 0

  constructor(private readonly initialBytes = 16 * 1024) {}

  /** Bytes appended since the last take. */
  get size(): number {
    return this.pos
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    if (this.pos === 0) {
      const want = Math.max(n, this.initialBytes, Math.min(this.last, framesKeptBytesMax))
      const i = framesPool.findIndex((b) => b.length >= want)
      if (i >= 0) {
        this.buf = framesPool[i]!
        framesPool.splice(i, 1)
        framesPoolBytes -= this.buf.length
      } else this.buf = new Uint8Array(want)
      return
    }
    let size = this.buf.length * 2
    while (size < this.pos + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
  }

  /** Appends one message of these bytes (their concatenation); returns its size with the envelope. */
  message(bytes: Uint8Array): number {
    const len = bytes.length
    this.ensure(5 + len)
    const at = this.envelope(len)
    this.buf.set(bytes, at)
    this.pos = at + len
    this.count++
    return 5 + len
  }

  /**
   * Appends one event message: header, watch_id, fragment and events in field order (every other field of an event
   * message is at its default, written as nothing); returns its size with the envelope.
   */
  eventMessage(
    header: Uint8Array | undefined,
    id: WatchResponse['watch_id'],
    fragment: boolean,
    events: Uint8Array,
  ): number {
    const len = (header?.length ?? 0) + watchIdSize(id) + (fragment ? 2 : 0) + events.length
    this.ensure(5 + len)
    const b = this.buf
    let at = this.envelope(len)
    if (header !== undefined) {
      b.set(header, at)
      at += header.length
    }
    at = putWatchId(b, at, id)
    if (fragment) {
      b[at++] = fragmentBytes[0]!
      b[at++] = 1
    }
    b.set(events, at)
    this.pos = at + events.length
    this.count++
    return 5 + len
  }

  /** The 5-byte envelope of a message of `len` bytes at the end (room ensured); returns where the body goes. */
  private envelope(len: number): number {
    const b = this.buf
    const at = this.pos
    b[at] = 0
    b[at + 1] = len >>> 24
    b[at + 2] = len >>> 16
    b[at + 3] = len >>> 8
    b[at + 4] = len
    return at + 5
  }

  /** Everything appended since the last take, as one chunk; the next appends go to another buffer. */
  take(): Uint8Array {
    // A small turn (a created answer, one event to a few watchers) is copied out; the stream keeps a small buffer.
    if (this.pos <= framesCopiedBytesMax) {
      const small = this.buf.slice(0, this.pos)
      if (this.buf.length > 4 * this.initialBytes) {
        // A large buffer (after a large turn) goes back to the pool rather than stay with an idle stream.
        const large = this.buf
        this.buf = empty8
        this.release(large)
      }
      this.pos = 0
      this.count = 0
      return small
    }
    const out = this.buf.subarray(0, this.pos)
    this.last = this.pos
    this.buf = empty8
    this.pos = 0
    this.count = 0
    return out
  }

  /** A taken chunk the transport has written: its buffer goes to the member's pool (bounded), for a later turn. */
  release(chunk: Uint8Array): void {
    const size = chunk.buffer.byteLength
    // A small turn's copy is not worth keeping.
    if (size < this.initialBytes || size > framesKeptBytesMax || chunk.buffer === this.buf.buffer) return
    if (framesPool.length >= framesPoolMax || framesPoolBytes + size > framesPoolBytesMax) return
    framesPool.push(new Uint8Array(chunk.buffer, 0, size))
    framesPoolBytes += size
  }
}

const empty8 = new Uint8Array(0)
/** Turns up to this size are copied out of the buffer rather than handed over with it. */
const framesCopiedBytesMax = 4096
/** The largest buffer kept for reuse (and the largest first buffer of a turn). */
const framesKeptBytesMax = 4 * 1024 * 1024

/**
 * Appends `r` to `frames` as gRPC messages with the canonical protobuf encoding (the bytes of
 * `toBinary(WatchResponseSchema, toProto(WatchResponseSchema, r))`): the header and an Event[] are serialized once
 * (cached by identity: every watcher of a shape shares them), each watcher's message only adds its watch_id. With
 * `fragmentBytesMax` (the watcher was created with `fragment: true`; etcd's figure is --max-request-bytes plus 512 KiB), a
 * message of two events or more whose size is `fragmentBytesMax` or more is split as etcd 3.4's sendFragments splits it: each part with `fragment: true` but the
 * last, as many events per part as keep it under the limit (at least one). Returns the bytes appended.
 */
export function appendWatchResponse(frames: GrpcFrames, r: WatchResponse, fragmentBytesMax?: number): number {
  if (r.events.length === 0 || r.created || r.canceled || r.compact_revision !== 0 || r.cancel_reason !== '') {
    return frames.message(encodeMessage(pb.WatchResponseSchema, r))
  }
  const header = r.header === undefined ? undefined : headerBytes(r.header)
  const id = r.watch_id
  const ev = eventsBytes(r.events)
  if (fragmentBytesMax === undefined || r.events.length < 2) {
    return frames.eventMessage(header, id, r.fragment, ev.bytes)
  }
  const base = (header?.length ?? 0) + watchIdSize(id)
  if (base + (r.fragment ? 2 : 0) + ev.bytes.length < fragmentBytesMax) {
    return frames.eventMessage(header, id, r.fragment, ev.bytes)
  }
  // etcd's sendFragments: sizes measured with fragment set.
  let n = 0
  let start = 0
  let idx = 0
  const count = ev.ends.length
  while (idx < count) {
    const from = idx
    let end = start
    for (; idx < count; idx++) {
      const next = ev.ends[idx]!
      if (idx > from && base + 2 + (next - start) >= fragmentBytesMax) break
      end = next
    }
    const last = idx === count
    n += frames.eventMessage(header, id, !last, ev.bytes.subarray(start, end))
    start = end
  }
  return n
}
