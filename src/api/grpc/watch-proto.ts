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
