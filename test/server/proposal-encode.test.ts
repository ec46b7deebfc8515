/**
 * A client write's proposal (src/etcdserver/proposal.ts) is cbor-x's `encode(request)` byte for byte: the same log
 * entries as before, readable by any member. Random requests of every shape a member proposes, values at every CBOR
 * length boundary, and values the hand-written path leaves to cbor-x.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { decode, encode } from 'cbor-x'
import { decodeProposal, encodeProposal } from '../../src/etcdserver/proposal.js'
import { type Rand, seededRand } from '../../src/raft/rand.js'

const boundaries = [0, 1, 23, 24, 25, 255, 256, 65535, 65536, 70_000]

function bytes(rand: Rand, n: number, buffer: boolean): Uint8Array {
  const b = buffer ? Buffer.alloc(n) : new Uint8Array(n)
  for (let i = 0; i < Math.min(n, 32); i++) b[i] = rand.intn(256)
  return b
}

function ascii(rand: Rand, n: number): string {
  let s = ''
  for (let i = 0; i < n; i++) s += String.fromCharCode(rand.intn(0x80))
  return s
}

function pick<T>(rand: Rand, xs: T[]): T {
  return xs[rand.intn(xs.length)]!
}

/** A random value of the kinds a request holds, nested up to `depth`. */
function value(rand: Rand, depth: number): unknown {
  switch (rand.intn(depth > 0 ? 12 : 9)) {
    case 0:
      return ascii(rand, rand.intn(4) === 0 ? pick(rand, boundaries.slice(0, 8)) : rand.intn(30))
    case 1:
      return bytes(rand, pick(rand, boundaries), rand.intn(2) === 0)
    case 2:
      return pick(rand, [
        0,
        1,
        23,
        24,
        255,
        256,
        65535,
        65536,
        2 ** 31,
        2 ** 32 - 1,
        -1,
        -24,
        -25,
        -256,
        -257,
        -65536,
        -65537,
        -(2 ** 31),
      ])
    case 3:
      return pick(rand, [0n, 1n, 5n, 2n ** 63n, 2n ** 64n - 1n, -1n, -(2n ** 63n), -(2n ** 64n) + 1n])
    case 4:
      return rand.intn(2) === 0
    case 5:
      return undefined
    case 6:
      return null
    case 7:
      return rand.intn(1000)
    case 8:
      return ascii(rand, 5)
    case 9:
    case 10: {
      const o: Record<string, unknown> = {}
      const n = rand.intn(8)
      for (let i = 0; i < n; i++)
        o[pick(rand, ['key', 'value', 'lease', 'prev_kv', 'range_end', '0', '12', ascii(rand, 3)])] = value(
          rand,
          depth - 1,
        )
      return o
    }
    default:
      return Array.from({ length: depth === 1 && rand.intn(4) === 0 ? pick(rand, [23, 24, 300]) : rand.intn(5) }, () =>
        value(rand, depth - 1),
      )
  }
}

test("a proposal's bytes are cbor-x's, on random requests", () => {
  const seed = Date.now() % 100_000
  const rand = seededRand(seed)
  for (let i = 0; i < 1000; i++) {
    const v = { [pick(rand, ['put', 'delete_range', 'txn', 'compaction', 'lease_revoke'])]: value(rand, 3) } as Record<
      string,
      unknown
    >
    if (rand.intn(2) === 0)
      v.auth_info =
        rand.intn(2) === 0 ? Object.freeze({ user: '', rev: 0 }) : { user: ascii(rand, 6), rev: rand.intn(100) }
    const mine = encodeProposal(v)
    // Read back as cbor-x reads it: the same values, byte arrays of the same class viewing the same input.
    const theirs = encode(v) as Uint8Array
    assert.deepStrictEqual(decodeProposal(theirs), decode(theirs), `case ${i} (seed ${seed})`)
    assert.deepStrictEqual(decodeProposal(mine), decode(mine), `case ${i} (seed ${seed})`)
    assert.ok(
      Buffer.from(mine).equals(encode(v)),
      `case ${i} (seed ${seed}): ${JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? `${x}n` : x))}`,
    )
  }
})

test('a client put as the gRPC codec and the JSON gateway build it', () => {
  const body = Buffer.from('....bench/000001' + 'a'.repeat(256))
  const grpcPut = {
    put: {
      key: body.subarray(4, 16),
      value: body.subarray(16),
      lease: 0n,
      prev_kv: false,
      ignore_value: false,
      ignore_lease: false,
    },
    auth_info: Object.freeze({ user: '', rev: 0 }),
  }
  const jsonPut = {
    put: {
      key: new TextEncoder().encode('k'),
      value: new Uint8Array(300),
      lease: 7n,
      prev_kv: true,
      ignore_value: false,
      ignore_lease: false,
    },
    auth_info: { user: 'root', rev: 3 },
  }
  for (const v of [grpcPut, jsonPut]) {
    const mine = encodeProposal(v)
    assert.ok(Buffer.from(mine).equals(encode(v)))
    assert.deepEqual(decode(Buffer.from(mine)), decode(encode(v)))
  }
})

test('values outside the hand-written set go through cbor-x, with its bytes', () => {
  const odd: object[] = [
    { put: { key: 'ünïcode' } },
    { n: 1.5 },
    { n: 2 ** 40 },
    { n: -(2 ** 33) },
    { n: Number.NaN },
    { b: 2n ** 64n },
    { b: -(2n ** 64n) },
    { m: new Map([['a', 1]]) },
    { d: new Date(0) },
    { a: new Uint16Array([1, 2]) },
    { s: new Set([1]) },
    Object.assign(Object.create(null), { a: 1 }),
  ]
  for (const v of odd) assert.ok(Buffer.from(encodeProposal(v)).equals(encode(v)), String(Object.keys(v)))
})

test('entries the hand-written reader does not take are read by cbor-x, errors included', () => {
  const cases: Uint8Array[] = [
    encode({ put: { key: 'ünïcode' } }) as Uint8Array,
    encode({ n: 1.5, b: -(2n ** 40n) }) as Uint8Array,
    encode({ m: new Map([[1, 2]]) }) as Uint8Array,
    encode({ d: new Date(0) }) as Uint8Array,
    encode({ a: new Uint16Array([1, 2]) }) as Uint8Array,
    new Uint8Array([0xa1, 0x01, 0x02]), // a number as a map key
    new Uint8Array([0xa1, 0x69, ...new TextEncoder().encode('__proto__'), 0x01]),
  ]
  for (const c of cases) assert.deepStrictEqual(decodeProposal(c), decode(c))
  const bad = [
    new Uint8Array([0xb9, 0x00, 0x02, 0x61]),
    new Uint8Array([0x5a, 0xff, 0xff, 0xff, 0xff]),
    new Uint8Array([0xa0, 0x00]),
  ]
  for (const b of bad) {
    let theirs: unknown
    try {
      decode(b)
    } catch (err) {
      theirs = err
    }
    assert.throws(
      () => decodeProposal(b),
      (err: Error) => err.message === (theirs as Error | undefined)?.message,
    )
  }
})

test("with auth_info and headroom: encode({...request, auth_info})'s bytes, with free room before them", () => {
  const seed = Date.now() % 100_000
  const rand = seededRand(seed)
  let prev: Uint8Array | undefined
  for (let i = 0; i < 500; i++) {
    const req = { [pick(rand, ['put', 'delete_range', 'txn'])]: value(rand, 2) } as Record<string, unknown>
    // Every few cases one the hand-written path leaves to cbor-x: it gets the same room.
    if (i % 7 === 0) req.f = 1.5
    const info = rand.intn(2) === 0 ? Object.freeze({ user: '', rev: 0 }) : { user: ascii(rand, 6), rev: rand.intn(9) }
    const headroom = rand.intn(3) === 0 ? 0 : rand.intn(90)
    const mine = encodeProposal(req, info, headroom)
    const want = encode({ ...req, auth_info: info }) as Uint8Array
    assert.ok(Buffer.from(mine).equals(want), `case ${i} (seed ${seed})`)
    assert.ok(mine.byteOffset >= headroom, `case ${i}: room in front (seed ${seed})`)
    const room = new Uint8Array(mine.buffer, mine.byteOffset - headroom, headroom)
    assert.ok(
      room.every((b) => b === 0),
      `case ${i}: the room is fresh (seed ${seed})`,
    )
    // Proposals never share bytes (room included): the caller writes its room.
    if (prev !== undefined && prev.buffer === mine.buffer)
      assert.ok(mine.byteOffset - headroom >= prev.byteOffset + prev.byteLength, `case ${i} (seed ${seed})`)
    prev = mine
  }
  // A request that already names auth_info keeps its key's place, as the spread does.
  const odd = { auth_info: 1, put: { key: new Uint8Array([1]) } }
  const info = { user: 'u', rev: 1 }
  assert.ok(Buffer.from(encodeProposal(odd, info, 8)).equals(encode({ ...odd, auth_info: info })))
})

test('reading: field names are shared strings, a zero lease is 0n, other strings and bigints read back', () => {
  const put = (key: string, user: string, lease: bigint) =>
    encodeProposal({ put: { key: new TextEncoder().encode(key), lease } }, { user, rev: 1 })
  const a = decodeProposal(put('k1', 'alice', 0n)) as { put: { lease: bigint }; auth_info: { user: string } }
  const b = decodeProposal(put('k2', 'bob', 5n)) as { put: { lease: bigint }; auth_info: { user: string } }
  const c = decodeProposal(put('k3', 'alicf', 2n ** 40n)) as { put: { lease: bigint }; auth_info: { user: string } }
  assert.equal(a.put.lease, 0n)
  assert.equal(b.put.lease, 5n)
  assert.equal(c.put.lease, 2n ** 40n)
  assert.deepEqual([a.auth_info.user, b.auth_info.user, c.auth_info.user], ['alice', 'bob', 'alicf'])
  // Many distinct short strings through the same slots (collisions replace, never confuse).
  for (let i = 0; i < 2000; i++) {
    const user = `u${i}`
    const v = decodeProposal(encodeProposal({ x: 1 }, { user, rev: i })) as { auth_info: { user: string; rev: number } }
    assert.equal(v.auth_info.user, user)
    assert.equal(v.auth_info.rev, i)
  }
})
