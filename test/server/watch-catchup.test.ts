/**
 * Issue 17 on a Node member: a watch created with a start revision in the past is caught up from history in replay
 * turns (src/kv/watch.ts, WatchHub.replayTurn), over the raw gRPC Watch call and the JSON WebSocket alike: `created`
 * first, then every revision once, in order, with prev_kv, while puts keep arriving (no loss or repeat across the
 * switch to live events); a compaction of what the watcher still needs, made while its replay waits for a turn, is
 * answered with etcd's compacted cancel (canceled, compact_revision).
 */
import assert from 'node:assert/strict'
import http2 from 'node:http2'
import { after, before, describe, test } from 'node:test'
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import {
  type WatchResponse as PbWatchResponse,
  WatchRequestSchema,
  WatchResponseSchema,
} from '../../src/api/grpc/gen/etcd/etcdserver/etcdserverpb/rpc_pb.js'
import type { WatchHub } from '../../src/kv/watch.js'
import { b64, post } from '../support/index.js'
import { notOnWorkerd, startTestMember, type TestMember, WsWatch } from './helpers.js'

const enc = new TextEncoder()
const dec = new TextDecoder()

const skip = notOnWorkerd('the hub of an in-process member')
let m: TestMember
let hub: WatchHub
/** Replay turns the member ran (or the test holds back). */
let turns = 0
let hold: (() => void)[] | undefined
let restore: () => void = () => {}

before(async () => {
  m = await startTestMember()
  if (skip) return
  hub = (m.running.member as unknown as { kv: { watchHub: WatchHub } }).kv.watchHub
  // A small replay budget per turn, so that a few hundred revisions take many turns.
  const config = hub.config as { watchPumpEventsMax: number }
  const budget = config.watchPumpEventsMax
  config.watchPumpEventsMax = 40
  hub.replayLeft = 40
  const defer = hub.defer
  hub.defer = (fn) =>
    defer(() => {
      turns++
      if (hold) hold.push(fn)
      else fn()
    })
  restore = () => {
    config.watchPumpEventsMax = budget
    hub.defer = defer
  }
})
after(async () => {
  restore()
  await m?.stop()
})

const put = async (k: string, v: string) =>
  Number((await post(m.url, '/v3/kv/put', { key: b64(k), value: b64(v) })).json.header.revision)

/** The events a client got, as `key=value@rev prev=...`. */
interface Ev {
  key: string
  value: string
  rev: number
  prev: string | undefined
}

/** A raw gRPC Watch call (HTTP/2, enveloped protobuf), reading every response. */
class GrpcWatch {
  readonly got: PbWatchResponse[] = []
  private input = Buffer.alloc(0)
  private readonly client: http2.ClientHttp2Session
  private readonly req: http2.ClientHttp2Stream

  constructor(url: string) {
    this.client = http2.connect(url)
    this.client.on('error', () => undefined)
    this.req = this.client.request({
      ':method': 'POST',
      ':path': '/etcdserverpb.Watch/Watch',
      'content-type': 'application/grpc',
      te: 'trailers',
    })
    this.req.on('error', () => undefined)
    this.req.on('data', (c: Buffer) => {
      this.input = Buffer.concat([this.input, c])
      let at = 0
      while (this.input.length - at >= 5 && this.input.length - at >= 5 + this.input.readUInt32BE(at + 1)) {
        const len = this.input.readUInt32BE(at + 1)
        this.got.push(fromBinary(WatchResponseSchema, this.input.subarray(at + 5, at + 5 + len)))
        at += 5 + len
      }
      this.input = this.input.subarray(at)
    })
  }

  create(key: string, rangeEnd: string, startRevision: number): void {
    const msg = toBinary(
      WatchRequestSchema,
      create(WatchRequestSchema, {
        requestUnion: {
          case: 'createRequest',
          value: {
            key: enc.encode(key),
            rangeEnd: enc.encode(rangeEnd),
            startRevision: BigInt(startRevision),
            prevKv: true,
          },
        },
      }),
    )
    const out = Buffer.alloc(5 + msg.length)
    out.writeUInt32BE(msg.length, 1)
    out.set(msg, 5)
    this.req.write(out)
  }

  events(): Ev[] {
    return this.got.flatMap((r) =>
      r.events.map((e) => ({
        key: dec.decode(e.kv!.key),
        value: dec.decode(e.kv!.value),
        rev: Number(e.kv!.modRevision),
        prev: e.prevKv ? dec.decode(e.prevKv.value) : undefined,
      })),
    )
  }

  close(): void {
    this.req.close()
    this.client.close()
  }
}

/** The WebSocket watch, reading every frame. */
async function wsWatch(key: string, rangeEnd: string, startRevision: number) {
  const ws = await WsWatch.open(m.url)
  const got: any[] = []
  let open = true
  void (async () => {
    while (open) {
      try {
        got.push(await ws.next(60_000))
      } catch {
        return
      }
    }
  })()
  ws.send({
    create_request: { key: b64(key), range_end: b64(rangeEnd), start_revision: String(startRevision), prev_kv: true },
  })
  const ub = (s: string | undefined) => (s === undefined ? '' : Buffer.from(s, 'base64').toString())
  return {
    got,
    events: (): Ev[] =>
      got.flatMap((f) =>
        (f.result?.events ?? []).map((e: any) => ({
          key: ub(e.kv.key),
          value: ub(e.kv.value),
          rev: Number(e.kv.mod_revision),
          prev: e.prev_kv ? ub(e.prev_kv.value) : undefined,
        })),
      ),
    close: async () => {
      open = false
      await ws.close()
    },
  }
}

async function until(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** Writes `n` revisions on `prefix` (a few keys, so most have a previous value); their values by revision. */
async function history(prefix: string, n: number, from = 0): Promise<Map<number, string>> {
  const byRev = new Map<number, string>()
  for (let i = from; i < from + n; i += 20) {
    const batch = Array.from({ length: Math.min(20, from + n - i) }, (_, j) => i + j)
    // Sequential in each batch's order would be slow; each put's own revision is what is checked.
    const revs = await Promise.all(batch.map((j) => put(`${prefix}${j % 5}`, String(j))))
    for (let x = 0; x < batch.length; x++) byRev.set(revs[x]!, String(batch[x]))
  }
  return byRev
}

/** Every revision of `byRev` from `from` on, once, in order, each with the value written before it on its key. */
function check(events: Ev[], byRev: Map<number, string>, prefix: string, from: number): void {
  const revs = [...byRev.keys()].filter((r) => r >= from).sort((a, b) => a - b)
  assert.deepEqual(
    events.map((e) => e.rev),
    revs,
    'every revision once, in order',
  )
  const last = new Map<string, string>()
  for (const r of [...byRev.keys()].sort((a, b) => a - b)) {
    const v = byRev.get(r)!
    const key = `${prefix}${Number(v) % 5}`
    const e = events.find((x) => x.rev === r)
    if (e !== undefined) {
      assert.equal(e.key, key)
      assert.equal(e.value, v)
      assert.equal(e.prev, last.get(key), `prev_kv at ${r}`)
    }
    last.set(key, v)
  }
}

describe('catch-up from a past revision on a member (issue 17)', { skip }, () => {
  test('gRPC and WebSocket from rev 1: created, then 400 revisions in turns with puts arriving meanwhile, once each', async () => {
    const byRev = await history('g/', 400)
    const first = Math.min(...byRev.keys())
    const turns0 = turns
    const g = new GrpcWatch(m.url)
    const w = await wsWatch('g/', 'g0', 1)
    g.create('g/', 'g0', 1)
    // Puts while both catch up (and after): each must come once, after the history, in order.
    const more = await history('g/', 60, 400)
    for (const [r, v] of more) byRev.set(r, v)
    const lastRev = Math.max(...byRev.keys())
    await until(() => g.events().at(-1)?.rev === lastRev, 'gRPC events')
    await until(() => w.events().at(-1)?.rev === lastRev, 'WebSocket events')
    assert.ok(turns - turns0 >= 10, `${turns - turns0} replay turns for 2 x 400 revisions at 40 events per turn`)
    assert.equal(g.got[0]!.created, true, 'gRPC: created first')
    assert.equal(w.got[0].result.created, true, 'WebSocket: created first')
    check(g.events(), byRev, 'g/', first)
    check(w.events(), byRev, 'g/', first)
    assert.ok(g.got.slice(1).every((r) => !r.created && !r.canceled))
    g.close()
    await w.close()
  })

  test('a compaction while the replay waits for its turn: the compacted cancel, on both', async () => {
    const byRev = await history('c/', 300)
    const first = Math.min(...byRev.keys())
    hold = []
    let g: GrpcWatch | undefined
    let w: Awaited<ReturnType<typeof wsWatch>> | undefined
    try {
      g = new GrpcWatch(m.url)
      g.create('c/', 'c0', first)
      w = await wsWatch('c/', 'c0', first)
      await until(() => g!.got.length > 0 && w!.got.length > 0, 'created')
      await until(() => hold!.length > 0, 'a replay turn', 10_000)
      const compactAt = first + 200
      await post(m.url, '/v3/kv/compaction', { revision: compactAt })
      const held = hold
      hold = undefined
      for (const fn of held) fn()
      await until(() => g!.got.some((r) => r.canceled), 'gRPC cancel')
      await until(() => w!.got.some((f) => f.result?.canceled), 'WebSocket cancel')
      const gc = g.got.find((r) => r.canceled)!
      assert.equal(gc.compactRevision, BigInt(compactAt))
      assert.equal(g.got.at(-1), gc, 'the cancel is the last message')
      const wc = w.got.find((f) => f.result?.canceled).result
      assert.equal(wc.compact_revision, String(compactAt))
      assert.equal(w.got.at(-1).result, wc)
      for (const events of [g.events(), w.events()]) {
        assert.ok(events.length < 200, `${events.length} events before the cancel`)
        assert.deepEqual(
          events.map((e) => e.rev),
          [...byRev.keys()].sort((a, b) => a - b).slice(0, events.length),
          'the events before it: from the start, in order, once',
        )
      }
    } finally {
      if (hold) for (const fn of hold.splice(0)) fn()
      hold = undefined
      g?.close()
      await w?.close()
    }
  })
})
