/**
 * Coalesced watch messages through a real member: concurrent puts committed in one Ready reach a WebSocket watcher as
 * one message with several revisions (header.revision = the last), every revision exactly once and in order; single
 * awaited puts stay one message each; edgecd's client delivers the multi-revision answers and resumes after them
 * from the right revision.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import WebSocket from 'ws'
import { Client } from '../../src/client/index.js'
import { b64, post } from '../support/index.js'
import { startTestMember, type TestMember, WsWatch } from './helpers.js'

let m: TestMember
before(async () => {
  m = await startTestMember()
})
after(async () => {
  await m?.stop()
})

const put = async (k: string, v: string) =>
  Number((await post(m.url, '/v3/kv/put', { key: b64(k), value: b64(v) })).json.header.revision)

/** Event messages of a WebSocket watch until `n` events arrived (bounded). */
async function eventMessages(w: WsWatch, n: number): Promise<any[]> {
  const out: any[] = []
  let events = 0
  while (events < n) {
    const f = (await w.next(10_000)).result
    if (!f.events) continue
    out.push(f)
    events += f.events.length
  }
  return out
}

describe('coalesced watch messages through a member', () => {
  test('concurrent puts: several revisions in one message, each revision once, in order; awaited puts one each', async () => {
    const w = await WsWatch.open(m.url)
    try {
      w.send({ create_request: { key: b64('co/'), range_end: b64('co0') } })
      assert.equal((await w.next()).result.created, true)
      let multi = 0
      let expected: number[] = []
      const got: number[] = []
      // Proposals that arrive together are committed in one Ready; a few rounds make one certain on a busy machine.
      for (let round = 0; round < 10 && multi === 0; round++) {
        const revs = await Promise.all(Array.from({ length: 40 }, (_, i) => put(`co/${i % 7}`, `r${round}-${i}`)))
        expected = expected.concat(revs)
        for (const f of await eventMessages(w, revs.length)) {
          const rs = f.events.map((e: any) => Number(e.kv.mod_revision))
          assert.equal(Number(f.header.revision), rs.at(-1), 'header.revision is the last revision of the message')
          if (new Set(rs).size > 1) multi++
          got.push(...rs)
        }
      }
      assert.ok(multi > 0, 'no message carried several revisions')
      assert.deepEqual(
        got,
        expected.sort((a, b) => a - b),
      )
      // One put at a time: one message per revision, as before.
      const a = await put('co/x', '1')
      const b = await put('co/x', '2')
      const fs = await eventMessages(w, 2)
      assert.deepEqual(
        fs.map((f) => f.events.map((e: any) => Number(e.kv.mod_revision))),
        [[a], [b]],
      )
    } finally {
      w.ws.close()
    }
  })

  test("edgecd's client: multi-revision answers delivered in order; a resumed watch starts after their last revision", async () => {
    const sockets: WebSocket[] = []
    class Counting extends WebSocket {
      constructor(url: string, p?: string | string[]) {
        super(url, p)
        sockets.push(this)
      }
    }
    const c = new Client({ endpoints: [m.url], WebSocket: Counting })
    const watcher = c.watch({ prefix: 'cc/' })
    try {
      await watcher.ready
      const seen: number[] = []
      let multi = 0
      let expected: number[] = []
      for (let round = 0; round < 10 && multi === 0; round++) {
        const revs = await Promise.all(Array.from({ length: 40 }, (_, i) => put(`cc/${i % 5}`, `v${i}`)))
        expected = expected.concat(revs)
        while (seen.length < expected.length) {
          const r = (await watcher.next())!
          const rs = r.events.map((e) => e.kv.modRevision)
          if (new Set(rs).size > 1) multi++
          seen.push(...rs)
        }
      }
      assert.ok(multi > 0, 'no answer carried several revisions')
      assert.deepEqual(
        seen,
        expected.sort((a, b) => a - b),
      )
      assert.equal(watcher.nextRevision, seen.at(-1)! + 1)
      // Drop the socket: the watch is created again from nextRevision and neither repeats nor skips.
      sockets.at(-1)!.terminate()
      const after = await put('cc/z', 'after')
      const r = (await watcher.next())!
      assert.deepEqual(
        r.events.map((e) => e.kv.modRevision),
        [after],
      )
    } finally {
      watcher.cancel()
      c.close()
    }
  })
})
