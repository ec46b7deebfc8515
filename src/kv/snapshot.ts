/**
 * The KV store's snapshot format: CBOR (cbor-x default encode, plain maps and arrays, no record extension, so any
 * CBOR decoder reads it; byte strings carry cbor-x's tag 64, "uint8 typed array", RFC 8746). It holds the complete replicated state, so a restored store answers every read, historical
 * ones included, exactly as the original: every key's retained history, the revision, the compact revision, leases
 * with the remaining TTL of their last checkpoint, and alarms. Local state (lease clocks, watchers) is not in it.
 *
 * Layout (v1):
 *   { format: "edgecd-kv", version: 1, revision, compact_revision,
 *     keys: [[key, [row...]]...]         key order; rows oldest first:
 *       tombstone row: [main, sub]
 *       live row:      [main, sub, create_revision, version, value, lease as decimal string or ""]
 *     leases: [[id as decimal string, ttl, remaining_ttl]...]   id order
 *     alarms: [[member_id, alarm_type]...] }
 */
import { decode, encode } from 'cbor-x'

export const snapshotFormat = 'edgecd-kv'
export const snapshotVersion = 1

export type SnapshotRow = [number, number] | [number, number, number, number, Uint8Array, string]

export interface KvSnapshot {
  format: string
  version: number
  revision: number
  compact_revision: number
  keys: [Uint8Array, SnapshotRow[]][]
  leases: [string, number, number][]
  alarms: [string, number][]
}

/** Encodes to a plain Uint8Array of its own (cbor-x hands out a Buffer view of a reused pool on Node). */
export function encodeKvSnapshot(s: KvSnapshot): Uint8Array {
  return new Uint8Array(encode(s))
}

/** A snapshot that cannot be read: wrong format, version, or shape. */
export class KvSnapshotError extends Error {
  readonly code = 'ErrKvSnapshotInvalid'
  constructor(message: string) {
    super(`invalid kv snapshot: ${message}`)
    this.name = 'KvSnapshotError'
  }
}

/** Decodes and checks the shape; byte strings are copied out of the input so it can be released. */
export function decodeKvSnapshot(bytes: Uint8Array): KvSnapshot {
  let s: unknown
  try {
    s = decode(bytes)
  } catch (err) {
    throw new KvSnapshotError(`not CBOR: ${(err as Error).message}`)
  }
  const o = s as Partial<KvSnapshot> | null
  if (o === null || typeof o !== 'object' || o.format !== snapshotFormat)
    throw new KvSnapshotError('not an edgecd-kv snapshot')
  if (o.version !== snapshotVersion) throw new KvSnapshotError(`unsupported version ${String(o.version)}`)
  if (!Number.isSafeInteger(o.revision) || !Number.isSafeInteger(o.compact_revision)) {
    throw new KvSnapshotError('bad revision')
  }
  if (!Array.isArray(o.keys) || !Array.isArray(o.leases) || !Array.isArray(o.alarms))
    throw new KvSnapshotError('bad shape')
  const own = (b: unknown): Uint8Array => {
    if (!(b instanceof Uint8Array)) throw new KvSnapshotError('expected bytes')
    return new Uint8Array(b)
  }
  const keys: [Uint8Array, SnapshotRow[]][] = o.keys.map(([k, rows]) => {
    if (!Array.isArray(rows)) throw new KvSnapshotError('bad key rows')
    return [
      own(k),
      rows.map((r: SnapshotRow) => (r.length === 2 ? [r[0], r[1]] : [r[0], r[1], r[2], r[3], own(r[4]), r[5]])),
    ]
  })
  return {
    format: o.format,
    version: o.version,
    revision: o.revision!,
    compact_revision: o.compact_revision!,
    keys,
    leases: o.leases,
    alarms: o.alarms,
  }
}
