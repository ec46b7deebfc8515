/**
 * A client write's proposal bytes: cbor-x's `encode(request)`, byte for byte (test/server/proposal-encode.test.ts
 * compares them on random requests), written by a small encoder for the values a request holds (plain objects,
 * arrays, ASCII strings, byte arrays, booleans, 32-bit integers, 64-bit bigints). The log format does not change:
 * any member, of any version, reads these entries as it read cbor-x's, and anything outside that set (a float, a
 * non-ASCII string, a Map, a class instance) goes through cbor-x itself.
 *
 * Why: cbor-x's general encoder (type dispatch, its growing shared buffer, a closure per object) was ~4% of a put's
 * busy time on the member in a profile; this one measures the request once and writes it once into an array of
 * exactly its size.
 */
import { encode } from 'cbor-x'

/** Whether cbor-x tags a plain Uint8Array (tag 64): it does where the runtime has Node's Buffer, not elsewhere. */
const tagsUint8Array = (encode(new Uint8Array(0)) as Uint8Array)[0] === 0xd8

/** Thrown by `size` for a value the hand-written path does not write: the caller falls back to cbor-x. */
const unsupported = Symbol('unsupported')

const twoTo64 = 1n << 64n

/** Bytes of a CBOR head (major type, length) as cbor-x writes it: the shortest form. */
function headSize(n: number): number {
  return n < 0x18 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5
}

/** The encoded size of `v`, or throws `unsupported`. */
function size(v: unknown): number {
  switch (typeof v) {
    case 'string': {
      const n = v.length
      for (let i = 0; i < n; i++) if (v.charCodeAt(i) > 0x7f) throw unsupported
      return headSize(n) + n
    }
    case 'number':
      if (v >>> 0 === v) return headSize(v)
      if (v >> 0 === v) return headSize(-1 - v)
      throw unsupported
    case 'boolean':
    case 'undefined':
      return 1
    case 'bigint':
      if (v < twoTo64 && v > -twoTo64) return 9
      throw unsupported
    case 'object': {
      if (v === null) return 1
      const c = (v as object).constructor
      if (c === Object) {
        let total = 3
        let count = 0
        for (const k in v) {
          if (!Object.hasOwn(v, k)) continue
          total += size(k) + size((v as Record<string, unknown>)[k])
          count++
        }
        if (count > 0xffff) throw unsupported
        return total
      }
      if (c === Array) {
        const a = v as unknown[]
        let total = headSize(a.length)
        for (let i = 0; i < a.length; i++) total += size(a[i])
        return total
      }
      if (v instanceof Uint8Array) {
        const n = v.byteLength
        return (c === Uint8Array && tagsUint8Array ? 2 : 0) + headSize(n) + n
      }
      throw unsupported
    }
    default:
      throw unsupported
  }
}

let out = new Uint8Array(0)
let pos = 0

function uint32(n: number): void {
  out[pos++] = n >>> 24
  out[pos++] = (n >>> 16) & 0xff
  out[pos++] = (n >>> 8) & 0xff
  out[pos++] = n & 0xff
}

/** A 64-bit unsigned value, big-endian (the array is zeroed: a zero needs no writing). */
function uint64(v: bigint): void {
  if (v !== 0n) {
    uint32(Number(v >> 32n))
    uint32(Number(v & 0xffffffffn))
  } else pos += 8
}

function head(major: number, n: number): void {
  if (n < 0x18) out[pos++] = major | n
  else if (n < 0x100) {
    out[pos++] = major | 0x18
    out[pos++] = n
  } else if (n < 0x10000) {
    out[pos++] = major | 0x19
    out[pos++] = n >> 8
    out[pos++] = n & 0xff
  } else {
    out[pos++] = major | 0x1a
    uint32(n)
  }
}

/** Writes `v` (already measured by `size`) at `pos`. */
function write(v: unknown): void {
  switch (typeof v) {
    case 'string': {
      const n = v.length
      head(0x60, n)
      for (let i = 0; i < n; i++) out[pos++] = v.charCodeAt(i)
      return
    }
    case 'number':
      if (v >>> 0 === v) head(0x00, v)
      else head(0x20, -1 - v)
      return
    case 'boolean':
      out[pos++] = v ? 0xf5 : 0xf4
      return
    case 'undefined':
      out[pos++] = 0xf7
      return
    case 'bigint':
      if (v >= 0n) {
        out[pos++] = 0x1b
        uint64(v)
      } else {
        out[pos++] = 0x3b
        uint64(-v - 1n)
      }
      return
    default: {
      if (v === null) {
        out[pos++] = 0xf6
        return
      }
      const c = (v as object).constructor
      if (c === Object) {
        // cbor-x always writes an object's map head in three bytes (0xb9 and a 16-bit count).
        const at = pos
        pos += 3
        let count = 0
        for (const k in v as object) {
          if (!Object.hasOwn(v as object, k)) continue
          write(k)
          write((v as Record<string, unknown>)[k])
          count++
        }
        out[at] = 0xb9
        out[at + 1] = count >> 8
        out[at + 2] = count & 0xff
        return
      }
      if (c === Array) {
        const a = v as unknown[]
        head(0x80, a.length)
        for (let i = 0; i < a.length; i++) write(a[i])
        return
      }
      const b = v as Uint8Array
      if (c === Uint8Array && tagsUint8Array) {
        out[pos++] = 0xd8
        out[pos++] = 0x40
      }
      head(0x40, b.byteLength)
      out.set(b, pos)
      pos += b.byteLength
    }
  }
}

/** cbor-x's `encode(value)`, byte for byte, in a fresh array of exactly its length. */
export function encodeProposal(value: object): Uint8Array {
  let n: number
  try {
    n = size(value)
  } catch (err) {
    if (err !== unsupported) throw err
    return encode(value) as Uint8Array
  }
  out = new Uint8Array(n)
  pos = 0
  write(value)
  const result = out
  out = empty
  return result
}

const empty = new Uint8Array(0)
