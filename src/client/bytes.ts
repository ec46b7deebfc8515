/**
 * Keys and values on the wire are standard base64 with padding (etcd's gateway); in the API they are strings
 * (UTF-8) or Uint8Array. Uses only btoa/atob and TextEncoder, so it runs in every runtime.
 */

/** A key or value as callers give it: a string is encoded as UTF-8. */
export type Bytes = string | Uint8Array

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** The bytes of a key or value. */
export function toBytes(b: Bytes): Uint8Array {
  return typeof b === 'string' ? encoder.encode(b) : b
}

/** UTF-8 text of bytes (invalid sequences become U+FFFD). */
export function bytesToString(b: Uint8Array): string {
  return decoder.decode(b)
}

/** Standard padded base64 of bytes or a string. */
export function toBase64(b: Bytes): string {
  const u = toBytes(b)
  let s = ''
  // Chunked so String.fromCharCode never gets more arguments than the engine allows.
  for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode(...u.subarray(i, i + 0x8000))
  return btoa(s)
}

/**
 * Bytes of a standard base64 string ('' and undefined are empty). atob's binary string is copied by TextEncoder when
 * it is ASCII (most values: text, JSON), natively and several times faster than a charCodeAt loop (a watch decodes
 * every value it receives); a byte above 0x7f makes the UTF-8 longer than the string, so encodeInto stops short and
 * the loop copies it.
 */
export function fromBase64(s: string | undefined): Uint8Array {
  if (!s) return new Uint8Array(0)
  const bin = atob(s)
  const out = new Uint8Array(bin.length)
  if (encoder.encodeInto(bin, out).read === bin.length) return out
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
  return out
}

/**
 * The range end that selects every key starting with `prefix` (etcd's clientv3.GetPrefixRangeEnd): the prefix with
 * its last byte below 0xff incremented and what follows dropped; all 0xff (or empty) means "to the end" (`\0`).
 */
export function prefixRangeEnd(prefix: Bytes): Uint8Array {
  const p = toBytes(prefix)
  for (let i = p.length - 1; i >= 0; i--) {
    if (p[i]! < 0xff) {
      const end = p.slice(0, i + 1)
      end[i]! += 1
      return end
    }
  }
  return new Uint8Array([0])
}
