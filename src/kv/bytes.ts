/**
 * Keys as "binary strings": one UTF-16 code unit per byte (0..255). JS string comparison of such strings is exactly
 * the bytewise order etcd uses for keys, they are cheap Map and B-tree keys, and V8 stores them one byte per char.
 */

const chunkBytes = 4096

/** The binary string of a byte array. */
export function keyString(b: Uint8Array): string {
  if (b.length <= chunkBytes) return String.fromCharCode.apply(null, b as unknown as number[])
  let s = ''
  for (let i = 0; i < b.length; i += chunkBytes) {
    s += String.fromCharCode.apply(null, b.subarray(i, i + chunkBytes) as unknown as number[])
  }
  return s
}

/** The bytes of a binary string. */
export function keyBytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i)
  return b
}

/** Orders byte arrays as Go's bytes.Compare. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.length - b.length
}

/**
 * A private copy: request bytes may be views into a larger buffer (a decoded Raft entry) that must not be retained.
 * Not `b.slice()`: on a Node Buffer (a WAL read, a peer's frame) that is a view, not a copy.
 */
export function ownBytes(b: Uint8Array): Uint8Array {
  if (b.length === 0) return emptyBytes
  const copy = new Uint8Array(b.length)
  copy.set(b)
  return copy
}

export const emptyBytes: Uint8Array = new Uint8Array(0)

/**
 * A key interval as etcd reads `key` and `range_end`: an empty range_end is the single key; `"\0"` means every key
 * >= key; otherwise [key, range_end), which is empty when range_end <= key.
 */
export interface KeyRange {
  start: string
  /** Exclusive end; undefined means no upper bound (only when `single` is false). */
  end: string | undefined
  single: boolean
  /** True when the interval holds no key at all (range_end <= key). */
  empty: boolean
}

/** True for etcd's "from key" range end, a single zero byte. */
export function isFromKey(rangeEnd: Uint8Array): boolean {
  return rangeEnd.length === 1 && rangeEnd[0] === 0
}

export function resolveRange(key: Uint8Array, rangeEnd: Uint8Array): KeyRange {
  const start = keyString(key)
  if (rangeEnd.length === 0) return { start, end: undefined, single: true, empty: false }
  if (isFromKey(rangeEnd)) return { start, end: undefined, single: false, empty: false }
  const end = keyString(rangeEnd)
  return { start, end, single: false, empty: end <= start }
}

/** Whether a key (binary string) lies in the range. */
export function inRange(r: KeyRange, k: string): boolean {
  if (r.single) return k === r.start
  if (r.empty || k < r.start) return false
  return r.end === undefined || k < r.end
}
