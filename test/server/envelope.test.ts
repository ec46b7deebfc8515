/**
 * The Ready loop's entry envelope (src/raftnode/envelope.ts) writes exactly cbor-x's bytes for `[id, data]` and reads
 * them back, including entries it would not have written itself (non-ASCII ids, other shapes go through cbor-x).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { decode, encode } from 'cbor-x'
import { seededRand } from '../../src/raft/rand.js'
import { decodeEnvelope, encodeEnvelope } from '../../src/raftnode/envelope.js'

test("the envelope's bytes are cbor-x's, at every length boundary, and read back", () => {
  const seed = Date.now() % 100_000
  const rand = seededRand(seed)
  const idLens = [0, 1, 23, 24, 25, 255, 256, 300, 65535]
  const dataLens = [0, 1, 23, 24, 255, 256, 65535, 65536, 70_000]
  for (const il of idLens) {
    for (const dl of dataLens) {
      let id = ''
      for (let i = 0; i < il; i++) id += String.fromCharCode(0x20 + rand.intn(0x5f))
      const data = new Uint8Array(dl)
      for (let i = 0; i < Math.min(dl, 64); i++) data[i] = rand.intn(256)
      const mine = encodeEnvelope(id, data)
      assert.ok(Buffer.from(mine).equals(encode([id, data])), `id ${il}, data ${dl} (seed ${seed})`)
      const [bid, bdata] = decodeEnvelope(mine)
      assert.equal(bid, id)
      assert.deepEqual([...bdata], [...data])
      const [cid, cdata] = decode(mine) as [string, Uint8Array]
      assert.equal(cid, id)
      assert.deepEqual([...cdata], [...data])
    }
  }
})

test('entries of another shape read as cbor-x reads them', () => {
  const odd = [
    encode(['ünïcode:1:2', new Uint8Array([1, 2])]) as Uint8Array,
    encode(['a', 'not bytes']) as Uint8Array,
    encode([7, new Uint8Array([3])]) as Uint8Array,
    encode(['a', new Uint8Array([3]), 'extra']) as Uint8Array,
  ]
  for (const e of odd) assert.deepEqual(decodeEnvelope(e), decode(e))
  assert.ok(Buffer.from(encodeEnvelope('ü', new Uint8Array([1]))).equals(encode(['ü', new Uint8Array([1])])))
})
