/**
 * fromBase64 (every key and value the client receives): ASCII values take TextEncoder's copy, any byte above 0x7f
 * the byte loop; both must give exactly the bytes, and bad base64 is refused as atob refuses it.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { fromBase64, toBase64 } from '../../src/client/bytes.js'

test('fromBase64 gives the exact bytes: ASCII, high bytes, every byte value, empty, and refuses bad base64', () => {
  const seed = Number(process.env.BYTES_SEED ?? 7)
  let a = seed >>> 0
  const rand = () => {
    a = (a * 1103515245 + 12345) & 0x7fffffff
    return a / 0x7fffffff
  }
  for (let i = 0; i < 2000; i++) {
    const b = new Uint8Array(Math.floor(rand() * 300))
    const top = i % 2 === 0 ? 128 : 256
    for (let j = 0; j < b.length; j++) b[j] = Math.floor(rand() * top)
    assert.deepEqual(fromBase64(toBase64(b)), b, `seed ${seed}, case ${i}`)
  }
  const every = Uint8Array.from({ length: 256 }, (_, i) => i)
  assert.deepEqual(fromBase64(toBase64(every)), every)
  // A high byte last: encodeInto stops short of the end.
  assert.deepEqual(fromBase64(toBase64(new Uint8Array([1, 2, 0xff]))), new Uint8Array([1, 2, 0xff]))
  assert.deepEqual(fromBase64(''), new Uint8Array(0))
  assert.deepEqual(fromBase64(undefined), new Uint8Array(0))
  assert.throws(() => fromBase64('a'))
  assert.throws(() => fromBase64('ab$='))
})
