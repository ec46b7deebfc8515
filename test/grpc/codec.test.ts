/**
 * The unary calls' wire codec (src/api/grpc/codec.ts) against protobuf-es and the descriptor-driven conversion it
 * replaces on the hot path: on random messages of every etcd message type, decoding gives the object
 * `fromProto(fromBinary(...))` gives and encoding the bytes `toBinary(toProto(...))` gives; truncated input fails
 * where protobuf-es fails. Seeded; the seed of a failing run is printed (EDGECD_SEED=<n> to repeat it).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  create,
  type DescField,
  type DescMessage,
  fromBinary,
  isMessage,
  ScalarType,
  toBinary,
} from '@bufbuild/protobuf'
import { decodeMessage, encodeFrame, encodeMessage } from '../../src/api/grpc/codec.js'
import { fromProto, toProto } from '../../src/api/grpc/convert.js'
import * as authpb from '../../src/api/grpc/gen/etcd/auth/authpb/auth_pb.js'
import * as election from '../../src/api/grpc/gen/etcd/etcdserver/api/v3election/v3electionpb/v3election_pb.js'
import * as lock from '../../src/api/grpc/gen/etcd/etcdserver/api/v3lock/v3lockpb/v3lock_pb.js'
import * as pb from '../../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import * as mvccpb from '../../src/api/grpc/gen/etcd/mvcc/mvccpb/kv_pb.js'

const seed = Number(process.env.EDGECD_SEED ?? Date.now() % 1_000_000)

function rng(s: number) {
  let x = s >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 2 ** 32
  }
}

const schemas: DescMessage[] = [pb, lock, election, authpb, mvccpb].flatMap((mod) =>
  Object.entries(mod)
    .filter(([k, v]) => k.endsWith('Schema') && (v as { kind?: string }).kind === 'message')
    .map(([, v]) => v as DescMessage),
)

function randomScalar(r: () => number, f: DescField, scalar: ScalarType): unknown {
  const pick = <T>(...xs: T[]) => xs[Math.floor(r() * xs.length)]!
  const int = () => pick(0, 1, 127, 128, 300, 2 ** 31 - 1, -1, -300, Math.floor(r() * 2 ** 31) * pick(1, -1))
  const safe = () => BigInt(pick(0, 1, 127, 128, 2 ** 32, 2 ** 53 - 1, -1, -(2 ** 40), Math.floor(r() * 2 ** 53)))
  const any64 = () =>
    pick(0n, 1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n, BigInt(Math.floor(r() * 2 ** 53)) << 11n)
  switch (scalar) {
    case ScalarType.BOOL:
      return r() < 0.5
    case ScalarType.STRING:
      return pick('', 'a', 'root', 'héllo ☃', 'x'.repeat(200))
    case ScalarType.BYTES:
      return new Uint8Array(pick(0, 1, 5, 127, 128, 300)).map(() => Math.floor(r() * 256))
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return int()
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return int() >>> 0
    case ScalarType.DOUBLE:
      return pick(0, 1.5, -2.25, 1e300)
    case ScalarType.FLOAT:
      return pick(0, 1.5, -2.25)
    case ScalarType.UINT64:
    case ScalarType.FIXED64: {
      const v = any64()
      return v < 0n ? -v : v > 2n ** 64n - 1n ? 0n : v
    }
    default: {
      // int64: the member holds most as numbers (exact to 2^53), lease ids as bigints
      const v = f.name === 'lease' || f.name === 'ID' ? any64() : safe()
      return BigInt.asIntN(64, v)
    }
  }
}

function randomMessage(r: () => number, desc: DescMessage, depth: number): Record<string, unknown> {
  const init: Record<string, unknown> = {}
  for (const f of desc.fields) {
    if (r() < 0.35) continue
    let v: unknown
    switch (f.fieldKind) {
      case 'scalar':
        v = randomScalar(r, f, f.scalar)
        break
      case 'enum':
        v = Math.floor(r() * f.enum.values.length)
        break
      case 'message':
        if (depth > 3) continue
        v = create(f.message, randomMessage(r, f.message, depth + 1) as never)
        break
      case 'list': {
        const n = depth > 3 && f.listKind === 'message' ? 0 : Math.floor(r() * 4)
        v = Array.from({ length: n }, () =>
          f.listKind === 'scalar'
            ? randomScalar(r, f, f.scalar)
            : f.listKind === 'enum'
              ? Math.floor(r() * f.enum.values.length)
              : create(f.message, randomMessage(r, f.message, depth + 1) as never),
        )
        break
      }
      default:
        continue
    }
    if (f.oneof) {
      if (init[f.oneof.localName] !== undefined) continue
      init[f.oneof.localName] = { case: f.localName, value: v }
    } else init[f.localName] = v
  }
  return init
}

test(`the wire codec equals protobuf-es + convert on random messages of every etcd type (seed ${seed})`, () => {
  assert.ok(schemas.length > 80, `found ${schemas.length} message types`)
  const r = rng(seed)
  try {
    for (const desc of schemas)
      for (let i = 0; i < 40; i++) {
        const m = create(desc, randomMessage(r, desc, 0) as never)
        assert.ok(isMessage(m, desc))
        const bytes = toBinary(desc, m)
        // decode: the member's request object
        const want = fromProto(desc, fromBinary(desc, bytes))
        assert.deepEqual(decodeMessage(desc, bytes), want, `decode ${desc.typeName}`)
        // encode: the member's answer as bytes, with a 5-byte prefix left free
        const obj = fromProto(desc, m)
        const out = encodeMessage(desc, obj as object, 5)
        assert.deepEqual(
          Buffer.from(out.subarray(5)),
          Buffer.from(toBinary(desc, toProto(desc, obj as object))),
          `encode ${desc.typeName}`,
        )
        // truncated input: an error wherever protobuf-es errs, else the same object
        if (i % 8 === 0)
          for (let cut = 0; cut < bytes.length; cut += Math.max(1, bytes.length >> 4)) {
            const part = bytes.subarray(0, cut)
            let theirs: unknown
            let threw = false
            try {
              theirs = fromProto(desc, fromBinary(desc, part))
            } catch {
              threw = true
            }
            if (threw) assert.throws(() => decodeMessage(desc, part), `truncated ${desc.typeName} at ${cut}`)
            else assert.deepEqual(decodeMessage(desc, part), theirs, `truncated ${desc.typeName} at ${cut}`)
          }
      }
  } catch (err) {
    console.error(`codec test failed with EDGECD_SEED=${seed}`)
    throw err
  }
})

test('the wire codec takes answers as the member builds them', () => {
  const cases: [DescMessage, object][] = [
    // fields absent, ids as decimal strings, counts as numbers, Buffers for bytes
    [pb.RangeResponseSchema, { header: { cluster_id: '14841639068965178418', revision: 5 }, kvs: [], count: 0 }],
    [
      pb.RangeResponseSchema,
      {
        header: { cluster_id: '1', member_id: '18446744073709551615', revision: 2 ** 40, raft_term: 3 },
        kvs: [{ key: Buffer.from('k'), value: Buffer.alloc(300, 1), create_revision: 1, mod_revision: 9, version: 2 }],
        more: true,
        count: 1,
      },
    ],
    [pb.LeaseGrantResponseSchema, { header: {}, ID: 7587862615113418244n, TTL: 60, error: '' }],
    [pb.TxnResponseSchema, { header: { revision: 1 }, succeeded: true, responses: [{ response_put: { header: {} } }] }],
    [pb.PutResponseSchema, { header: { revision: '12' } }],
    // 64-bit fields as JS numbers (the member's raft_term is one in a uint64 field), past 32 bits and negative
    [pb.PutResponseSchema, { header: { cluster_id: 2 ** 40 + 3, member_id: 2 ** 53 - 1, raft_term: 2 ** 32 + 5 } }],
    [pb.LeaseGrantResponseSchema, { header: { raft_term: 0 }, ID: -5, TTL: 60 }],
    [pb.LeaseGrantResponseSchema, { header: { raft_term: 1 }, ID: 2 ** 33, TTL: 60 }],
  ]
  for (const [desc, obj] of cases)
    assert.deepEqual(
      Buffer.from(encodeMessage(desc, obj)),
      Buffer.from(toBinary(desc, toProto(desc, obj))),
      desc.typeName,
    )
  assert.throws(() => decodeMessage(pb.RangeRequestSchema, new Uint8Array([0x0a, 0xff, 0xff])), /premature EOF/)
})

test('a gRPC frame: the envelope, then the same bytes as encodeMessage; decoding it from offset 5 gives the message', () => {
  const r = rng(seed + 1)
  for (const desc of [pb.PutRequestSchema, pb.PutResponseSchema, pb.RangeResponseSchema, pb.TxnRequestSchema])
    for (let i = 0; i < 20; i++) {
      const obj = fromProto(desc, create(desc, randomMessage(r, desc, 0) as never)) as object
      const frame = encodeFrame(desc, obj, Buffer.allocUnsafe)
      const body = encodeMessage(desc, obj)
      assert.ok(Buffer.isBuffer(frame), 'the allocator makes the array')
      assert.equal(frame[0], 0, 'not compressed')
      assert.equal(frame.readUInt32BE(1), body.length, 'the message length')
      assert.deepEqual(Buffer.from(frame.subarray(5)), Buffer.from(body), `${desc.typeName} (seed ${seed})`)
      assert.deepEqual(decodeMessage(desc, frame, 5), decodeMessage(desc, body), `${desc.typeName} (seed ${seed})`)
    }
})
