/**
 * encodeSnapshotFile writes the snapshot's data straight into the file's bytes (cbor-x copies a large byte string
 * slowly) and checksums a large one in pieces with a pause between them: the same bytes as encoding the whole record
 * with cbor-x (encodeSnapshotFileSlow), for every byte-string head width and piece size, and they read back.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { decodeSnapshotFile, encodeSnapshotFile, encodeSnapshotFileSlow } from '../../src/storage/records.js'

test('encodeSnapshotFile: the same bytes as cbor-x encoding the whole record, in pieces or not, and they decode', async () => {
  let x = 12345
  for (const size of [0, 1, 23, 24, 255, 256, 65_535, 65_536, 1 << 20]) {
    const data = new Uint8Array(size)
    for (let i = 0; i < size; i++) {
      x = (x * 1103515245 + 12345) >>> 0
      data[i] = x >>> 24
    }
    const snap = {
      data,
      metadata: { index: 100_000 + size, term: 7, confState: { voters: ['a1', 'b2'], learners: ['c3'] } },
    }
    const slow = encodeSnapshotFileSlow(snap)
    for (const piece of [1 << 20, 1000, 7]) {
      if (piece === 7 && size > 65_536) continue
      let pauses = 0
      const fast = await encodeSnapshotFile(snap, async () => void pauses++, piece)
      assert.ok(Buffer.from(fast).equals(Buffer.from(slow)), `${size} bytes in pieces of ${piece}: the files differ`)
      const body = slow.length - 16 - 12
      assert.equal(pauses, Math.ceil(body / piece) - 1, `${size} bytes in pieces of ${piece}: pauses`)
      const back = decodeSnapshotFile(fast, 'test.snap')
      assert.deepEqual(back.metadata, snap.metadata)
      assert.ok(Buffer.from(back.data).equals(Buffer.from(data)), `${size} bytes: the data read back differs`)
    }
  }
})
