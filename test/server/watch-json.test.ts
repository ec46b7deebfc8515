/**
 * The WebSocket / HTTP watch's event messages are written by a hand-written encoder (codec/watch-json.ts: the header,
 * events and key-values field by field, issue 17's per-put cost): seeded random messages must encode byte for byte
 * as the descriptor-driven encodeMessage writes them (zero values omitted, int64 as strings, bytes as base64, enum
 * names, unknown enum numbers). `SEED=n` replays a run; a failure names its seed and case.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { encodeMessage } from '../../src/api/http/codec/encode.js'
import { encodeWatchResponse, watchJsonStats, watchResultJson } from '../../src/api/http/codec/watch-json.js'
import { isSharedEvents } from '../../src/kv/watch.js'
import * as M from '../../src/protocol/descriptors.js'
import type { Event, KeyValue, ResponseHeader, WatchResponse } from '../../src/protocol/types.js'
import { newStore, put, rng, watchReq } from '../kv/helpers.js'

const seed = Number(process.env.SEED ?? 99)

test('event messages: the hand-written encoder equals encodeMessage (seeded random messages)', () => {
  const rand = rng(seed)
  const bytes = () => Uint8Array.from({ length: rand(3) === 0 ? 0 : rand(40) }, () => rand(256))
  // Zero (omitted), small, and past 2^32 (int64 written as a decimal string).
  const int = () => [0, 1 + rand(100), 2 ** 40 + rand(1000), Number.MAX_SAFE_INTEGER][rand(4)]!
  const kv = (): KeyValue => ({
    key: bytes(),
    create_revision: int(),
    mod_revision: int(),
    version: int(),
    value: bytes(),
    lease: [0n, BigInt(1 + rand(1000)), 2n ** 63n - 1n][rand(3)]!,
  })
  const event = (): Event => {
    // PUT (0, omitted), DELETE, and a number with no name (written as a number, as encodeMessage does).
    const e: Event = { type: [0, 1, 7][rand(3)]!, kv: kv() }
    if (rand(2) === 0) e.prev_kv = kv()
    return e
  }
  const header = (): ResponseHeader => ({
    cluster_id: ['0', '', '14841639068965178418', String(1 + rand(9))][rand(4)]!,
    member_id: ['0', '', '10276657743932975437'][rand(3)]!,
    revision: int(),
    raft_term: int(),
  })
  for (let i = 0; i < 2000; i++) {
    const resp: WatchResponse = {
      watch_id: [0, 1 + rand(100), -1, 2n ** 60n][rand(4)]!,
      created: false,
      canceled: false,
      compact_revision: 0,
      cancel_reason: '',
      fragment: false,
      events: Array.from({ length: 1 + rand(4) }, event),
    }
    if (rand(4) !== 0) resp.header = header()
    const want = encodeMessage(M.WatchResponse, resp)
    const at = `seed ${seed} case ${i}: ${want}`
    assert.equal(encodeWatchResponse(resp), want, at)
    // Again: the events' and the header's texts now come from the cache.
    assert.equal(encodeWatchResponse(resp), want, at)
    assert.equal(watchResultJson(resp), `{"result":${want}}`, at)
  }
})

test('one events encode per shape with 10 shapes interleaved on 100 streams; an Event[] for one watcher is not kept', () => {
  const s = newStore()
  const texts: string[] = []
  const sink = {
    send: (r: WatchResponse) => {
      texts.push(watchResultJson(r))
      return true
    },
  }
  // Each stream has one watcher of each of 10 shapes ([k, l0) ... [k, l4), with and without prev_kv), so the messages
  // of one put alternate between shapes: a cache of the last few arrays would encode each message.
  for (let i = 0; i < 100; i++) {
    const st = s.watchHub.openStream(sink)
    for (let j = 0; j < 5; j++) {
      st.create(watchReq('k', `l${j}`))
      st.create(watchReq('k', `l${j}`, { prev_kv: true }))
    }
  }
  const one: WatchResponse[] = []
  s.watchHub
    .openStream({
      send: (r) => {
        one.push(r)
        return true
      },
    })
    .create(watchReq('solo'))
  put(s, 'k', 'v1')
  texts.length = 0
  const before = watchJsonStats.eventEncodes
  put(s, 'k', 'v2')
  assert.equal(texts.length, 1000)
  assert.equal(watchJsonStats.eventEncodes - before, 10, 'one encode per shape')
  put(s, 'solo', 'x')
  const msg = one.find((m) => m.events.length > 0)!
  assert.equal(isSharedEvents(msg.events), false, 'one watcher: not shared, its encoding is not kept')
})
