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

test('a request id written from its prefix and sequence number: the same bytes, in place when there is room', async () => {
  const { encodeEnvelopeSeq, envelopeHeadBytesMax, scanEnvelope } = await import('../../src/raftnode/envelope.js')
  const seed = Date.now() % 100_000
  const rand = seededRand(seed)
  const seqs = [1, 9, 10, 99, 100, 12345, 2 ** 31, 2 ** 53 - 1]
  for (const pl of [0, 1, 5, 20, 40, 300]) {
    let prefix = ''
    for (let i = 0; i < pl; i++) prefix += String.fromCharCode(0x20 + rand.intn(0x5f))
    const pb = new TextEncoder().encode(prefix)
    for (const seq of seqs) {
      for (const dl of [0, 1, 23, 24, 300, 70_000]) {
        const room = envelopeHeadBytesMax(pl)
        const buf = new Uint8Array(room + dl + 3)
        const data = buf.subarray(room, room + dl)
        for (let i = 0; i < Math.min(dl, 64); i++) data[i] = rand.intn(256)
        const want = encode([prefix + seq, data]) as Uint8Array
        const copy = encodeEnvelopeSeq(pb, seq, data, 0)
        assert.ok(Buffer.from(copy).equals(want), `prefix ${pl}, seq ${seq}, data ${dl} (seed ${seed})`)
        assert.notEqual(copy.buffer, buf.buffer)
        const inPlace = encodeEnvelopeSeq(pb, seq, data, room)
        assert.ok(Buffer.from(inPlace).equals(want), `in place: prefix ${pl}, seq ${seq}, data ${dl} (seed ${seed})`)
        assert.equal(inPlace.buffer, buf.buffer)
        assert.equal(inPlace.byteOffset + inPlace.byteLength, room + dl)
        const at = scanEnvelope(inPlace)
        assert.equal(at, inPlace.byteLength - dl)
        assert.deepEqual(decodeEnvelope(inPlace), [prefix + seq, inPlace.subarray(at)])
      }
    }
  }
})
