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
import type { Event, WatchResponse } from '../../protocol/types.js'
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
