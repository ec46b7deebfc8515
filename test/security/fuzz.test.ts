/**
 * Issue 17: a seeded, bounded fuzz of what an outsider (or a broken peer) can feed a member: the peer frame decoder
 * (an authenticated socket's frames, and an unauthenticated socket's handshake) and the JSON request codecs. No input
 * may throw out of the decoder (peer frames) or throw anything but etcd's errors (requests), and none may make the
 * process allocate far beyond what it was sent. The seed is printed when a case fails; EDGECD_FUZZ_SEED replays one.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { encode } from 'cbor-x'
import { decodeMessage } from '../../src/api/http/codec/decode.js'
import * as M from '../../src/protocol/descriptors.js'
import { EtcdError } from '../../src/protocol/errors.js'
import { type Message, MessageType } from '../../src/raft/index.js'
import { PeerTransport, peerFrameVersion } from '../../src/rafthttp/transport.js'

/** mulberry32: a small seeded PRNG. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const seed = Number(process.env.EDGECD_FUZZ_SEED ?? 1717)
const cases = 3000

function mutate(r: () => number, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes)
  const n = 1 + Math.floor(r() * 4)
  for (let i = 0; i < n && out.length > 0; i++) {
    const at = Math.floor(r() * out.length)
    const op = r()
    if (op < 0.5) out[at] = Math.floor(r() * 256)
    else if (op < 0.75) out[at] = [0x1a, 0x1b, 0x5a, 0x5b, 0x9a, 0x9b, 0xba, 0xbb, 0xff][Math.floor(r() * 9)]!
    else return out.subarray(0, at)
  }
  return out
}

function message(r: () => number, from: string, to: string): Message {
  return {
    type: Math.floor(r() * 20) as MessageType,
    from,
    to,
    term: Math.floor(r() * 5),
    logTerm: 0,
    index: Math.floor(r() * 10),
    entries: r() < 0.5 ? [] : [{ term: 1, index: 1, type: 0, data: new Uint8Array(Math.floor(r() * 64)) }],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
  }
}

describe(`fuzz (seed ${seed})`, () => {
  test('peer frames: an authenticated socket and a handshake never throw nor balloon memory', async () => {
    const r = rng(seed)
    const delivered: Message[] = []
    const t = new PeerTransport({
      selfId: 'b',
      clusterId: 'c1',
      peerSecret: 'fuzzing-secret-of-16+',
      dial: () => ({ send() {}, close() {}, bufferedAmount: 0 }),
      onMessages: (msgs) => {
        delivered.push(...msgs)
        delivered.length = 0
      },
      reportUnreachable() {},
      reportSnapshot() {},
      snapshotChunkBytes: 1000,
      maxSnapshotBytes: 1 << 20,
      log: () => {},
      reconnectMinMs: 60_000,
      reconnectMaxMs: 60_000,
    })
    await t.start()
    t.setPeers(new Map([['a', ['http://a:1']]]))
    const valid: Uint8Array[] = [
      encode([peerFrameVersion, 'c1', 'a', [message(r, 'a', 'b')]]) as Uint8Array,
      encode([
        peerFrameVersion,
        'c1',
        'a',
        [],
        {
          k: 'snap',
          id: 1,
          seq: 0,
          total: 5000,
          msg: {
            ...message(r, 'a', 'b'),
            type: MessageType.MsgSnap,
            snapshot: {
              data: new Uint8Array(0),
              metadata: { index: 1, term: 1, confState: { voters: ['a', 'b'], learners: [] } },
            },
          },
          data: new Uint8Array(1000),
        },
      ]) as Uint8Array,
      encode([peerFrameVersion, 'c1', 'a', [], { k: 'snapAck', id: 1, seq: 0, ok: true, done: false }]) as Uint8Array,
      encode([peerFrameVersion, 'c1', 'a', [], { k: 'auth', proof: new Uint8Array(32) }]) as Uint8Array,
    ]
    const before = process.memoryUsage().arrayBuffers
    for (let i = 0; i < cases; i++) {
      const base = valid[Math.floor(r() * valid.length)]!
      const bytes =
        r() < 0.2
          ? new Uint8Array(Array.from({ length: Math.floor(r() * 64) }, () => Math.floor(r() * 256)))
          : mutate(r, base)
      try {
        t.receive(bytes, 'a')
      } catch (err) {
        assert.fail(
          `seed ${seed} case ${i}: receive threw ${(err as Error).message} on ${Buffer.from(bytes).toString('hex')}`,
        )
      }
    }
    // An unauthenticated socket's handshake under the same inputs: never throws, always ends closed or waiting.
    for (let i = 0; i < 200; i++) {
      let closed = false
      const s = t.accept('a', 'ab'.repeat(32), {
        send() {},
        close: () => {
          closed = true
        },
        bufferedAmount: 0,
      })
      const bytes = mutate(r, valid[Math.floor(r() * valid.length)]!)
      try {
        s.onMessage(bytes)
        s.onMessage(bytes)
      } catch (err) {
        assert.fail(`seed ${seed} handshake case ${i}: threw ${(err as Error).message}`)
      }
      s.onClose()
      void closed
    }
    const grew = process.memoryUsage().arrayBuffers - before
    assert.ok(grew < 64 * 1024 * 1024, `seed ${seed}: array buffers grew by ${grew} bytes`)
    t.close()
  })

  test('JSON request codecs: only etcd errors, never a crash', () => {
    const r = rng(seed + 1)
    const descs = [
      M.RangeRequest,
      M.PutRequest,
      M.DeleteRangeRequest,
      M.TxnRequest,
      M.CompactionRequest,
      M.LeaseGrantRequest,
      M.LeaseRevokeRequest,
      M.LeaseKeepAliveRequest,
      M.LeaseTimeToLiveRequest,
      M.WatchRequest,
      M.AlarmRequest,
      M.HashKVRequest,
      M.MemberAddRequest,
    ]
    const samples = [
      '{"key":"YQ==","range_end":"Yg==","limit":"10","revision":"3"}',
      '{"key":"YQ==","value":"dg==","lease":"7587870000000000000","prev_kv":true}',
      '{"compare":[{"key":"YQ==","target":"VERSION","version":"1"}],"success":[{"request_put":{"key":"YQ==","value":"dg=="}}],"failure":[{"request_txn":{"success":[]}}]}',
      '{"create_request":{"key":"YQ==","start_revision":"1","filters":["NOPUT"],"prev_kv":true,"watch_id":"5"}}',
      '{"ID":"9223372036854775807","TTL":"60","keys":true}',
      '{"peerURLs":["http://127.0.0.1:1"],"isLearner":true}',
    ]
    const junk = [
      '"',
      '{',
      '}',
      '[',
      ']',
      ',',
      ':',
      '1e309',
      '-',
      'null',
      'true',
      '"\\u0000"',
      '"AA=="',
      '99999999999999999999',
      '{"a":',
    ]
    for (let i = 0; i < cases; i++) {
      const desc = descs[Math.floor(r() * descs.length)]!
      let s = samples[Math.floor(r() * samples.length)]!
      const n = 1 + Math.floor(r() * 3)
      for (let j = 0; j < n; j++) {
        const at = Math.floor(r() * (s.length + 1))
        const cut = Math.floor(r() * 4)
        s = s.slice(0, at) + junk[Math.floor(r() * junk.length)] + s.slice(at + cut)
      }
      try {
        decodeMessage(desc as never, s)
      } catch (err) {
        assert.ok(err instanceof EtcdError, `seed ${seed + 1} case ${i}: ${String(err)} on ${s}`)
      }
    }
  })
})
