/**
 * Keys inside the replica are binary strings: one char (0..255) per byte, so JavaScript's string order is etcd's
 * byte order and atob's output is a key as is. These helpers convert from and to the API's strings and bytes.
 */
import { type Bytes, prefixRangeEnd, toBytes } from '../client/bytes.js'

const encoder = new TextEncoder()
const decoder = new TextDecoder()
/** Any char above 0x7f (a string without one is its own UTF-8 binary string). */
const nonAscii = /[^\0-~\x7f]/

/** The binary string of a key given as UTF-8 text or bytes. */
export function toBin(b: Bytes): string {
  if (typeof b === 'string') {
    if (!nonAscii.test(b)) return b
    return binOfBytes(encoder.encode(b))
  }
  return binOfBytes(b)
}

export function binOfBytes(u: Uint8Array): string {
  let s = ''
  for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode(...u.subarray(i, i + 0x8000))
  return s
}

export function bytesOfBin(s: string): Uint8Array {
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  return out
}

/** UTF-8 text of a binary string. */
export function textOfBin(s: string): string {
  if (!nonAscii.test(s)) return s
  return decoder.decode(bytesOfBin(s))
}

export function textOfBytes(u: Uint8Array): string {
  return decoder.decode(u)
}

/** What a caller may name: one key, a prefix, a [key, rangeEnd) range, or every key from `key` up. */
export type KeySpan = Bytes | { prefix: Bytes } | { key: Bytes; rangeEnd?: Bytes; prefix?: boolean; fromKey?: boolean }

/** The [key, end) of a span as binary strings; end '' is the single key, '\0' every key from `key` up. */
export function spanOf(s: KeySpan): { key: string; end: string } {
  if (typeof s === 'string' || s instanceof Uint8Array) return { key: toBin(s), end: '' }
  if ('prefix' in s && !('key' in s)) return prefixSpan(s.prefix)
  const o = s as { key: Bytes; rangeEnd?: Bytes; prefix?: boolean; fromKey?: boolean }
  if (o.rangeEnd !== undefined) return { key: toBin(o.key), end: toBin(o.rangeEnd) }
  if (o.prefix) return prefixSpan(o.key)
  if (o.fromKey) return { key: toBin(o.key) || '\0', end: '\0' }
  return { key: toBin(o.key), end: '' }
}

function prefixSpan(p: Bytes): { key: string; end: string } {
  const bytes = toBytes(p)
  // etcd: an empty key with range end "\0" is every key.
  if (bytes.length === 0) return { key: '\0', end: '\0' }
  return { key: toBin(bytes), end: binOfBytes(prefixRangeEnd(bytes)) }
}

/** A followed range always has an end: a single key K follows [K, K+"\0"). */
export function followedSpan(s: KeySpan): { key: string; end: string } {
  const r = spanOf(s)
  return r.end === '' ? { key: r.key, end: `${r.key}\0` } : r
}

/** A stable id for a followed range (hex of key and end). */
export function rangeId(key: string, end: string): string {
  const hex = (x: string) => {
    let o = ''
    for (let i = 0; i < x.length; i++) o += x.charCodeAt(i).toString(16).padStart(2, '0')
    return o
  }
  return `${hex(key)}-${hex(end)}`
}

/** A readable form of a range for messages: `prefix/` or `[a, b)`. */
export function describeRange(key: string, end: string): string {
  const text = (x: string) => JSON.stringify(textOfBin(x))
  if (end === '\0') return `every key from ${text(key)}`
  const pe = key.length > 0 ? key.slice(0, -1) + String.fromCharCode(key.charCodeAt(key.length - 1) + 1) : ''
  if (end === pe) return `prefix ${text(key)}`
  return `[${text(key)}, ${text(end)})`
}
