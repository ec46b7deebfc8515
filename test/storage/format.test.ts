/** The byte formats: CRC-32C test vectors, frames, headers, and the hand-written entry encoding against cbor-x. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { decode, encode } from 'cbor-x'
import { crc32c } from '../../src/storage/crc32c.js'
import { isStorageError } from '../../src/storage/errors.js'
import {
  checkFileHeader,
  encodeFileHeader,
  FrameWriter,
  scanFrames,
  snapMagic,
  walMagic,
} from '../../src/storage/format.js'
import {
  addEntryRecord,
  addHardStateRecord,
  decodeEntry,
  decodeSnapshotFile,
  encodeSnapshotFile,
  RecordType,
} from '../../src/storage/records.js'

describe('storage formats', () => {
  test('crc32c computes CRC-32C (Castagnoli), not CRC-32', () => {
    const ascii = new TextEncoder()
    assert.equal(crc32c(ascii.encode('123456789')), 0xe3069283) // the check value of CRC-32C; CRC-32's is 0xcbf43926
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa) // RFC 3720 B.4: 32 bytes of zeros
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43) // RFC 3720 B.4: 32 bytes of ones
    const inc = Uint8Array.from({ length: 32 }, (_, i) => i)
    assert.equal(crc32c(inc), 0x46dd794e) // RFC 3720 B.4: incrementing
    assert.equal(crc32c(inc.subarray(10), crc32c(inc.subarray(0, 10))), 0x46dd794e, 'seed continues a checksum')
  })

  test('entry records are byte for byte what cbor-x encodes for a byte string, and decode back', () => {
    const values = [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER]
    const sizes = [0, 1, 23, 24, 255, 256, 70_000]
    for (const index of values) {
      for (const size of sizes) {
        const data = Uint8Array.from({ length: size }, (_, i) => (i * 13 + 5) & 0xff)
        const e = { index, term: values[(index % 7) + 3]!, type: index % 2, data }
        const w = new FrameWriter(16)
        addEntryRecord(w, e)
        const { frames } = scanFrames(w.bytes(), 0, 'x', false)
        assert.equal(frames.length, 1)
        assert.equal(frames[0]!.type, RecordType.Entry)
        // A Buffer, because cbor-x wraps a plain Uint8Array in tag 64 (RFC 8746); entries use the plain byte string.
        const want = encode([e.index, e.term, e.type, Buffer.from(e.data)])
        assert.deepEqual(frames[0]!.payload, new Uint8Array(want), `index ${index}, ${size} bytes`)
        assert.deepEqual(decodeEntry(frames[0]!.payload, { path: 'x', offset: 0 }), e)
        assert.deepEqual(decode(frames[0]!.payload)[0], index)
      }
    }
  })

  test('hard-state records are byte for byte what cbor-x encodes, on the hand path and off it', () => {
    const values = [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER]
    const votes = ['', '1', '8e9e05c52164694d', 'x'.repeat(23), 'x'.repeat(24), 'y'.repeat(300), 'é', 'a\u0000b']
    for (const term of values) {
      for (const commit of values) {
        for (const vote of votes) {
          const w = new FrameWriter(16)
          addHardStateRecord(w, { term, vote, commit })
          const { frames } = scanFrames(w.bytes(), 0, 'x', false)
          assert.equal(frames.length, 1)
          assert.equal(frames[0]!.type, RecordType.HardState)
          const want = encode([term, vote, commit])
          assert.deepEqual(frames[0]!.payload, new Uint8Array(want), `term ${term}, vote ${JSON.stringify(vote)}`)
          assert.deepEqual(decode(frames[0]!.payload), [term, vote, commit])
        }
      }
    }
  })

  test('file headers carry magic and version and are checked', () => {
    const h = encodeFileHeader(walMagic)
    assert.equal(h.byteLength, 16)
    assert.equal(new TextDecoder().decode(h.subarray(0, 8)), 'EDGECDWL')
    assert.equal(new DataView(h.buffer).getUint32(8, true), 1)
    checkFileHeader(h, walMagic, 'f')
    assert.throws(
      () => checkFileHeader(h, snapMagic, 'f'),
      (e) => isStorageError(e, 'ErrCorrupt') && /EDGECDWL/.test(e.message),
    )
    assert.throws(
      () => checkFileHeader(h.subarray(0, 10), walMagic, 'f'),
      (e) => isStorageError(e, 'ErrCorrupt'),
    )
    const flipped = h.slice()
    flipped[3]! ^= 1
    assert.throws(() => checkFileHeader(flipped, walMagic, 'f'), /checksum mismatch at offset 0/)
  })

  test('frames: lengths and both checksums are little-endian u32 in a 12-byte header', () => {
    const w = new FrameWriter()
    w.add(7, new Uint8Array([1, 2, 3]))
    const b = w.bytes()
    const v = new DataView(b.buffer, b.byteOffset)
    assert.equal(b.byteLength, 12 + 4)
    assert.equal(v.getUint32(0, true), 4)
    assert.equal(v.getUint32(4, true), crc32c(new Uint8Array([7, 1, 2, 3])))
    assert.equal(v.getUint32(8, true), crc32c(b.subarray(0, 8)))
  })

  test('snapshot files round-trip and reject trailing bytes', async () => {
    const snap = {
      data: new Uint8Array([5, 6]),
      metadata: { index: 9, term: 2, confState: { voters: ['1'], learners: [] } },
    }
    const bytes = await encodeSnapshotFile(snap)
    assert.deepEqual(decodeSnapshotFile(bytes, 's'), snap)
    const longer = new Uint8Array(bytes.byteLength + 1)
    longer.set(bytes)
    assert.throws(
      () => decodeSnapshotFile(longer, 's'),
      (e) => isStorageError(e, 'ErrCorrupt'),
    )
  })
})
