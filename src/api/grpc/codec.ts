/**
 * The protobuf wire format straight to and from the member's messages, for the unary calls' hot path: one pass, no
 * protobuf-es message in between. It gives the same bytes as protobuf-es' `toBinary(toProto(desc, obj))` and the same
 * object as `fromProto(desc, fromBinary(desc, bytes))` (./convert.ts: the member's representation of 64-bit fields,
 * oneof members as plain optional fields), which `test/grpc/codec.test.ts` checks on random messages of every etcd
 * type; it only skips protobuf-es' reflection (`create`, the reflective `toBinary`/`fromBinary` and the conversion
 * between the two representations), which cost several times the member's own work per call.
 *
 * Driven by the same generated descriptors (nothing hand-copied per message): each message's fields are planned
 * once. Encoding writes into one growing scratch buffer (nested messages reserve one length byte and move their body
 * when it is 128 bytes or more) and copies the result out once.
 */

import { type DescField, type DescMessage, ScalarType } from '@bufbuild/protobuf'

/** As ./convert.ts: `watchId` is a WatchId (a number, or a bigint past 2^53: a client-chosen id is echoed exactly). */
type Rep = 'plain' | 'number' | 'bigint' | 'decimal' | 'watchId'

enum Wire {
  Varint = 0,
  Bit64 = 1,
  Delimited = 2,
  Bit32 = 5,
}

interface Field {
  /** etcd's proto name: the member's key. */
  name: string
  no: number
  /** Tag of the field's (packed, for scalar lists) wire type. */
  tag: number
  /** 'message', 'scalar' (also enum: an int32), per element for lists. */
  kind: 'message' | 'scalar'
  scalar: ScalarType
  rep: Rep
  list: boolean
  packed: boolean
  /** Written only when set (a oneof member or explicit presence): even a zero value is written. */
  explicit: boolean
  /** The other members of this field's oneof (cleared when this one is read). */
  siblings: string[]
  message?: DescMessage
  wire: Wire
}

interface Plan {
  /** Fields by number, for encoding in protobuf-es' order. */
  fields: Field[]
  byNo: Map<number, Field>
  /** Fields present in every decoded message, with their zero values (message fields and oneof members are not). */
  defaults: [string, Rep, ScalarType, boolean][]
}

const plans = new WeakMap<DescMessage, Plan>()

function repOf(name: string, scalar: ScalarType | undefined): Rep {
  switch (scalar) {
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return 'decimal'
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      if (name === 'watch_id') return 'watchId'
      return name === 'lease' || name === 'ID' ? 'bigint' : 'number'
    default:
      return 'plain'
  }
}

function wireOf(scalar: ScalarType): Wire {
  switch (scalar) {
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return Wire.Bit64
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return Wire.Bit32
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return Wire.Delimited
    default:
      return Wire.Varint
  }
}

function planOf(desc: DescMessage): Plan {
  let p = plans.get(desc)
  if (p) return p
  const fields = [...desc.fields]
    .sort((a, b) => a.number - b.number)
    .map((f: DescField): Field => {
      if (f.fieldKind === 'map') throw new Error(`codec: map field ${desc.typeName}.${f.name} is not supported`)
      const list = f.fieldKind === 'list'
      const message = f.fieldKind === 'message' ? f.message : f.fieldKind === 'list' ? f.message : undefined
      const scalar =
        f.fieldKind === 'scalar' || (f.fieldKind === 'list' && f.listKind === 'scalar')
          ? f.scalar
          : ScalarType.INT32 /* enum */
      const kind = message ? 'message' : 'scalar'
      const packed = list && kind === 'scalar' && f.fieldKind === 'list' && f.packed
      const wire = kind === 'message' || packed ? Wire.Delimited : wireOf(scalar)
      return {
        name: f.name,
        no: f.number,
        tag: (f.number << 3) | wire,
        kind,
        scalar,
        rep: kind === 'scalar' ? repOf(f.name, scalar) : 'plain',
        list,
        packed,
        explicit: f.oneof !== undefined || (f.fieldKind === 'scalar' && f.presence === 1) /* EXPLICIT */,
        siblings: f.oneof ? f.oneof.fields.filter((o) => o !== f).map((o) => o.name) : [],
        ...(message ? { message } : {}),
        wire: kind === 'message' ? Wire.Delimited : wireOf(scalar),
      }
    })
  const defaults: Plan['defaults'] = []
  for (const f of desc.fields) {
    const x = fields.find((y) => y.no === f.number)!
    if (f.oneof || (x.kind === 'message' && !x.list)) continue
    if (x.explicit) continue
    defaults.push([x.name, x.rep, x.scalar, x.list])
  }
  p = { fields, byNo: new Map(fields.map((f) => [f.no, f])), defaults }
  plans.set(desc, p)
  return p
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

let buf = new Uint8Array(64 * 1024)
let view = new DataView(buf.buffer)
let pos = 0
/** Set when the scratch buffer grew past 4 MiB: replaced at the next encode's start, after the copy out. */
let shrink = false
const utf8 = new TextEncoder()

function ensure(n: number): void {
  if (pos + n <= buf.length) return
  let size = buf.length * 2
  while (size < pos + n) size *= 2
  const next = new Uint8Array(size)
  next.set(buf.subarray(0, pos))
  buf = next
  view = new DataView(buf.buffer)
}

function uvarint32(v: number): void {
  ensure(5)
  while (v > 0x7f) {
    buf[pos++] = (v & 0x7f) | 0x80
    v >>>= 7
  }
  buf[pos++] = v
}

function varint64(lo: number, hi: number): void {
  ensure(10)
  while (hi !== 0 || lo > 0x7f) {
    buf[pos++] = (lo & 0x7f) | 0x80
    lo = ((lo >>> 7) | (hi << 25)) >>> 0
    hi >>>= 7
  }
  buf[pos++] = lo
}

/** An int32 (or enum): negative values take ten bytes, sign-extended to 64 bits. */
function int32(v: number): void {
  if (v >= 0) uvarint32(v)
  else varint64(v >>> 0, 0xffffffff)
}

let lo = 0
let hi = 0

/** The two 32-bit halves of a 64-bit value in the member's representation, into `lo`/`hi`. */
function split64(rep: Rep, v: unknown): void {
  if (rep === 'watchId') rep = typeof v === 'bigint' ? 'bigint' : 'number'
  // A safe integer in any representation (the member's raft_term, a uint64, is a number): no BigInt on the way.
  if (rep === 'number' || (typeof v === 'number' && Number.isSafeInteger(v))) {
    let n = typeof v === 'number' ? v : Number(v ?? 0)
    n = Math.trunc(n)
    if (!Number.isFinite(n)) throw new RangeError(`codec: ${n} is not an integer`)
    lo = n >>> 0
    hi = Math.floor(n / 4294967296) >>> 0
    return
  }
  let b: bigint
  if (rep === 'bigint') b = typeof v === 'bigint' ? v : BigInt((v as number | string | undefined) ?? 0)
  else {
    if (typeof v === 'string') {
      const c = decimalCache.get(v)
      if (c !== undefined) {
        lo = c[0]
        hi = c[1]
        return
      }
      b = v === '' ? 0n : BigInt(v)
      const u = BigInt.asUintN(64, b)
      lo = Number(u & 0xffffffffn)
      hi = Number(u >> 32n)
      if (decimalCache.size >= 1024) decimalCache.clear()
      decimalCache.set(v, [lo, hi])
      return
    }
    b = v === undefined || v === null ? 0n : BigInt(v as number | bigint)
  }
  const u = BigInt.asUintN(64, b)
  lo = Number(u & 0xffffffffn)
  hi = Number(u >> 32n)
}

/** Member, cluster and leader ids (decimal strings) repeat on every header: their halves, parsed once. */
const decimalCache = new Map<string, [number, number]>()

/** Whether a plain (not 64-bit) scalar is its type's zero. */
function isZero(f: Field, v: unknown): boolean {
  switch (f.scalar) {
    case ScalarType.BYTES:
      return (v as Uint8Array).length === 0
    case ScalarType.STRING:
      return v === ''
    case ScalarType.BOOL:
      return v === false
    default:
      return v === 0
  }
}

function writeString(s: string): void {
  const n = s.length
  let ascii = n < 128
  if (ascii)
    for (let i = 0; i < n; i++)
      if (s.charCodeAt(i) >= 0x80) {
        ascii = false
        break
      }
  if (ascii) {
    ensure(1 + n)
    buf[pos++] = n
    for (let i = 0; i < n; i++) buf[pos++] = s.charCodeAt(i)
    return
  }
  writeBytes(utf8.encode(s))
}

function writeBytes(b: Uint8Array): void {
  uvarint32(b.length)
  ensure(b.length)
  buf.set(b, pos)
  pos += b.length
}

/** One scalar value (no tag). */
function writeScalar(f: Field, v: unknown): void {
  switch (f.scalar) {
    case ScalarType.BYTES:
      if (typeof v === 'string') writeString(v)
      else writeBytes(v as Uint8Array)
      return
    case ScalarType.STRING:
      writeString(v as string)
      return
    case ScalarType.BOOL:
      ensure(1)
      buf[pos++] = v ? 1 : 0
      return
    case ScalarType.INT32:
      int32(v as number)
      return
    case ScalarType.UINT32:
      uvarint32((v as number) >>> 0)
      return
    case ScalarType.SINT32: {
      const n = v as number
      uvarint32(((n << 1) ^ (n >> 31)) >>> 0)
      return
    }
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      split64(f.rep, v)
      write64(f)
      return
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      ensure(4)
      view.setUint32(pos, (v as number) >>> 0, true)
      pos += 4
      return
    case ScalarType.DOUBLE:
      ensure(8)
      view.setFloat64(pos, v as number, true)
      pos += 8
      return
    case ScalarType.FLOAT:
      ensure(4)
      view.setFloat32(pos, v as number, true)
      pos += 4
      return
  }
}

/** A 64-bit scalar from `lo`/`hi` (split64's). */
function write64(f: Field): void {
  switch (f.scalar) {
    case ScalarType.SINT64: {
      const sign = hi >> 31
      const zlo = ((lo << 1) ^ sign) >>> 0
      const zhi = (((hi << 1) | (lo >>> 31)) ^ sign) >>> 0
      varint64(zlo, zhi)
      return
    }
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      ensure(8)
      view.setUint32(pos, lo, true)
      view.setUint32(pos + 4, hi, true)
      pos += 8
      return
    default:
      varint64(lo, hi)
  }
}

/** Starts a length-delimited body: one length byte reserved (see `endDelimited`); returns its position. */
function beginDelimited(): number {
  ensure(1)
  return pos++
}

/** Ends the body begun at `at`: writes its length, moving the body when it is 128 bytes or more. */
function endDelimited(at: number): void {
  const len = pos - at - 1
  if (len < 0x80) {
    buf[at] = len
    return
  }
  let n = 1
  for (let x = len >>> 7; x > 0; x >>>= 7) n++
  ensure(n - 1)
  buf.copyWithin(at + n, at + 1, pos)
  pos += n - 1
  let p = at
  let x = len
  while (x > 0x7f) {
    buf[p++] = (x & 0x7f) | 0x80
    x >>>= 7
  }
  buf[p] = x
}

function writeMessage(plan: Plan, obj: Record<string, unknown>): void {
  for (const f of plan.fields) {
    const v = obj[f.name]
    if (v === undefined || v === null) continue
    if (f.kind === 'message') {
      const sub = planOf(f.message!)
      if (f.list) {
        for (const e of v as Record<string, unknown>[]) {
          uvarint32(f.tag)
          const at = beginDelimited()
          writeMessage(sub, e)
          endDelimited(at)
        }
      } else {
        uvarint32(f.tag)
        const at = beginDelimited()
        writeMessage(sub, v as Record<string, unknown>)
        endDelimited(at)
      }
    } else if (f.list) {
      const a = v as unknown[]
      if (a.length === 0) continue
      if (f.packed) {
        uvarint32(f.tag)
        const at = beginDelimited()
        for (const e of a) writeScalar(f, e)
        endDelimited(at)
      } else
        for (const e of a) {
          uvarint32(f.tag)
          writeScalar(f, e)
        }
    } else if (f.rep !== 'plain') {
      // 64 bits: split once, for the zero check and the value.
      split64(f.rep, v)
      if (!f.explicit && lo === 0 && hi === 0) continue
      uvarint32(f.tag)
      write64(f)
    } else {
      if (!f.explicit && isZero(f, v)) continue
      uvarint32(f.tag)
      writeScalar(f, v)
    }
  }
}

/**
 * A member's message as protobuf bytes of `desc`, after `prefix` bytes left for the caller (the gRPC envelope).
 * The same bytes as `toBinary(desc, toProto(desc, obj))`.
 */
export function encodeMessage(desc: DescMessage, obj: object, prefix = 0): Uint8Array {
  const n = writeAll(desc, obj, prefix)
  const out = new Uint8Array(n)
  out.set(buf.subarray(prefix, n), prefix)
  return out
}

/**
 * A member's message as one gRPC message frame (the 5-byte envelope, uncompressed, then the protobuf bytes), in an
 * array from `alloc`: on Node a Buffer from its pool (src/runtime/node/grpc.ts), which node:http2's write takes as it
 * is, where a plain Uint8Array is first wrapped in a Buffer, and a small one is one object with no ArrayBuffer of its
 * own.
 */
export function encodeFrame<T extends Uint8Array>(desc: DescMessage, obj: object, alloc: (n: number) => T): T {
  const n = writeAll(desc, obj, 5)
  const len = n - 5
  buf[0] = 0
  buf[1] = len >>> 24
  buf[2] = len >>> 16
  buf[3] = len >>> 8
  buf[4] = len
  const out = alloc(n)
  if (n <= 256) for (let i = 0; i < n; i++) out[i] = buf[i]!
  else out.set(buf.subarray(0, n))
  return out
}

/** Encodes `obj` into the scratch buffer after `prefix` bytes; answers the end. The next encode overwrites it. */
function writeAll(desc: DescMessage, obj: object, prefix: number): number {
  if (shrink) {
    shrink = false
    buf = new Uint8Array(64 * 1024)
    view = new DataView(buf.buffer)
  }
  pos = prefix
  try {
    writeMessage(planOf(desc), obj as Record<string, unknown>)
    return pos
  } finally {
    pos = 0
    // A huge answer's buffer is not kept (the caller copies out of it first: shrinking only replaces the reference).
    if (buf.length > 4 * 1024 * 1024) shrink = true
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

const utf8Strict = new TextDecoder('utf-8', { fatal: true })

/** The decoder's cursor: one, reused by every decode (decoding is synchronous and calls out to nothing). */
class Reader {
  b: Uint8Array = emptyInput
  pos = 0
  lo = 0
  hi = 0
  private dv: DataView | undefined = undefined

  reset(b: Uint8Array, start: number): void {
    this.b = b
    this.pos = start
    this.dv = undefined
  }

  /** A DataView of the input, made only for the fixed-width fields that need one. */
  get view(): DataView {
    this.dv ??= new DataView(this.b.buffer, this.b.byteOffset, this.b.byteLength)
    return this.dv
  }

  eof(): never {
    throw new Error('premature EOF')
  }

  uint32(): number {
    const b = this.b
    let v = 0
    let shift = 0
    for (let i = 0; i < 10; i++) {
      if (this.pos >= b.length) this.eof()
      const c = b[this.pos++]!
      if (shift < 32) v |= (c & 0x7f) << shift
      shift += 7
      if (c < 0x80) return v >>> 0
    }
    throw new Error('invalid varint')
  }

  /** A varint as 64 bits, into `lo`/`hi`. */
  varint64(): void {
    const b = this.b
    let l = 0
    let h = 0
    for (let i = 0; i < 10; i++) {
      if (this.pos >= b.length) this.eof()
      const c = b[this.pos++]!
      const bits = c & 0x7f
      if (i < 4) l |= bits << (7 * i)
      else if (i === 4) {
        l |= bits << 28
        h |= bits >>> 4
      } else h |= bits << (7 * i - 32)
      if (c < 0x80) {
        this.lo = l >>> 0
        this.hi = h >>> 0
        return
      }
    }
    throw new Error('invalid varint')
  }

  fixed64(): void {
    if (this.pos + 8 > this.b.length) this.eof()
    this.lo = this.view.getUint32(this.pos, true)
    this.hi = this.view.getUint32(this.pos + 4, true)
    this.pos += 8
  }

  bytes(): Uint8Array {
    const n = this.uint32()
    const start = this.pos
    if (start + n > this.b.length) this.eof()
    this.pos += n
    // A plain view (a Buffer's subarray would make a Buffer through its species constructor, the slower way).
    const b = this.b
    return new Uint8Array(b.buffer, b.byteOffset + start, n)
  }

  skip(wire: number): void {
    switch (wire) {
      case Wire.Varint:
        this.varint64()
        return
      case Wire.Bit64:
        if (this.pos + 8 > this.b.length) this.eof()
        this.pos += 8
        return
      case Wire.Delimited:
        this.bytes()
        return
      case Wire.Bit32:
        if (this.pos + 4 > this.b.length) this.eof()
        this.pos += 4
        return
      case 3: {
        // a group: skip to its end tag
        for (;;) {
          const t = this.uint32()
          if ((t & 7) === 4) return
          this.skip(t & 7)
        }
      }
      default:
        throw new Error(`cannot skip wire type ${wire}`)
    }
  }
}

/** A 64-bit value from the reader's `lo`/`hi` in the member's representation. */
function join64(rep: Rep, signed: boolean, l: number, h: number): unknown {
  if (rep === 'number') return (signed ? h | 0 : h) * 4294967296 + l
  if (rep === 'watchId') {
    const n = (signed ? h | 0 : h) * 4294967296 + l
    if (Number.isSafeInteger(n)) return n
    const w = (BigInt(h) << 32n) | BigInt(l)
    return signed ? BigInt.asIntN(64, w) : w
  }
  const u = (BigInt(h) << 32n) | BigInt(l)
  if (rep === 'decimal') return h === 0 ? String(l) : (signed ? BigInt.asIntN(64, u) : u).toString()
  return signed ? BigInt.asIntN(64, u) : u
}

function readScalar(r: Reader, f: Field): unknown {
  switch (f.scalar) {
    case ScalarType.BYTES:
      return r.bytes()
    case ScalarType.STRING: {
      const b = r.bytes()
      try {
        return utf8Strict.decode(b)
      } catch {
        throw new Error(`invalid UTF-8 in field ${f.name}`)
      }
    }
    case ScalarType.BOOL:
      r.varint64()
      return r.lo !== 0 || r.hi !== 0
    case ScalarType.INT32:
      return r.uint32() | 0
    case ScalarType.UINT32:
      return r.uint32()
    case ScalarType.SINT32: {
      const n = r.uint32()
      return (n >>> 1) ^ -(n & 1)
    }
    case ScalarType.INT64:
      r.varint64()
      return join64(f.rep, true, r.lo, r.hi)
    case ScalarType.UINT64:
      r.varint64()
      return join64(f.rep, false, r.lo, r.hi)
    case ScalarType.SINT64: {
      r.varint64()
      const sign = -(r.lo & 1)
      const l = ((r.lo >>> 1) | (r.hi << 31)) ^ sign
      const h = (r.hi >>> 1) ^ sign
      return join64(f.rep, true, l >>> 0, h >>> 0)
    }
    case ScalarType.FIXED64:
      r.fixed64()
      return join64(f.rep, false, r.lo, r.hi)
    case ScalarType.SFIXED64:
      r.fixed64()
      return join64(f.rep, true, r.lo, r.hi)
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32: {
      if (r.pos + 4 > r.b.length) r.eof()
      const v = r.view.getUint32(r.pos, true)
      r.pos += 4
      return f.scalar === ScalarType.SFIXED32 ? v | 0 : v
    }
    case ScalarType.DOUBLE: {
      if (r.pos + 8 > r.b.length) r.eof()
      const v = r.view.getFloat64(r.pos, true)
      r.pos += 8
      return v
    }
    case ScalarType.FLOAT: {
      if (r.pos + 4 > r.b.length) r.eof()
      const v = r.view.getFloat32(r.pos, true)
      r.pos += 4
      return v
    }
  }
  return undefined
}

/** Every absent bytes field: one empty array (it has nothing to change). */
const emptyBytes = new Uint8Array(0)

function zeroOf(rep: Rep, scalar: ScalarType): unknown {
  if (rep === 'number' || rep === 'watchId') return 0
  if (rep === 'bigint') return 0n
  if (rep === 'decimal') return '0'
  switch (scalar) {
    case ScalarType.BYTES:
      return emptyBytes
    case ScalarType.STRING:
      return ''
    case ScalarType.BOOL:
      return false
    default:
      return 0
  }
}

function readMessage(r: Reader, plan: Plan, end: number, out: Record<string, unknown>): void {
  while (r.pos < end) {
    const tag = r.uint32()
    const no = tag >>> 3
    const wire = tag & 7
    if (no === 0) throw new Error('illegal tag: field no 0')
    const f = plan.byNo.get(no)
    if (f === undefined || wire === 4) {
      r.skip(wire)
      continue
    }
    if (f.kind === 'message') {
      if (wire !== Wire.Delimited) {
        r.skip(wire)
        continue
      }
      const n = r.uint32()
      const subEnd = r.pos + n
      if (subEnd > end) r.eof()
      const sub = planOf(f.message!)
      if (f.list) {
        const m = freshMessage(sub)
        readMessage(r, sub, subEnd, m)
        ;(out[f.name] as object[]).push(m)
      } else {
        for (const s of f.siblings) delete out[s]
        let m = out[f.name] as Record<string, unknown> | undefined
        if (m === undefined) {
          m = freshMessage(sub)
          out[f.name] = m
        }
        readMessage(r, sub, subEnd, m)
      }
      continue
    }
    if (f.list) {
      const a = out[f.name] as unknown[]
      if (wire === Wire.Delimited && f.wire !== Wire.Delimited) {
        const n = r.uint32()
        const subEnd = r.pos + n
        if (subEnd > end) r.eof()
        while (r.pos < subEnd) a.push(readScalar(r, f))
        if (r.pos !== subEnd) r.eof()
      } else if (wire === f.wire) a.push(readScalar(r, f))
      else r.skip(wire)
      continue
    }
    if (wire !== f.wire) {
      r.skip(wire)
      continue
    }
    for (const s of f.siblings) delete out[s]
    out[f.name] = readScalar(r, f)
  }
  if (r.pos !== end) r.eof()
}

function freshMessage(plan: Plan): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [name, rep, scalar, list] of plan.defaults) out[name] = list ? [] : zeroOf(rep, scalar)
  return out
}

/**
 * Protobuf bytes of `desc` (from `start` on: a gRPC frame's message after its envelope) as the member's request
 * object: the same object as `fromProto(desc, fromBinary(desc, bytes))`; bytes fields are views of `bytes`. Throws on malformed input ('premature EOF' when it ends early).
 */
export function decodeMessage<T = unknown>(desc: DescMessage, bytes: Uint8Array, start = 0): T {
  const plan = planOf(desc)
  const r = reader
  r.reset(bytes, start)
  try {
    const out = freshMessage(plan)
    readMessage(r, plan, bytes.length, out)
    return out as T
  } finally {
    r.reset(emptyInput, 0)
  }
}

const emptyInput = new Uint8Array(0)
const reader = new Reader()
