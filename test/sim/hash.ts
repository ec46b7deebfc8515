/**
 * Small non-cryptographic hashes (32-bit, murmur3-style mixing) for the trace fingerprint and the applied-entry
 * chain. Collisions are possible in principle (one in 2^32 per comparison), which is fine for a test oracle.
 */

/** Mixes one 32-bit integer into h. */
export function mix(h: number, n: number): number {
  let k = Math.imul(n | 0, 0xcc9e2d51)
  k = (k << 15) | (k >>> 17)
  k = Math.imul(k, 0x1b873593)
  h ^= k
  h = (h << 13) | (h >>> 19)
  return (Math.imul(h, 5) + 0xe6546b64) | 0
}

/** Mixes a non-negative safe integer that may exceed 32 bits (indexes and terms stay small, but be exact). */
export function mixNum(h: number, n: number): number {
  return mix(mix(h, n | 0), Math.floor(n / 0x100000000) | 0)
}

export function mixString(h: number, s: string): number {
  h = mix(h, s.length)
  for (let i = 0; i < s.length; i++) h = mix(h, s.charCodeAt(i))
  return h
}

export function mixBytes(h: number, b: Uint8Array): number {
  h = mix(h, b.byteLength)
  let i = 0
  for (; i + 4 <= b.byteLength; i += 4) h = mix(h, b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24))
  let tail = 0
  for (let s = 0; i < b.byteLength; i++, s += 8) tail |= b[i]! << s
  return mix(h, tail)
}

/** Final avalanche, so that hashes that differ in one bit differ everywhere; returns an unsigned 32-bit value. */
export function finish(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

export function hex32(h: number): string {
  return (h >>> 0).toString(16).padStart(8, '0')
}
