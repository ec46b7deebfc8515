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

/**
 * The head of a CBOR item of major type `major` (0-7) and length/value `n`, in the shortest form, as cbor-x writes
 * array and byte-string heads (RFC 8949 §3).
 */
export function cborHead(major: number, n: number): Uint8Array {
  const m = major << 5
  if (n < 24) return Uint8Array.of(m | n)
  if (n < 0x100) return Uint8Array.of(m | 24, n)
  if (n < 0x10000) return Uint8Array.of(m | 25, n >> 8, n & 0xff)
  if (n < 0x1_0000_0000) return Uint8Array.of(m | 26, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
  const hi = Math.floor(n / 0x1_0000_0000)
  const lo = n >>> 0
  return Uint8Array.of(
    m | 27,
    hi >>> 24,
    (hi >> 16) & 0xff,
    (hi >> 8) & 0xff,
    hi & 0xff,
    lo >>> 24,
    (lo >> 16) & 0xff,
    (lo >> 8) & 0xff,
    lo & 0xff,
  )
}

/** One copy of `parts` end to end. */
export function concatBytes(parts: Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** Rows encoded per step of encodeKvSnapshotInSteps: a few ms of CBOR on a slow machine. */
export const snapshotRowsPerStep = 1024

/**
 * encodeKvSnapshot's exact bytes, as parts, built over several steps: a store of 100,000 revisions takes ~0.5-1 s
 * to encode, which in one go stalls the member's Ready loop (and so every write) for as long. The state is what the
 * caller captured (`keys` with each key's changes: Change objects are immutable, the arrays the caller's copies);
 * each `next()` encodes about `rowsPerStep` rows, and the caller yields between steps. The keys array is encoded in
 * slices (each slice's own array head dropped) between the head and tail of the same map encoded with no keys.
 */
export function* encodeKvSnapshotInSteps<C>(
  head: Omit<KvSnapshot, 'keys'>,
  keys: [Uint8Array, C[]][],
  row: (c: C) => SnapshotRow,
  rowsPerStep = snapshotRowsPerStep,
): Generator<void, Uint8Array[], void> {
  // The map with an empty keys array, split around that array (the text "keys" then 0x80, CBOR's empty array).
  const shell = encodeKvSnapshot({
    format: head.format,
    version: head.version,
    revision: head.revision,
    compact_revision: head.compact_revision,
    keys: [],
    leases: head.leases,
    alarms: head.alarms,
  })
  const mark = [0x64, 0x6b, 0x65, 0x79, 0x73, 0x80]
  let at = -1
  for (let i = 0; at < 0 && i + mark.length <= shell.length; i++) if (mark.every((b, j) => shell[i + j] === b)) at = i
  if (at < 0) throw new Error('kv snapshot: no keys array in the encoded map')
  const parts: Uint8Array[] = [shell.subarray(0, at + 5), cborHead(4, keys.length)]
  let from = 0
  while (from < keys.length) {
    let rows = 0
    let to = from
    const slice: [Uint8Array, SnapshotRow[]][] = []
    while (to < keys.length && (rows < rowsPerStep || to === from)) {
      const [k, cs] = keys[to++]!
      slice.push([k, cs.map(row)])
      rows += cs.length
    }
    const bytes = encode(slice)
    // Drop the slice's own array head; what follows is its items, as they are inside the whole keys array.
    parts.push(new Uint8Array(bytes.subarray(cborHead(4, slice.length).length)))
    from = to
    if (from < keys.length) yield
  }
  parts.push(shell.subarray(at + 6))
  return parts
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
