/**
 * etcd's key permissions (authpb.Permission): a role grants READ, WRITE or READWRITE on one key, on a range
 * [key, range_end), or on everything from key on (range_end "\0", etcdctl's --from-key). A prefix is the range
 * [prefix, prefixEnd(prefix)). A request is permitted when the union of the granted intervals covers the whole
 * interval it touches (etcd's auth/range_perm_cache.go merges intervals the same way).
 */

import { type Permission, PermType } from '../protocol/types.js'

export { type Permission, PermType }

/** A half-open interval of keys; `end` null means "to the end of the key space". */
export interface KeyInterval {
  start: Uint8Array
  end: Uint8Array | null
}

/** Byte-wise comparison of two keys (the order etcd's keys sort in). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.length - b.length
}

/** The key right after `key` in byte order: key + "\0". [key, pointEnd(key)) holds exactly key. */
export function pointEnd(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length + 1)
  out.set(key)
  return out
}

/** etcd's GetPrefixRangeEnd: the smallest key greater than every key with this prefix ("\0" = no end). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = prefix.slice()
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1
      return end.slice(0, i + 1)
    }
  }
  return new Uint8Array([0])
}

/**
 * The interval a (key, range_end) pair names, as etcd reads it in requests and permissions: empty range_end is the
 * key alone, "\0" is everything from key on. A range_end at or before key names no key; it is read as the key alone
 * so that a malformed request still needs the permission on its key (stricter than needed, never looser).
 */
export function toInterval(key: Uint8Array, rangeEnd: Uint8Array): KeyInterval {
  if (rangeEnd.length === 0) return { start: key, end: pointEnd(key) }
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { start: key, end: null }
  if (compareBytes(rangeEnd, key) <= 0) return { start: key, end: pointEnd(key) }
  return { start: key, end: rangeEnd }
}

/**
 * The keys a granted permission covers, as etcd 3.4's permission cache reads it (getMergedPerms): empty range_end is
 * the key alone, "\0" everything from key on, else [key, range_end), so a range_end at or before key covers no key
 * (etcd's interval tree never finds a key in such an interval; diff seed 11440, session 11). Unlike a request's
 * range (toInterval), it is never read as the key alone: that would grant what etcd refuses.
 */
export function permInterval(key: Uint8Array, rangeEnd: Uint8Array): KeyInterval | undefined {
  if (rangeEnd.length > 0 && !(rangeEnd.length === 1 && rangeEnd[0] === 0) && compareBytes(rangeEnd, key) <= 0)
    return undefined
  return toInterval(key, rangeEnd)
}

/** Whether a permission of type `granted` allows an operation needing `wanted` (READ or WRITE). */
export function grants(granted: PermType, wanted: PermType.READ | PermType.WRITE): boolean {
  return granted === PermType.READWRITE || granted === wanted
}

/** Sorts and merges overlapping or adjacent intervals into disjoint ones. */
export function mergeIntervals(intervals: KeyInterval[]): KeyInterval[] {
  const sorted = [...intervals].sort((a, b) => compareBytes(a.start, b.start))
  const out: KeyInterval[] = []
  for (const iv of sorted) {
    const last = out[out.length - 1]
    if (last && (last.end === null || compareBytes(iv.start, last.end) <= 0)) {
      if (last.end !== null && (iv.end === null || compareBytes(iv.end, last.end) > 0)) last.end = iv.end
      continue
    }
    out.push({ start: iv.start, end: iv.end })
  }
  return out
}

/** Whether the merged (disjoint, sorted) intervals cover `want` entirely. */
export function covers(merged: readonly KeyInterval[], want: KeyInterval): boolean {
  for (const iv of merged) {
    if (compareBytes(iv.start, want.start) > 0) return false
    if (iv.end === null) return true
    if (want.end !== null && compareBytes(want.end, iv.end) <= 0) return true
  }
  return false
}

/**
 * Whether `perms` allow `wanted` on every key of [key, range_end) (etcd's isRangeOpPermitted; an empty range_end
 * checks the key alone, as its checkKeyPoint).
 */
export function isRangePermitted(
  perms: readonly Permission[],
  wanted: PermType.READ | PermType.WRITE,
  key: Uint8Array,
  rangeEnd: Uint8Array,
): boolean {
  const granted = perms.flatMap((p) => {
    const iv = grants(p.permType, wanted) ? permInterval(p.key, p.range_end) : undefined
    return iv ? [iv] : []
  })
  if (granted.length === 0) return false
  return covers(mergeIntervals(granted), toInterval(key, rangeEnd))
}
