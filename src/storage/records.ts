import { decode, encode } from 'cbor-x'
import type { Entry, HardState, Snapshot } from '../raft/types.js'
import { crc32c } from './crc32c.js'
import { StorageError } from './errors.js'
import {
  checkFileHeader,
  encodeFileHeader,
  FrameWriter,
  fileHeaderBytes,
  frameHeaderBytes,
  scanFrames,
  snapMagic,
} from './format.js'

/**
 * The WAL's record types and their CBOR payloads (cbor-x default encode/decode: plain arrays, no record extension,
 * so any CBOR decoder can read them). Arrays rather than maps keep a 256-byte entry's record at 12 + 1 + ~270 bytes.
 */
export const RecordType = {
  /** One log entry: [index, term, type, data]. A later entry at the same index replaces it and drops the suffix. */
  Entry: 1,
  /** The hard state: [term, vote, commit]. The last one wins. */
  HardState: 2,
  /**
   * A snapshot is now durable in its own file: [index, term, reset]. `reset` true means the log was replaced by a
   * snapshot from the leader (every entry after it so far is dropped); false means the application made it from its
   * own applied state (the entries after it stay). The newest such record names the snapshot that recovery loads.
   */
  Snapshot: 3,
} as const

/** A decoded snapshot marker. */
export interface SnapshotMarker {
  index: number
  term: number
  reset: boolean
}

/**
 * Adds an entry record, CBOR-encoded by hand straight into the frame buffer: the save path runs this for every entry,
 * and cbor-x's general encoder plus a copy cost more than the fsync budget allows (bench/wal.ts). The bytes are the
 * same as cbor-x's `encode([index, term, type, data])` with `data` as a plain CBOR byte string (cbor-x itself would
 * wrap a Uint8Array in tag 64; test/storage/format.test.ts checks the equality), and reading uses cbor-x's decoder.
 */
export function addEntryRecord(w: FrameWriter, e: Entry): void {
  // 1 array head + 3 uints of at most 9 bytes + a byte-string head of at most 9 bytes + the data.
  let at = w.begin(RecordType.Entry, 1 + 27 + 9 + e.data.byteLength)
  const b = w.buffer
  b[at++] = 0x84
  at = cborHead(b, at, 0x00, e.index)
  at = cborHead(b, at, 0x00, e.term)
  at = cborHead(b, at, 0x00, e.type)
  at = cborHead(b, at, 0x40, e.data.byteLength)
  b.set(e.data, at)
  w.end(at + e.data.byteLength)
}

/** Writes a CBOR head (major type `major`, argument n, shortest form) at `at`; returns the end. 0 <= n < 2^53. */
function cborHead(b: Uint8Array, at: number, major: number, n: number): number {
  if (n < 24) {
    b[at] = major | n
    return at + 1
  }
  if (n < 0x100) {
    b[at] = major | 24
    b[at + 1] = n
    return at + 2
  }
  if (n < 0x10000) {
    b[at] = major | 25
    b[at + 1] = n >>> 8
    b[at + 2] = n & 0xff
    return at + 3
  }
  if (n < 0x100000000) {
    b[at] = major | 26
    b[at + 1] = n >>> 24
    b[at + 2] = (n >>> 16) & 0xff
    b[at + 3] = (n >>> 8) & 0xff
    b[at + 4] = n & 0xff
    return at + 5
  }
  // Like cbor-x: an integer of 2^32 or more goes as a float64 (exact below 2^53), because cbor-x decodes a CBOR
  // uint64 to a BigInt, which would not be a valid index. Only uints get here (heads of lengths are < 2^32).
  b[at] = 0xfb
  new DataView(b.buffer, b.byteOffset + at + 1, 8).setFloat64(0, n, false)
  return at + 9
}

/**
 * Adds a hard-state record: cbor-x's `encode([term, vote, commit])`, byte for byte. A save with entries writes one,
 * so with one client every put does: the usual case (terms and commit indexes below 2^32, a vote of at most 23 ASCII
 * characters, as member ids are) is written by hand into the frame buffer; anything else goes through cbor-x.
 * test/storage/format.test.ts compares the bytes with cbor-x's.
 */
export function addHardStateRecord(w: FrameWriter, hs: HardState): void {
  const { term, vote, commit } = hs
  if (!isUint32(term) || !isUint32(commit) || typeof vote !== 'string' || vote.length > 23 || !isAscii(vote)) {
    w.add(RecordType.HardState, encode([term, vote, commit]))
    return
  }
  let at = w.begin(RecordType.HardState, 1 + 5 + 1 + vote.length + 5)
  const b = w.buffer
  b[at++] = 0x83
  at = cborHead(b, at, 0x00, term)
  b[at++] = 0x60 | vote.length
  for (let i = 0; i < vote.length; i++) b[at++] = vote.charCodeAt(i)
  at = cborHead(b, at, 0x00, commit)
  w.end(at)
}

function isUint32(n: unknown): n is number {
  return typeof n === 'number' && n >>> 0 === n
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false
  return true
}

export function addSnapshotRecord(w: FrameWriter, m: SnapshotMarker): void {
  w.add(RecordType.Snapshot, encode([m.index, m.term, m.reset]))
}

/** Where a record came from, for error messages. */
export interface RecordOrigin {
  path: string
  offset: number
}

function bad(where: RecordOrigin, what: string): StorageError {
  return new StorageError('ErrCorrupt', `${where.path}: ${what} in the record at offset ${where.offset}`)
}

function decodeArray(payload: Uint8Array, where: RecordOrigin, n: number): unknown[] {
  let v: unknown
  try {
    v = decode(payload)
  } catch (err) {
    throw bad(where, `undecodable CBOR (${(err as Error).message})`)
  }
  if (!Array.isArray(v) || v.length !== n) throw bad(where, `expected a CBOR array of ${n}`)
  return v
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

/** Copies decoded bytes into a plain Uint8Array: cbor-x hands out Buffers (on Node) that view the whole file. */
function bytesOf(v: unknown, where: RecordOrigin): Uint8Array {
  if (!(v instanceof Uint8Array)) throw bad(where, 'expected a byte string')
  return new Uint8Array(v)
}

export function decodeEntry(payload: Uint8Array, where: RecordOrigin): Entry {
  const [index, term, type, data] = decodeArray(payload, where, 4)
  if (!isIndex(index) || !isIndex(term) || (type !== 0 && type !== 1)) throw bad(where, 'malformed entry')
  return { index, term, type, data: bytesOf(data, where) }
}

export function decodeHardState(payload: Uint8Array, where: RecordOrigin): HardState {
  const [term, vote, commit] = decodeArray(payload, where, 3)
  if (!isIndex(term) || typeof vote !== 'string' || !isIndex(commit)) throw bad(where, 'malformed hard state')
  return { term, vote, commit }
}

export function decodeSnapshotMarker(payload: Uint8Array, where: RecordOrigin): SnapshotMarker {
  const [index, term, reset] = decodeArray(payload, where, 3)
  if (!isIndex(index) || !isIndex(term) || typeof reset !== 'boolean') throw bad(where, 'malformed snapshot marker')
  return { index, term, reset }
}

/**
 * A snapshot file: the file header, then one frame whose record is the CBOR array [index, term, voters, learners,
 * data]. cbor-x copies a large byte string slowly (~1 s for 26 MB on the shared bench machine, growing its buffer as
 * it goes), so the array is encoded with an empty byte string, whose last byte (0x40, its head, after tag 64's 0xd8
 * 0x40) is replaced by data's head, and data is copied once, straight into the file's bytes: the same bytes as
 * encodeSnapshotFileSlow. The frame's checksum of a large snapshot is computed in pieces of `pieceBytes` with
 * `pause()` awaited between them (a macrotask: the member's event loop runs meanwhile; the checksum of 26 MB is
 * 0.1-0.4 s there); a snapshot of one piece or less is done without a pause.
 */
export async function encodeSnapshotFile(
  snap: Snapshot,
  pause: () => Promise<void> = () => new Promise((r) => setTimeout(r, 0)),
  pieceBytes = 1 << 20,
): Promise<Uint8Array> {
  const m = snap.metadata
  const data = snap.data
  const shell = encode([m.index, m.term, m.confState.voters, m.confState.learners, new Uint8Array(0)])
  const n = shell.length
  if (!(n >= 3 && shell[n - 3] === 0xd8 && shell[n - 2] === 0x40 && shell[n - 1] === 0x40))
    return encodeSnapshotFileSlow(snap)
  const head = shell.subarray(0, n - 1)
  const dataHead = byteStringHead(data.byteLength)
  const bodyBytes = 1 + head.length + dataHead.length + data.byteLength
  const out = new Uint8Array(fileHeaderBytes + frameHeaderBytes + bodyBytes)
  out.set(encodeFileHeader(snapMagic), 0)
  const bodyAt = fileHeaderBytes + frameHeaderBytes
  out[bodyAt] = snapshotFileRecordType
  out.set(head, bodyAt + 1)
  out.set(dataHead, bodyAt + 1 + head.length)
  out.set(data, bodyAt + 1 + head.length + dataHead.length)
  // The frame header (format.ts FrameWriter.end): body length, the body's CRC-32C, the CRC-32C of those 8 bytes.
  let crc: number | undefined
  for (let at = 0; at < bodyBytes; at += pieceBytes) {
    if (at > 0) await pause()
    crc = crc32c(out.subarray(bodyAt + at, bodyAt + Math.min(bodyBytes, at + pieceBytes)), crc)
  }
  const view = new DataView(out.buffer, fileHeaderBytes, frameHeaderBytes)
  view.setUint32(0, bodyBytes, true)
  view.setUint32(4, crc ?? 0, true)
  view.setUint32(8, crc32c(out.subarray(fileHeaderBytes, fileHeaderBytes + 8)), true)
  return out
}

const snapshotFileRecordType = 0x10

/** The shortest head of a CBOR byte string of `n` bytes (RFC 8949 §3), as cbor-x writes it. */
function byteStringHead(n: number): Uint8Array {
  if (n < 24) return Uint8Array.of(0x40 | n)
  if (n < 0x100) return Uint8Array.of(0x58, n)
  if (n < 0x10000) return Uint8Array.of(0x59, n >> 8, n & 0xff)
  if (n < 0x1_0000_0000) return Uint8Array.of(0x5a, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
  throw new RangeError(`a snapshot of ${n} bytes`)
}

/** encodeSnapshotFile as it was (cbor-x encoding the data too): the reference the tests compare with. */
export function encodeSnapshotFileSlow(snap: Snapshot): Uint8Array {
  const m = snap.metadata
  const w = new FrameWriter()
  w.add(snapshotFileRecordType, encode([m.index, m.term, m.confState.voters, m.confState.learners, snap.data]))
  const frames = w.bytes()
  const out = new Uint8Array(fileHeaderBytes + frames.byteLength)
  out.set(encodeFileHeader(snapMagic), 0)
  out.set(frames, fileHeaderBytes)
  return out
}

/** Decodes and checks a whole snapshot file; ErrCorrupt (naming the file) if any byte is off. */
export function decodeSnapshotFile(bytes: Uint8Array, path: string): Snapshot {
  checkFileHeader(bytes, snapMagic, path)
  const { frames, end } = scanFrames(bytes, fileHeaderBytes, path, false)
  if (frames.length !== 1 || end !== bytes.byteLength || frames[0]!.type !== snapshotFileRecordType) {
    throw new StorageError('ErrCorrupt', `${path}: expected exactly one snapshot frame after the header`)
  }
  const where = { path, offset: fileHeaderBytes }
  const [index, term, voters, learners, data] = decodeArray(frames[0]!.payload, where, 5)
  const ids = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string')
  if (!isIndex(index) || !isIndex(term) || !ids(voters) || !ids(learners)) throw bad(where, 'malformed snapshot')
  return { data: bytesOf(data, where), metadata: { index, term, confState: { voters, learners } } }
}
