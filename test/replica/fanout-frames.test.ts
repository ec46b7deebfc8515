/**
 * The member's side of replica fan-out (issue 13): replicas following one range each have their own WebSocket and
 * one watcher (id 0), so they all get the same watch message. The gateway builds its text once
 * (codec/watch-json.ts) and the Node socket layer its frame bytes once (runtime/node/split-wss.ts's textFrame),
 * shared by every socket. Checked: the frame is RFC 6455's for every payload length class, the text is reused only
 * when events, header and watch id are the same objects, and end to end every client gets every event as JSON.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import WebSocket from 'ws'
import { encodeMessage } from '../../src/api/http/codec/encode.js'
import { watchJsonStats, watchResultJson } from '../../src/api/http/codec/watch-json.js'
import { watchResponse } from '../../src/kv/watch.js'
import * as M from '../../src/protocol/descriptors.js'
import type { Event, ResponseHeader, WatchResponse } from '../../src/protocol/types.js'
import { sharedFrameStats, textFrame } from '../../src/runtime/node/split-wss.js'
import { startTestMember } from '../server/helpers.js'
import { b64, post } from '../support/index.js'

/** Parses one unmasked frame: FIN, opcode, payload. */
function parseFrame(b: Buffer): { fin: boolean; opcode: number; payload: Buffer } {
  let n = b[1]! & 0x7f
  let at = 2
  if (n === 126) {
    n = b.readUInt16BE(2)
    at = 4
  } else if (n === 127) {
    n = Number(b.readBigUInt64BE(2))
    at = 10
  }
  assert.equal(b[1]! & 0x80, 0, 'a server frame is not masked')
  assert.equal(b.length, at + n, 'exactly one frame')
  return { fin: (b[0]! & 0x80) !== 0, opcode: b[0]! & 0x0f, payload: b.subarray(at) }
}

describe('replica fan-out: one watch message text and frame for every replica', () => {
  test('textFrame: a final text frame for short, 16-bit and 64-bit lengths (UTF-8 counted in bytes), shared', () => {
    for (const text of [
      '',
      'x',
      'ü'.repeat(62),
      'ü'.repeat(63),
      'a'.repeat(125),
      'a'.repeat(126),
      'é'.repeat(40_000),
    ]) {
      const f = parseFrame(textFrame(text))
      assert.equal(f.fin, true)
      assert.equal(f.opcode, 1)
      assert.equal(f.payload.toString('utf8'), text)
    }
    const t = `{"result":${'1'.repeat(300)}}`
    assert.equal(textFrame(t), textFrame(t), 'the same text: the same bytes')
    assert.equal(textFrame(`${t} `.trimEnd()), textFrame(t), 'an equal string built elsewhere: the same bytes')
    assert.notEqual(textFrame(`${t}x`), textFrame(t))
  })

  test('watchResultJson reuses the text only for the same events, header and watch id', () => {
    const header = { cluster_id: '1', member_id: '2', revision: '9', raft_term: '3' } as unknown as ResponseHeader
    const events = [
      { type: 0, kv: { key: new Uint8Array([107]), value: new Uint8Array([118]), mod_revision: 9 } },
    ] as unknown as Event[]
    const resp = (o: Partial<WatchResponse>) => watchResponse({ header, events, ...o })
    const full = (r: WatchResponse) => `{"result":${encodeMessage(M.WatchResponse, r)}}`
    const a = resp({})
    const r0 = watchJsonStats.textReuses
    assert.equal(watchResultJson(a), full(a))
    assert.equal(watchResultJson(resp({})), full(a))
    assert.equal(watchJsonStats.textReuses - r0, 1, 'the second watcher with id 0 reused the text')
    for (const other of [
      resp({ watch_id: 1 }),
      resp({ header: { ...header } as ResponseHeader, watch_id: 1 }),
      resp({ events: [...events], watch_id: 2 }),
      resp({ created: true }),
    ]) {
      const before = watchJsonStats.textReuses
      assert.equal(watchResultJson(other), full(other))
      assert.equal(watchJsonStats.textReuses, before, 'a different message is encoded, not reused')
    }
  })

  test('end to end: 40 streams with one watcher each, 30 puts: every stream gets every event, as JSON, in order', async () => {
    const m = await startTestMember()
    const sockets: WebSocket[] = []
    try {
      const seen: string[][] = []
      let created = 0
      for (let i = 0; i < 40; i++) {
        const ws = new WebSocket(`${m.url.replace('http:', 'ws:')}/v3/watch`)
        sockets.push(ws)
        const mine: string[] = []
        seen.push(mine)
        ws.on('message', (d, binary) => {
          assert.equal(binary, false, 'a text frame')
          const r = JSON.parse(String(d)).result
          if (r.created) created++
          for (const e of r.events ?? []) mine.push(Buffer.from(e.kv.value, 'base64').toString())
        })
        await new Promise((resolve, reject) => {
          ws.once('open', resolve)
          ws.once('error', reject)
        })
        ws.send(JSON.stringify({ create_request: { key: b64('r/'), range_end: b64('r0') } }))
      }
      const until = async (cond: () => boolean, what: string) => {
        const deadline = Date.now() + 60_000
        while (!cond()) {
          if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
          await new Promise((r) => setTimeout(r, 10))
        }
      }
      await until(() => created === 40, 'creates')
      const reused = watchJsonStats.textReuses
      const written = sharedFrameStats.writes
      const want: string[] = []
      for (let i = 0; i < 30; i++) {
        want.push(`välue ${i}`)
        assert.equal(
          (await post(m.url, '/v3/kv/put', { key: b64(`r/${i % 7}`), value: b64(`välue ${i}`) })).status,
          200,
        )
      }
      await until(() => seen.every((s) => s.length === 30), 'every event on every stream')
      for (const s of seen) assert.deepEqual(s, want)
      assert.ok(watchJsonStats.textReuses - reused >= 30 * 39, `texts reused: ${watchJsonStats.textReuses - reused}`)
      assert.ok(
        sharedFrameStats.writes - written >= 30 * 40,
        `frames written as shared bytes: ${sharedFrameStats.writes - written}`,
      )
    } finally {
      for (const ws of sockets) ws.terminate()
      await m.stop()
    }
  })
})
