/**
 * A WatchResponse as a protobuf message for the gRPC Watch stream, sharing the converted events of one watch shape:
 * the hub hands every watcher of a shape the same Event[] for a revision, so it is converted once here, not once per
 * watcher (issue 17). The binary encoding is still per message (the gRPC framework serializes each one).
 */
import type { Event, WatchResponse } from '../../protocol/types.js'
import { toProto } from './convert.js'
import * as pb from './gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'

const converted = new WeakMap<readonly Event[], pb.WatchResponse['events']>()

export function watchResponseToProto(r: WatchResponse): pb.WatchResponse {
  if (r.events.length === 0) return toProto(pb.WatchResponseSchema, r)
  let events = converted.get(r.events)
  if (events === undefined) {
    events = toProto(pb.WatchResponseSchema, { events: r.events }).events
    converted.set(r.events, events)
  }
  const m = toProto(pb.WatchResponseSchema, { ...r, events: [] })
  m.events = events
  return m
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
