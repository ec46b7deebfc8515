/**
 * encodeSnapshotFile writes the snapshot's data straight into the frame (cbor-x copies a large byte string slowly):
 * the same bytes as encoding the whole record with cbor-x, for every byte-string head width, and they read back.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { decodeSnapshotFile, encodeSnapshotFile, encodeSnapshotFileSlow } from '../../src/storage/records.js'

test('encodeSnapshotFile: the same bytes as cbor-x encoding the whole record, and they decode', () => {
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
    const fast = encodeSnapshotFile(snap)
    const slow = encodeSnapshotFileSlow(snap)
    assert.ok(Buffer.from(fast).equals(Buffer.from(slow)), `${size} bytes: the files differ`)
    const back = decodeSnapshotFile(fast, 'test.snap')
    assert.deepEqual(back.metadata, snap.metadata)
    assert.ok(Buffer.from(back.data).equals(Buffer.from(data)), `${size} bytes: the data read back differs`)
  }
})
