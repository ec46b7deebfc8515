/**
 * A normal entry's data as the Ready loop writes it: the CBOR array `[request id, state machine bytes]`, with the
 * bytes as cbor-x writes a Uint8Array (tag 64, then a byte string). Written and read by hand for the common case (an
 * ASCII id, the only kind RaftNode makes), with exactly cbor-x's bytes (test/server/envelope.test.ts compares them):
 * the general encoder and decoder cost more per proposal than this path is worth. Anything else goes through cbor-x,
 * so every log written before (or by hand) still reads the same.
 */
import { decode, encode } from 'cbor-x'

/** encode([id, data]) of cbor-x, byte for byte. */
export function encodeEnvelope(id: string, data: Uint8Array): Uint8Array {
  const n = id.length
  if (n > 0xffff) return encode([id, data]) as Uint8Array
  for (let i = 0; i < n; i++) if (id.charCodeAt(i) > 0x7f) return encode([id, data]) as Uint8Array
  const idHead = n < 24 ? 1 : n < 0x100 ? 2 : 3
  const len = data.length
  const dataHead = len < 24 ? 1 : len < 0x100 ? 2 : len < 0x10000 ? 3 : 5
  const out = new Uint8Array(1 + idHead + n + 2 + dataHead + len)
  out[0] = 0x82
  let at = 1
  at = writeTextHead(out, at, idHead, n)
  for (let i = 0; i < n; i++) out[at++] = id.charCodeAt(i)
  at = writeBytesHead(out, at, dataHead, len)
  out.set(data, at)
  return out
}

/** What decode(entry) of cbor-x gives for an envelope: [id, data] (data may view `entry`). */
export function decodeEnvelope(entry: Uint8Array): [string, Uint8Array] {
  const at = scanEnvelope(entry)
  if (at < 0) return decode(entry) as [string, Uint8Array]
  return [asciiString(entry, scannedIdAt, scannedIdAt + scannedIdLen), entry.subarray(at)]
}

/** Where the last successful scanEnvelope found the id's bytes (module state: no tuple per call). */
export let scannedIdAt = 0
export let scannedIdLen = 0

/**
 * The hand-read path, without making the id string: the offset of the data in `e`, with the id's bytes at
 * scannedIdAt/scannedIdLen; -1 for any shape but [ASCII string, tag 64 byte string] filling `e` exactly (then cbor-x
 * reads it).
 */
export function scanEnvelope(e: Uint8Array): number {
  if (e.length < 4 || e[0] !== 0x82) return -1
  const h = e[1]!
  let n: number
  let at: number
  if (h >= 0x60 && h < 0x78) {
    n = h - 0x60
    at = 2
  } else if (h === 0x78) {
    n = e[2]!
    at = 3
  } else if (h === 0x79) {
    n = (e[2]! << 8) | e[3]!
    at = 4
  } else return -1
  if (at + n + 3 > e.length) return -1
  for (let i = at; i < at + n; i++) if (e[i]! > 0x7f) return -1
  const idAt = at
  at += n
  if (e[at] !== 0xd8 || e[at + 1] !== 0x40) return -1
  at += 2
  const b = e[at]!
  let len: number
  if (b >= 0x40 && b < 0x58) {
    len = b - 0x40
    at += 1
  } else if (b === 0x58) {
    len = e[at + 1] ?? -1
    at += 2
  } else if (b === 0x59) {
    len = ((e[at + 1] ?? 0) << 8) | (e[at + 2] ?? 0)
    at += 3
  } else if (b === 0x5a) {
    len = (e[at + 1] ?? 0) * 0x1000000 + (e[at + 2] ?? 0) * 0x10000 + (e[at + 3] ?? 0) * 0x100 + (e[at + 4] ?? 0)
    at += 5
  } else return -1
  if (at + len !== e.length) return -1
  scannedIdAt = idAt
  scannedIdLen = n
  return at
}

function asciiString(e: Uint8Array, from: number, to: number): string {
  let s = ''
  for (let i = from; i < to; i += 4096) {
    s += String.fromCharCode.apply(null, e.subarray(i, Math.min(to, i + 4096)) as unknown as number[])
  }
  return s
}

/** Decimal digits of a positive safe integer. */
function digits(n: number): number {
  let d = 1
  while (n >= 10) {
    n = Math.floor(n / 10)
    d++
  }
  return d
}

/**
 * encode([id, data]) of cbor-x, byte for byte, for id = the ASCII bytes `prefix` followed by `seq` in decimal (a
 * RaftNode request id), without making the id string. When the `headroom` bytes before `data` in its buffer are the
 * caller's to give (a proposal the member's encoder wrote with room in front, src/etcdserver/proposal.ts) and hold
 * the head, the entry is a view that starts there: no new array and no copy of the data. Otherwise a new array.
 */
export function encodeEnvelopeSeq(prefix: Uint8Array, seq: number, data: Uint8Array, headroom: number): Uint8Array {
  const n = prefix.length + digits(seq)
  if (n > 0xffff) return encodeEnvelope(String.fromCharCode(...prefix) + seq, data)
  const idHead = n < 24 ? 1 : n < 0x100 ? 2 : 3
  const len = data.length
  const dataHead = len < 24 ? 1 : len < 0x100 ? 2 : len < 0x10000 ? 3 : 5
  const headLen = 1 + idHead + n + 2 + dataHead
  let out: Uint8Array
  if (headroom >= headLen) out = new Uint8Array(data.buffer, data.byteOffset - headLen, headLen + len)
  else {
    out = new Uint8Array(headLen + len)
    out.set(data, headLen)
  }
  out[0] = 0x82
  let at = 1
  at = writeTextHead(out, at, idHead, n)
  out.set(prefix, at)
  at += n
  for (let i = at - 1, v = seq; i >= at - (n - prefix.length); i--) {
    out[i] = 0x30 + (v % 10)
    v = Math.floor(v / 10)
  }
  at = writeBytesHead(out, at, dataHead, len)
  return out
}

/** The most bytes encodeEnvelopeSeq writes in front of the data for a prefix of `prefixLength` bytes. */
export function envelopeHeadBytesMax(prefixLength: number): number {
  return 1 + 3 + prefixLength + 16 + 2 + 5
}

/** cbor's head of a text string of `n` bytes (`idHead` bytes long: 1, 2 or 3) at `at`; returns the next offset. */
function writeTextHead(out: Uint8Array, at: number, idHead: number, n: number): number {
  if (idHead === 1) out[at++] = 0x60 + n
  else if (idHead === 2) {
    out[at++] = 0x78
    out[at++] = n
  } else {
    out[at++] = 0x79
    out[at++] = n >>> 8
    out[at++] = n & 0xff
  }
  return at
}

/**
 * cbor-x's tag 64 (a Uint8Array) and the head of a byte string of `len` bytes (`dataHead` bytes long: 1, 2, 3 or 5)
 * at `at`; returns the next offset.
 */
function writeBytesHead(out: Uint8Array, at: number, dataHead: number, len: number): number {
  out[at++] = 0xd8
  out[at++] = 0x40
  if (dataHead === 1) out[at++] = 0x40 + len
  else if (dataHead === 2) {
    out[at++] = 0x58
    out[at++] = len
  } else if (dataHead === 3) {
    out[at++] = 0x59
    out[at++] = len >>> 8
    out[at++] = len & 0xff
  } else {
    out[at++] = 0x5a
    out[at++] = len >>> 24
    out[at++] = (len >>> 16) & 0xff
    out[at++] = (len >>> 8) & 0xff
    out[at++] = len & 0xff
  }
  return at
}
