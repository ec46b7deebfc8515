/**
 * The client carries watch ids exactly: etcd's watch_id is an int64, and ids past 2^53 (which doubles cannot tell
 * apart: 2^53 and 2^53 + 1 are the same double) are chosen, sent, routed and cancelled by their exact decimal text.
 * A scripted WebSocket plays the member, so the test needs no server and no timing.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Transport } from '../../src/client/transport.js'
import { Watcher } from '../../src/client/watch.js'
import { WatchStream, type WebSocketLike } from '../../src/client/watch-stream.js'

/** A WebSocket that records what the client sends and lets the test answer. */
class ScriptedSocket implements WebSocketLike {
  static last: ScriptedSocket | undefined
  readyState = 0
  readonly sent: Record<string, any>[] = []
  onopen: ((ev: any) => void) | null = null
  onmessage: ((ev: { data: any }) => void) | null = null
  onclose: ((ev: any) => void) | null = null
  onerror: ((ev: any) => void) | null = null
  constructor(
    readonly url: string,
    readonly protocols?: string[],
  ) {
    ScriptedSocket.last = this
  }
  send(data: string): void {
    this.sent.push(JSON.parse(data))
  }
  close(): void {
    this.readyState = 3
    this.onclose?.({ code: 1000 })
  }
  open(): void {
    this.readyState = 1
    this.onopen?.({})
  }
  answer(result: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify({ result: { header: { revision: '5' }, ...result } }) })
  }
}

const event = (key: string, rev: number) => ({
  kv: {
    key: Buffer.from(key).toString('base64'),
    value: Buffer.from('v').toString('base64'),
    create_revision: String(rev),
    mod_revision: String(rev),
    version: '1',
  },
})

test('watch ids past 2^53 are sent, routed and cancelled exactly', async () => {
  const two53 = 2n ** 53n
  assert.equal(Number(two53), Number(two53 + 1n), 'the two ids are the same double')
  const t = new Transport({ endpoints: ['http://127.0.0.1:1'], commandTimeoutMs: 1000, dialTimeoutMs: 1000 })
  const stream = new WatchStream(t, ScriptedSocket, two53)
  const a = new Watcher(stream, 'a')
  const b = new Watcher(stream, 'b')
  try {
    // The socket opens once the (absent) token is known.
    for (let i = 0; i < 10 && ScriptedSocket.last === undefined; i++) await Promise.resolve()
    const ws = ScriptedSocket.last!
    ws.open()
    assert.deepEqual(
      ws.sent.map((m) => m.create_request.watch_id),
      [two53.toString(), (two53 + 1n).toString()],
      'each create carries its exact id',
    )
    ws.answer({ watch_id: two53.toString(), created: true })
    ws.answer({ watch_id: (two53 + 1n).toString(), created: true })
    await Promise.all([a.ready, b.ready])
    // Events for b's id reach b only (a double would route them to a, or to whichever was created last).
    ws.answer({ watch_id: (two53 + 1n).toString(), events: [event('b', 6)] })
    ws.answer({ watch_id: two53.toString(), events: [event('a', 7)] })
    const rb = await b.next()
    const ra = await a.next()
    assert.equal(rb?.events[0]?.kv.key, 'b')
    assert.equal(ra?.events[0]?.kv.key, 'a')
    b.cancel()
    assert.deepEqual(ws.sent.at(-1), { cancel_request: { watch_id: (two53 + 1n).toString() } })
    // A cancel answer for b's id does not end a.
    ws.answer({ watch_id: (two53 + 1n).toString(), canceled: true })
    ws.answer({ watch_id: two53.toString(), events: [event('a', 8)] })
    assert.equal((await a.next())?.events[0]?.kv.modRevision, 8)
  } finally {
    a.cancel()
    b.cancel()
    stream.close()
  }
})
