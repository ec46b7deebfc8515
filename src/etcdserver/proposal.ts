/**
 * A client write's proposal bytes: cbor-x's `encode(request)`, byte for byte (test/server/proposal-encode.test.ts
 * compares them on random requests), written by a small encoder for the values a request holds (plain objects,
 * arrays, ASCII strings, byte arrays, booleans, 32-bit integers, 64-bit bigints); and read back at apply into exactly
 * the value cbor-x's `decode` gives. The log format does not change: any member, of any version, reads these entries
 * as it read cbor-x's, and anything outside that set (a float, a non-ASCII string, a Map, a class instance, a
 * malformed entry) goes through cbor-x itself, with its errors.
 *
 * Why: cbor-x's general encoder (type dispatch, its growing shared buffer, a closure per object) was ~4% of a put's
 * busy time on the member in a profile, its decoder ~1%; this one measures the request once and writes it once into
 * an array of exactly its size.
 */
import { decode, encode } from 'cbor-x'

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

let src: Uint8Array = new Uint8Array(0)
let at = 0

/** A head's argument for `info` (the low five bits): throws `unsupported` for 64-bit or indefinite lengths. */
function arg(info: number): number {
  if (info < 0x18) return info
  if (info === 0x18) return src[at++]!
  if (info === 0x19) {
    const n = (src[at]! << 8) | src[at + 1]!
    at += 2
    return n
  }
  if (info === 0x1a) {
    const n = src[at]! * 0x1000000 + ((src[at + 1]! << 16) | (src[at + 2]! << 8) | src[at + 3]!)
    at += 4
    return n
  }
  throw unsupported
}

/** Reads one value as cbor-x's decode does, or throws `unsupported` (then cbor-x reads the whole entry). */
function read(): unknown {
  if (at >= src.length) throw unsupported
  const b = src[at++]!
  const major = b >> 5
  const info = b & 0x1f
  switch (major) {
    case 0:
      if (info === 0x1b) {
        if (at + 8 > src.length) throw unsupported
        const hi = src[at]! * 0x1000000 + ((src[at + 1]! << 16) | (src[at + 2]! << 8) | src[at + 3]!)
        const lo = src[at + 4]! * 0x1000000 + ((src[at + 5]! << 16) | (src[at + 6]! << 8) | src[at + 7]!)
        at += 8
        return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo)
      }
      return arg(info)
    case 1:
      return -1 - arg(info)
    case 2: {
      const n = arg(info)
      if (at + n > src.length) throw unsupported
      const v = src.subarray(at, at + n)
      at += n
      return v
    }
    case 3: {
      const n = arg(info)
      if (at + n > src.length) throw unsupported
      let s = ''
      for (let i = at; i < at + n; i++) {
        const c = src[i]!
        if (c > 0x7f) throw unsupported
        s += String.fromCharCode(c)
      }
      at += n
      return s
    }
    case 4: {
      const n = arg(info)
      if (n > src.length - at) throw unsupported
      const a = new Array(n)
      for (let i = 0; i < n; i++) a[i] = read()
      return a
    }
    case 5: {
      const n = arg(info)
      if (n > (src.length - at) / 2) throw unsupported
      const o: Record<string, unknown> = {}
      for (let i = 0; i < n; i++) {
        const k = read()
        if (typeof k !== 'string' || k === '__proto__') throw unsupported
        o[k] = read()
      }
      return o
    }
    case 6: {
      // Tag 64 (a Uint8Array): a view of the bytes, as cbor-x gives it.
      if (b !== 0xd8 || src[at] !== 0x40 || src[at + 1]! >> 5 !== 2) throw unsupported
      at++
      const bytes = read() as Uint8Array
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    }
    default:
      if (b === 0xf4) return false
      if (b === 0xf5) return true
      if (b === 0xf6) return null
      if (b === 0xf7) return undefined
      throw unsupported
  }
}

/**
 * cbor-x's `decode(data)` of a proposal: the same value (plain objects, arrays, strings, byte views of `data`,
 * numbers and 64-bit bigints) read by hand when the entry holds only those, else by cbor-x itself (and its errors).
 */
export function decodeProposal(data: Uint8Array): unknown {
  src = data
  at = 0
  try {
    const v = read()
    if (at === data.length) return v
  } catch (err) {
    if (err !== unsupported) throw err
  } finally {
    src = empty
  }
  return decode(data)
}
