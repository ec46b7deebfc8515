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

/**
 * The least time (ms) of `rounds` runs of `feed(chunks)`: the run least disturbed by other work on a loaded machine.
 */
function leastMs(feed: (chunks: number) => void, chunks: number, rounds = 3): number {
  let least = Number.POSITIVE_INFINITY
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now()
    feed(chunks)
    least = Math.min(least, performance.now() - t0)
  }
  return least
}

/**
 * Linear, not quadratic, measured as a ratio rather than a wall-clock bound (which a loaded machine broke: 1.7 s
 * for the 16 MiB object beside two busy loops, against 1.5 s allowed; the quadratic scan it guards against took
 * ~2.7 s). Four times the chunks take about 4x the time when each character is scanned once, 16x when every push
 * rescans the value so far; a uniform slowdown of the machine changes neither.
 */
function assertLinear(feed: (chunks: number) => void, what: string): void {
  feed(16) // warm-up (JIT)
  const small = leastMs(feed, 64) // 4 MiB
  const large = leastMs(feed, 256) // 16 MiB
  assert.ok(
    large < 8 * small + 20,
    `${what}: 4 MiB in ${small.toFixed(0)} ms, 16 MiB in ${large.toFixed(0)} ms (linear: about 4x, quadratic: 16x)`,
  )
}

test('a long top-level scalar arriving in many chunks is scanned once (linear, not quadratic)', () => {
  // Regression: the scalar path rescanned from the scalar's start on every chunk, so a 32 MiB garbage body to
  // /v3/watch kept a core busy for ~11 s (128 MiB, the stream cap: minutes).
  const chunk = 'a'.repeat(64 * 1024)
  assertLinear((n) => {
    const s = new JsonValueSplitter()
    for (let i = 0; i < n; i++) assert.deepEqual(s.push(chunk), [])
    assert.deepEqual(s.push(' {"x":1}'), ['a'.repeat(n * 64 * 1024), '{"x":1}'])
  }, 'scalar')
})

test('a long object arriving in many chunks is linear too', () => {
  const chunk = 'A'.repeat(64 * 1024)
  assertLinear((n) => {
    const s = new JsonValueSplitter()
    assert.deepEqual(s.push('{"key":"'), [])
    for (let i = 0; i < n; i++) assert.deepEqual(s.push(chunk), [])
    const [v] = s.push('"}')
    assert.equal(v!.length, n * 64 * 1024 + 10)
  }, 'object')
})
