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

const empty = new Uint8Array(0)
let out = empty
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

/** Writes a plain object (already measured), and `auth_info` last when `info` is given. */
function writeObject(v: object, info: object | undefined): void {
  // cbor-x always writes an object's map head in three bytes (0xb9 and a 16-bit count).
  const at = pos
  pos += 3
  let count = 0
  for (const k in v) {
    if (!Object.hasOwn(v, k)) continue
    write(k)
    write((v as Record<string, unknown>)[k])
    count++
  }
  if (info !== undefined) {
    write(authInfoKey)
    write(info)
    count++
  }
  out[at] = 0xb9
  out[at + 1] = count >> 8
  out[at + 2] = count & 0xff
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
        writeObject(v as object, undefined)
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

/**
 * Proposals are carved out of shared slabs rather than each getting its own ArrayBuffer: an ArrayBuffer of a few
 * hundred bytes costs about a microsecond to make and more to collect (its backing store is outside the JS heap), and
 * a put made two of them (the proposal, then its entry). A slab lives as long as any entry in it: entries stay in the
 * Raft log until it is compacted, in order, so slabs are freed whole. What apply keeps (the store's keys and values)
 * is copied out (src/kv/bytes.ts ownBytes), never a view of a slab. A proposal too big for a slab gets its own array.
 */
const slabBytes = 64 * 1024
let slab = new Uint8Array(0)
let slabAt = 0

/** `n` fresh zeroed bytes at `out`[`pos`...] (the writer's position), from the current slab or a new one. */
function carve(n: number): void {
  if (n > slabBytes / 8) {
    out = new Uint8Array(n)
    pos = 0
    return
  }
  if (slabAt + n > slab.length) {
    slab = new Uint8Array(slabBytes)
    slabAt = 0
  }
  out = slab
  pos = slabAt
  slabAt += n
}

/**
 * cbor-x's `encode(value)`, byte for byte, or with `info` cbor-x's `encode({...value, auth_info: info})` (without
 * making that object). The answer views memory of its own with `headroom` unused bytes just before it in the same
 * buffer, which the caller may write (RaftNode.propose writes the entry's envelope head there: no second array, no
 * copy). Anything the hand-written path does not write goes through cbor-x (then copied into such memory).
 */
export function encodeProposal(value: object, info?: object, headroom = 0): Uint8Array {
  if (info !== undefined && Object.hasOwn(value, 'auth_info'))
    return encodeProposal({ ...value, auth_info: info }, undefined, headroom)
  let n: number
  try {
    n = size(value)
    if (info !== undefined) n += authInfoKeySize + size(info)
  } catch (err) {
    if (err !== unsupported) throw err
    const bytes = encode(info === undefined ? value : { ...value, auth_info: info }) as Uint8Array
    carve(headroom + bytes.length)
    const result = new Uint8Array(out.buffer, pos + headroom, bytes.length)
    result.set(bytes)
    out = empty
    return result
  }
  carve(headroom + n)
  pos += headroom
  const at = pos
  if (info === undefined) write(value)
  else writeObject(value, info)
  const result = new Uint8Array(out.buffer, at, n)
  out = empty
  return result
}

const authInfoKey = 'auth_info'
const authInfoKeySize = 1 + authInfoKey.length

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

/**
 * Short strings read before, by a hash of their bytes: a proposal's field names (`put`, `key`, `value`, `lease`,
 * `auth_info`, ...) are the same few strings in every entry, and making them again char by char was most of what
 * reading a put allocated. A slot holds the last string that hashed to it; a hit is checked byte for byte.
 */
const internedMax = 32
const interned: (string | undefined)[] = new Array(256).fill(undefined)

/** The ASCII string of src[at, at + n) (at is not moved), or throws `unsupported` for a byte above 0x7f. */
function readAscii(n: number): string {
  if (n > internedMax) {
    for (let i = at; i < at + n; i++) if (src[i]! > 0x7f) throw unsupported
    let s = ''
    for (let i = at; i < at + n; i += 4096)
      s += String.fromCharCode.apply(null, src.subarray(i, Math.min(at + n, i + 4096)) as unknown as number[])
    return s
  }
  let h = n
  for (let i = at; i < at + n; i++) {
    const c = src[i]!
    if (c > 0x7f) throw unsupported
    h = (Math.imul(h, 31) + c) | 0
  }
  const slot = h & 0xff
  const hit = interned[slot]
  if (hit !== undefined && hit.length === n) {
    let same = true
    for (let i = 0; i < n; i++)
      if (hit.charCodeAt(i) !== src[at + i]) {
        same = false
        break
      }
    if (same) return hit
  }
  const s = String.fromCharCode.apply(null, src.subarray(at, at + n) as unknown as number[])
  interned[slot] = s
  return s
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
        if (hi === 0) return lo === 0 ? 0n : BigInt(lo)
        return (BigInt(hi) << 32n) | BigInt(lo)
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
      const s = readAscii(n)
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
      at += 2
      const n = arg(src[at - 1]! & 0x1f)
      if (!(at + n <= src.length)) throw unsupported
      const v = new Uint8Array(src.buffer, src.byteOffset + at, n)
      at += n
      return v
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
