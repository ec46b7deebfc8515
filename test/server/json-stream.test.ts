import assert from 'node:assert/strict'
import { test } from 'node:test'
import { JsonValueSplitter } from '../../src/api/http/json-stream.js'

/** Feeds text in chunks of `size` characters and collects every value. */
function split(text: string, size: number): { values: string[]; rest: string } {
  const s = new JsonValueSplitter()
  const values: string[] = []
  for (let i = 0; i < text.length; i += size) values.push(...s.push(text.slice(i, i + size)))
  return { values, rest: s.rest() }
}

test('splits concatenated and newline-separated values, whatever the chunking', () => {
  const text = '{"ID":1}{"ID":"2"}\n{"a":"}{\\"x"} [1,[2]] null {"b":{}}'
  const want = ['{"ID":1}', '{"ID":"2"}', '{"a":"}{\\"x"}', '[1,[2]]', 'null', '{"b":{}}']
  for (const size of [1, 2, 3, 7, 1000])
    assert.deepEqual(split(text, size), { values: want, rest: '' }, `chunks of ${size}`)
})

test('an unfinished value is left as rest', () => {
  assert.deepEqual(split('{"ID":1}{"ID":', 4), { values: ['{"ID":1}'], rest: '{"ID":' })
  assert.deepEqual(split('{"ID":1} nul', 3), { values: ['{"ID":1}'], rest: 'nul' })
})

test('a long top-level scalar arriving in many chunks is scanned once (linear, not quadratic)', () => {
  // Regression: the scalar path rescanned from the scalar's start on every chunk, so a 32 MiB garbage body to
  // /v3/watch kept a core busy for ~11 s (128 MiB, the stream cap: minutes).
  const chunk = 'a'.repeat(64 * 1024)
  const s = new JsonValueSplitter()
  const t0 = performance.now()
  for (let i = 0; i < 256; i++) assert.deepEqual(s.push(chunk), []) // 16 MiB
  const ms = performance.now() - t0
  assert.ok(ms < 1500, `16 MiB scalar took ${Math.round(ms)} ms`)
  assert.deepEqual(s.push(' {"x":1}'), ['a'.repeat(16 * 1024 * 1024), '{"x":1}'])
})

test('a long object arriving in many chunks is linear too', () => {
  const s = new JsonValueSplitter()
  const t0 = performance.now()
  assert.deepEqual(s.push('{"key":"'), [])
  for (let i = 0; i < 256; i++) assert.deepEqual(s.push('A'.repeat(64 * 1024)), [])
  const [v] = s.push('"}')
  assert.ok(performance.now() - t0 < 1500)
  assert.equal(v!.length, 16 * 1024 * 1024 + 10)
})
