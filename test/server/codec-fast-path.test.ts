/**
 * decodeMessage's fast path must give exactly what the zod schema gives (values and key order) for every input the
 * schema accepts, and must leave every input the schema refuses to the schema (so errors keep Go's wording). Checked
 * on seeded random inputs built from the descriptors: proto and lowerCamel names, nulls, wrong types, bad base64,
 * integers as numbers and strings (in and out of range), enum names and numbers, unknown keys, nested messages.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { decodeMessage, decodeMessageWithSchema } from '../../src/api/http/codec/decode.js'
import * as M from '../../src/protocol/descriptors.js'

/** A seeded xorshift32, so a failure replays. */
function rng(seed: number) {
  let x = seed >>> 0 || 1
  const next = () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 4294967296
  }
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(a: readonly T[]) => a[Math.floor(next() * a.length)]!,
  }
}
type Rng = ReturnType<typeof rng>

const odd: unknown[] = [null, true, false, 0, 1.5, -3, '', 'x', [], {}, [1], 'Zm9v', '12', ' 7 ', '1e3', '-0']

function leafValue(r: Rng, f: M.FieldDesc, depth: number): unknown {
  if (r.next() < 0.1) return r.pick(odd)
  switch (f.kind) {
    case 'bytes':
      return r.pick(['Zm9v', 'YQ==', '', 'Zm9vYg', '_-8=', 'Zm9v\r\nYmFy', 'AAAA'])
    case 'string':
      return r.pick(['', 'a', 'http://127.0.0.1:1', 'ü'])
    case 'bool':
      return r.pick([true, false, 'true', 1])
    case 'int64':
    case 'int32':
    case 'int64big':
    case 'int64id':
    case 'uint64str':
      return r.pick([
        0,
        1,
        -1,
        42,
        2 ** 53,
        2 ** 60,
        '5',
        '-5',
        '9223372036854775807',
        '9223372036854775808',
        '18446744073709551615',
        'abc',
        1.5,
        ' 12 ',
      ])
    case 'enum':
      return r.pick([0, 1, 2, 7, -1, ...(f.enumNames ?? []), 'BOGUS', 1.5])
    case 'message':
      return depth > 3 ? r.pick([null, {}]) : messageValue(r, f.message!(), depth + 1)
  }
}

function messageValue(r: Rng, desc: M.MessageDesc, depth: number): Record<string, unknown> {
  const o: Record<string, unknown> = {}
  for (const f of desc.fields) {
    if (r.next() < 0.5) continue
    const key = r.next() < 0.5 ? f.name : f.json
    if (f.repeated && r.next() < 0.9) {
      o[key] = Array.from({ length: r.int(3) }, () => leafValue(r, f, depth))
    } else {
      o[key] = leafValue(r, f, depth)
    }
  }
  if (r.next() < 0.2) o.bogus = r.pick(odd)
  if (r.next() < 0.1 && desc.fields.length > 0) o[desc.fields[0]!.json] = null
  return o
}

/** JSON with key order kept, bytes and bigints spelled out, so two results compare exactly. */
function canonical(v: unknown): string {
  if (v instanceof Uint8Array) return `bytes(${[...v].join(',')})`
  if (typeof v === 'bigint') return `${v}n`
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  if (v !== null && typeof v === 'object') {
    return `{${Object.entries(v)
      .map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`)
      .join(',')}}`
  }
  return JSON.stringify(v)
}

function outcome(f: () => unknown): string {
  try {
    return `ok ${canonical(f())}`
  } catch (err) {
    return `error ${(err as Error).message}`
  }
}

const requests: [string, M.MessageDesc][] = Object.entries(M as Record<string, unknown>).filter(
  (e): e is [string, M.MessageDesc] =>
    typeof e[1] === 'object' && e[1] !== null && 'fields' in e[1] && e[0].endsWith('Request'),
)

describe('decode fast path', () => {
  test('gives the schema result for random inputs, values and key order', () => {
    let accepted = 0
    for (const [name, desc] of requests) {
      for (let seed = 1; seed <= 400; seed++) {
        const r = rng(seed * 31 + name.length)
        const value = r.next() < 0.05 ? r.pick(odd) : messageValue(r, desc, 0)
        const text = JSON.stringify(value)
        const want = outcome(() => decodeMessageWithSchema(desc, text))
        const got = outcome(() => decodeMessage(desc, text))
        assert.equal(got, want, `${name} seed ${seed}: ${text}`)
        if (want.startsWith('ok')) accepted++
      }
    }
    // The inputs must exercise both sides.
    assert.ok(accepted > 1000, `only ${accepted} accepted inputs`)
  })

  test('the requests of the HTTP bench', () => {
    for (const text of [
      '{"key":"Zm9v","value":"YmFy"}',
      '{"key":"Zm9v"}',
      '{"key":"Zm9v","serializable":true}',
      '{}',
      '',
    ]) {
      for (const desc of [M.PutRequest, M.RangeRequest] as M.MessageDesc[]) {
        assert.equal(
          outcome(() => decodeMessage(desc, text)),
          outcome(() => decodeMessageWithSchema(desc, text)),
        )
      }
    }
  })
})
