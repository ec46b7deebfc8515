import { crc32c } from './crc32c.js'
import { StorageError } from './errors.js'

/**
 * The byte-level building blocks shared by WAL segments and snapshot files (docs/storage.md has the full layout):
 *
 *   file header (16 bytes): magic (8 ASCII bytes) | format version (u32 LE) | CRC-32C of the 12 bytes before (u32 LE)
 *   frame (12-byte header + body): body length (u32 LE) | CRC-32C of the body (u32 LE) | CRC-32C of the 8 bytes before
 *
 * The frame header has its own checksum so that a flipped bit in a length is caught as corruption instead of looking
 * like a record that runs past the end of the file (which would be mistaken for a torn write and truncated away).
 */

/** The on-disk format version this build writes and reads; every file header carries it. */
export const formatVersion = 1
export const walMagic = 'EDGECDWL'
export const snapMagic = 'EDGECDSN'
export const fileHeaderBytes = 16
export const frameHeaderBytes = 12
/** The largest frame body accepted; a bigger length in a checksummed header is a bug or an attack, not data. */
export const frameBodyBytesMax = 256 * 1024 * 1024

const ascii = new TextEncoder()

/** The 16-byte header that starts every file edgecd writes. */
export function encodeFileHeader(magic: string): Uint8Array {
  const out = new Uint8Array(fileHeaderBytes)
  out.set(ascii.encode(magic), 0)
  const view = new DataView(out.buffer)
  view.setUint32(8, formatVersion, true)
  view.setUint32(12, crc32c(out.subarray(0, 12)), true)
  return out
}

/**
 * Checks a file's header: ErrCorrupt if it is short or its checksum fails, ErrCorrupt if the magic is another kind
 * of edgecd file, ErrVersion if it was written by another format version.
 */
export function checkFileHeader(bytes: Uint8Array, magic: string, path: string): void {
  if (bytes.byteLength < fileHeaderBytes) {
    throw new StorageError('ErrCorrupt', `${path}: file is ${bytes.byteLength} bytes, shorter than its 16-byte header`)
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, fileHeaderBytes)
  if (view.getUint32(12, true) !== crc32c(bytes.subarray(0, 12))) {
    throw new StorageError('ErrCorrupt', `${path}: file header checksum mismatch at offset 0`)
  }
  const found = new TextDecoder().decode(bytes.subarray(0, 8))
  if (found !== magic) {
    throw new StorageError('ErrCorrupt', `${path}: file header says ${JSON.stringify(found)}, expected ${magic}`)
  }
  const version = view.getUint32(8, true)
  if (version !== formatVersion) {
    throw new StorageError(
      'ErrVersion',
      `${path}: written in on-disk format version ${version}, this edgecd reads version ${formatVersion}; ` +
        'use the edgecd release that wrote it, or restore this member from a peer',
    )
  }
}

/** Appends frames to one buffer, so a whole save goes to the file in one write. */
export class FrameWriter {
  private buf: Uint8Array
  private view: DataView
  private len = 0
  private readonly header8 = new Uint8Array(8)

  /** `expectedBytes` sizes the buffer up front, so a big save is not copied while it grows. */
  constructor(expectedBytes = 4096) {
    this.buf = new Uint8Array(expectedBytes)
    this.view = new DataView(this.buf.buffer)
  }

  /** Adds one frame whose body is the record type byte followed by `payload`. */
  add(type: number, payload: Uint8Array): void {
    this.addWith(type, payload.byteLength, (b, at) => {
      b.set(payload, at)
      return at + payload.byteLength
    })
  }

  /**
   * Adds one frame whose payload `write` puts straight into the buffer at `at` (at most `payloadBytesMax` bytes),
   * returning where it ended.
   */
  addWith(type: number, payloadBytesMax: number, write: (buf: Uint8Array, at: number) => number): void {
    const at = this.begin(type, payloadBytesMax)
    this.end(write(this.buf, at))
  }

  /**
   * Starts a frame of record type `type` with room for `payloadBytesMax` payload bytes and returns where its payload
   * starts in `buffer`; the caller writes the payload there and calls end() with where it ended. The hot path for
   * entries: no closure and no intermediate copy per record.
   */
  begin(type: number, payloadBytesMax: number): number {
    this.reserve(frameHeaderBytes + 1 + payloadBytesMax)
    this.buf[this.len + frameHeaderBytes] = type
    return this.len + frameHeaderBytes + 1
  }

  /** Finishes the frame begun last, whose payload ends at `payloadEnd`: its length and both checksums. */
  end(payloadEnd: number): void {
    const at = this.len
    const b = this.buf
    const bodyStart = at + frameHeaderBytes
    const view = this.view
    view.setUint32(at, payloadEnd - bodyStart, true)
    view.setUint32(at + 4, crc32c(b.subarray(bodyStart, payloadEnd)), true)
    // The header check covers 8 bytes: copied into a scratch array rather than a new view per frame.
    const h = this.header8
    for (let i = 0; i < 8; i++) h[i] = b[at + i]!
    view.setUint32(at + 8, crc32c(h), true)
    this.len = payloadEnd
  }

  /** The buffer being written; valid until the next begin() or add(), which may replace it. */
  get buffer(): Uint8Array {
    return this.buf
  }

  get byteLength(): number {
    return this.len
  }

  /** Empties the writer, keeping its buffer for the next frames. */
  reset(): void {
    this.len = 0
  }

  /** The frames written so far (a view, valid until the next add). */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len)
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.byteLength) return
    let size = this.buf.byteLength * 2
    while (size < this.len + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.len))
    this.buf = next
    this.view = new DataView(next.buffer)
  }
}

/** One checksummed frame found by scanFrames: its record type, payload and where its frame starts. */
export interface Frame {
  type: number
  payload: Uint8Array
  offset: number
}

/** What scanFrames found: the whole frames, and where the valid data ends. */
export interface ScanResult {
  frames: Frame[]
  /** The offset just past the last whole frame. */
  end: number
  /** Set when the bytes after `end` are a torn write (only ever in the last file): why, for the log. */
  torn?: string
}

/**
 * Reads the frames of `bytes` from `start`. The data ends where only zeros follow: the WAL preallocates its segments
 * with zeros (and a file system may grow a file before the data reaches it), so a zero tail is the end of the log, not
 * damage, in any file. A problem at the very end of the data of the last WAL segment is a write that a crash cut
 * short, and the caller truncates it: a partial frame header followed only by zeros, a frame whose body runs past the
 * end of the file, or a last frame with a bad body checksum, only zeros after it, and an all-zero 512-byte disk sector
 * (the sector never reached the disk; etcd's isTornEntry uses the same test; a disk writes whole sectors, so a save
 * torn inside preallocated zeros always leaves one). Anything else, or any
 * problem in a file that is not the last, is corruption and throws ErrCorrupt with the path and offset: a bad
 * checksum on a complete record that could have been acknowledged is refused, never truncated away.
 */
export function scanFrames(bytes: Uint8Array, start: number, path: string, tornTailAllowed: boolean): ScanResult {
  const frames: Frame[] = []
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const size = bytes.byteLength
  /** Just past the last non-zero byte: everything from here on is zeros. */
  let dataEnd = size
  while (dataEnd > start && bytes[dataEnd - 1] === 0) dataEnd--
  let at = start
  const tail = (reason: string): ScanResult => {
    if (!tornTailAllowed) {
      // Only the end of the newest WAL segment can hold a write that was never acknowledged.
      throw new StorageError('ErrCorrupt', `${path}: ${reason} at offset ${at}`)
    }
    return { frames, end: at, torn: `${path}: ${reason} at offset ${at}; truncated there` }
  }
  while (at < dataEnd) {
    if (size - at < frameHeaderBytes) return tail(`partial frame header (${size - at} of ${frameHeaderBytes} bytes)`)
    const bodyLen = view.getUint32(at, true)
    const bodyCrc = view.getUint32(at + 4, true)
    const headerCrc = view.getUint32(at + 8, true)
    if (headerCrc !== crc32c(bytes.subarray(at, at + 8))) {
      if (dataEnd - at < frameHeaderBytes) return tail('partial frame header (zeros after it)')
      throw new StorageError('ErrCorrupt', `${path}: frame header checksum mismatch at offset ${at}`)
    }
    if (bodyLen === 0 || bodyLen > frameBodyBytesMax) {
      throw new StorageError('ErrCorrupt', `${path}: frame at offset ${at} has impossible length ${bodyLen}`)
    }
    const bodyStart = at + frameHeaderBytes
    const bodyEnd = bodyStart + bodyLen
    if (bodyEnd > size) return tail(`frame of ${bodyLen} bytes cut short (file ends at ${size})`)
    const body = bytes.subarray(bodyStart, bodyEnd)
    if (bodyCrc !== crc32c(body)) {
      if (bodyEnd >= dataEnd && hasZeroSector(bytes, at, bodyEnd)) return tail('torn frame (a zeroed sector)')
      throw new StorageError('ErrCorrupt', `${path}: record checksum mismatch in the frame at offset ${at}`)
    }
    frames.push({ type: body[0]!, payload: body.subarray(1), offset: at })
    at = bodyEnd
  }
  return { frames, end: at }
}

/** The sector size assumed for torn writes: the smallest unit a disk writes atomically. */
const sectorBytes = 512

/** True when some 512-byte-aligned chunk of bytes[from, to) is all zeros (a sector that was never written). */
function hasZeroSector(bytes: Uint8Array, from: number, to: number): boolean {
  let chunkStart = from
  while (chunkStart < to) {
    const chunkEnd = Math.min(to, (Math.floor(chunkStart / sectorBytes) + 1) * sectorBytes)
    let zero = true
    for (let i = chunkStart; i < chunkEnd; i++) {
      if (bytes[i] !== 0) {
        zero = false
        break
      }
    }
    if (zero) return true
    chunkStart = chunkEnd
  }
  return false
}

/** Fixed-width lowercase hex, so that file names sort in numeric order. */
export function hex16(n: number): string {
  return n.toString(16).padStart(16, '0')
}
