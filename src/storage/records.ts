import { decode, encode } from 'cbor-x'
import type { Entry, HardState, Snapshot } from '../raft/types.js'
import { StorageError } from './errors.js'
import { checkFileHeader, encodeFileHeader, FrameWriter, fileHeaderBytes, scanFrames, snapMagic } from './format.js'

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

export function addEntryRecord(w: FrameWriter, e: Entry): void {
  w.add(RecordType.Entry, encode([e.index, e.term, e.type, e.data]))
}

export function addHardStateRecord(w: FrameWriter, hs: HardState): void {
  w.add(RecordType.HardState, encode([hs.term, hs.vote, hs.commit]))
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
 * A snapshot file: the file header, then one frame whose body is the type byte 0x10 and the CBOR array
 * [index, term, voters, learners, data]. Nothing may follow the frame.
 */
export function encodeSnapshotFile(snap: Snapshot): Uint8Array {
  const m = snap.metadata
  const w = new FrameWriter()
  w.add(snapshotFileRecordType, encode([m.index, m.term, m.confState.voters, m.confState.learners, snap.data]))
  const frames = w.bytes()
  const out = new Uint8Array(fileHeaderBytes + frames.byteLength)
  out.set(encodeFileHeader(snapMagic), 0)
  out.set(frames, fileHeaderBytes)
  return out
}

const snapshotFileRecordType = 0x10

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
