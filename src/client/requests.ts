/**
 * Building the gateway's request bodies from readable options: keys and values base64, range ends for prefixes
 * and "from key", enums by name.
 */

import type { SortOrder as SortOrderEnum, SortTarget as SortTargetEnum } from '../protocol/types.js'
import { type Bytes, prefixRangeEnd, toBase64, toBytes } from './bytes.js'
import { idString, type LeaseIdLike } from './types.js'

/** Sort order of a range: the names of etcd's RangeRequest_SortOrder ('NONE' | 'ASCEND' | 'DESCEND'). */
export type SortOrder = keyof typeof SortOrderEnum
/** What a range sorts by: the names of etcd's RangeRequest_SortTarget ('KEY' | 'VERSION' | ...). */
export type SortTarget = keyof typeof SortTargetEnum

/** Every option of etcd's RangeRequest. */
export interface RangeOptions {
  /** End of the range (exclusive); see also `prefix` and `fromKey`. */
  rangeEnd?: Bytes
  /** Every key that starts with the key. */
  prefix?: boolean
  /** Every key greater than or equal to the key. */
  fromKey?: boolean
  /** At most this many keys (0 = all). */
  limit?: number
  /** Read at this revision (0 = now). */
  revision?: number
  sortOrder?: SortOrder
  sortTarget?: SortTarget
  /** Answer from the member's local state, without a ReadIndex round. */
  serializable?: boolean
  keysOnly?: boolean
  countOnly?: boolean
  minModRevision?: number
  maxModRevision?: number
  minCreateRevision?: number
  maxCreateRevision?: number
}

/** The range end given the key and options (undefined: a single key). */
export function rangeEndOf(
  key: Bytes,
  o: { rangeEnd?: Bytes; prefix?: boolean; fromKey?: boolean },
): Uint8Array | undefined {
  if (o.rangeEnd !== undefined) return toBytes(o.rangeEnd)
  if (o.prefix) return toBytes(key).length === 0 ? new Uint8Array([0]) : prefixRangeEnd(key)
  if (o.fromKey) return new Uint8Array([0])
  return undefined
}

/** The key of a request; etcd reads an empty key with range_end "\0" as "every key". */
function keyOf(key: Bytes, end: Uint8Array | undefined): string {
  const k = toBytes(key)
  return toBase64(k.length === 0 && end !== undefined ? new Uint8Array([0]) : k)
}

export function rangeRequest(key: Bytes, o: RangeOptions = {}): Record<string, unknown> {
  const end = rangeEndOf(key, o)
  const r: Record<string, unknown> = { key: keyOf(key, end) }
  if (end !== undefined) r.range_end = toBase64(end)
  if (o.limit) r.limit = String(o.limit)
  if (o.revision) r.revision = String(o.revision)
  if (o.sortOrder && o.sortOrder !== 'NONE') r.sort_order = o.sortOrder
  if (o.sortTarget && o.sortTarget !== 'KEY') r.sort_target = o.sortTarget
  // As etcd's clientv3: sorting by something else than the key with no order means ascending.
  if (o.sortTarget && o.sortTarget !== 'KEY' && (!o.sortOrder || o.sortOrder === 'NONE')) r.sort_order = 'ASCEND'
  if (o.serializable) r.serializable = true
  if (o.keysOnly) r.keys_only = true
  if (o.countOnly) r.count_only = true
  if (o.minModRevision) r.min_mod_revision = String(o.minModRevision)
  if (o.maxModRevision) r.max_mod_revision = String(o.maxModRevision)
  if (o.minCreateRevision) r.min_create_revision = String(o.minCreateRevision)
  if (o.maxCreateRevision) r.max_create_revision = String(o.maxCreateRevision)
  return r
}

/** Options of a put. */
export interface PutOptions {
  lease?: LeaseIdLike
  prevKv?: boolean
  ignoreValue?: boolean
  ignoreLease?: boolean
}

export function putRequest(key: Bytes, value: Bytes, o: PutOptions = {}): Record<string, unknown> {
  const r: Record<string, unknown> = { key: toBase64(key) }
  if (!o.ignoreValue) r.value = toBase64(value)
  if (o.lease !== undefined && idString(o.lease) !== '0') r.lease = idString(o.lease)
  if (o.prevKv) r.prev_kv = true
  if (o.ignoreValue) r.ignore_value = true
  if (o.ignoreLease) r.ignore_lease = true
  return r
}

/** Options of a delete. */
export interface DeleteOptions {
  rangeEnd?: Bytes
  prefix?: boolean
  fromKey?: boolean
  prevKv?: boolean
}

export function deleteRequest(key: Bytes, o: DeleteOptions = {}): Record<string, unknown> {
  const end = rangeEndOf(key, o)
  const r: Record<string, unknown> = { key: keyOf(key, end) }
  if (end !== undefined) r.range_end = toBase64(end)
  if (o.prevKv) r.prev_kv = true
  return r
}
