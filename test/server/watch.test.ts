/**
 * Watch over HTTP (POST /v3/watch, `{"result":...}\n` lines) and over the WebSocket (GET /v3/watch, one JSON text
 * frame per message), against an in-process member: created/events/cancel/progress shapes, txn events in one
 * message, prev_kv, filters, client-chosen and duplicate ids, compacted start revisions, several watchers per stream.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { b64, eventually, get, post } from '../support/index.js'
import { LineStream, notOnWorkerd, startTestMember, type TestMember, WsWatch } from './helpers.js'

let m: TestMember
before(async () => {
  m = await startTestMember()
})
after(async () => {
  await m?.stop()
})

const put = async (k: string, v: string) =>
  Number((await post(m.url, '/v3/kv/put', { key: b64(k), value: b64(v) })).json.header.revision)
const current = async () => Number((await post(m.url, '/v3/kv/range', { key: b64('?') })).json.header.revision)

/** A request body the test can keep writing to: a full-duplex watch stream. */
class DuplexBody {
  controller!: ReadableStreamDefaultController<Uint8Array>
  readonly stream = new ReadableStream<Uint8Array>({
    start: (c) => {
      this.controller = c
    },
  })
  send(msg: unknown): void {
    this.controller.enqueue(new TextEncoder().encode(JSON.stringify(msg)))
  }
  end(): void {
    this.controller.close()
  }
}

describe('POST /v3/watch', () => {
  test('created, live put, one message for a whole txn, delete with prev_kv; header revision = event revision', async () => {
    const r0 = await current()
    const s = await LineStream.open(
      m.url,
      '/v3/watch',
      JSON.stringify({ create_request: { key: b64('w/'), range_end: b64('w0'), prev_kv: true } }),
    )
    assert.equal(s.status, 200)
    const created = (await s.next()).result
    assert.deepEqual(Object.keys(created), ['header', 'created'], 'watch_id 0 is omitted')
    assert.equal(created.header.revision, String(r0))
    const r1 = await put('w/a', '1')
    const ev1 = (await s.next()).result
    assert.deepEqual(Object.keys(ev1), ['header', 'events'])
    assert.equal(ev1.header.revision, String(r1))
    assert.deepEqual(ev1.events, [
      { kv: { key: b64('w/a'), create_revision: String(r1), mod_revision: String(r1), version: '1', value: b64('1') } },
    ])
    const t = await post(m.url, '/v3/kv/txn', {
      success: [
        { request_put: { key: b64('w/b'), value: b64('2') } },
        { request_put: { key: b64('w/a'), value: b64('3') } },
        { request_put: { key: b64('other'), value: b64('x') } },
      ],
    })
    const r2 = Number(t.json.header.revision)
    const ev2 = (await s.next()).result
    assert.equal(ev2.header.revision, String(r2))
    assert.deepEqual(
      ev2.events.map((e: { kv: { key: string } }) => Buffer.from(e.kv.key, 'base64').toString()),
      ['w/b', 'w/a'],
    )
    assert.equal(ev2.events[1].prev_kv.value, b64('1'))
    const d = await post(m.url, '/v3/kv/deleterange', { key: b64('w/a') })
    const ev3 = (await s.next()).result
    assert.deepEqual(ev3.events, [
      {
        type: 'DELETE',
        kv: { key: b64('w/a'), mod_revision: d.json.header.revision },
        prev_kv: {
          key: b64('w/a'),
          create_revision: String(r1),
          mod_revision: String(r2),
          version: '2',
          value: b64('3'),
        },
      },
    ])
    await put('unwatched', 'x')
    assert.equal(await s.quiet(200), undefined, 'no event for a key outside the range')
    s.close()
  })

  test('filters, client-chosen id, auto ids, duplicate id, progress_request, cancel in one complete body', async () => {
    const r0 = await current()
    const body = [
      { create_request: { key: b64('f'), filters: ['NOPUT'] } },
      { create_request: { key: b64('f'), watch_id: 7, filters: [1] } },
      { create_request: { key: b64('f') } },
      { create_request: { key: b64('f'), watch_id: 7 } },
      { progress_request: {} },
      { cancel_request: { watch_id: 1 } },
    ]
      .map((x) => JSON.stringify(x))
      .join('')
    const s = await LineStream.open(m.url, '/v3/watch', body)
    const msgs = [] as { result: Record<string, unknown> }[]
    for (let i = 0; i < 6; i++) msgs.push(await s.next())
    const without = (r: Record<string, unknown>) => {
      const { header, ...rest } = r
      return rest
    }
    assert.deepEqual(
      msgs.map((x) => without(x.result)),
      [
        { created: true },
        { watch_id: '7', created: true },
        { watch_id: '1', created: true },
        {
          watch_id: '-1',
          created: true,
          canceled: true,
          cancel_reason: 'mvcc: duplicate watch ID provided on the WatchStream',
        },
        { watch_id: '-1' },
        { watch_id: '1', canceled: true },
      ],
    )
    assert.equal((msgs[4]!.result.header as { revision: string }).revision, String(r0))
    const rp = await put('f', 'x')
    const e1 = (await s.next()).result
    assert.equal(e1.watch_id, '7', 'only the NODELETE watcher sees the put (1 was cancelled, 0 filters puts)')
    assert.equal(e1.events[0].kv.mod_revision, String(rp))
    assert.equal(await s.quiet(200), undefined)
    await post(m.url, '/v3/kv/deleterange', { key: b64('f') })
    const e2 = (await s.next()).result
    assert.equal(e2.watch_id, undefined, 'watcher 0 (NOPUT) sees the delete')
    assert.equal(e2.events[0].type, 'DELETE')
    assert.equal(await s.quiet(200), undefined)
    s.close()
  })

  test('full duplex: requests written after the stream opened are answered live (create, cancel, progress)', async () => {
    const body = new DuplexBody()
    body.send({ create_request: { key: b64('dx') } })
    const s = await LineStream.open(m.url, '/v3/watch', body.stream)
    assert.equal((await s.next()).result.created, true)
    await put('dx', '1')
    assert.equal((await s.next()).result.events.length, 1)
    body.send({ create_request: { key: b64('dy'), watch_id: 5 } })
    assert.equal((await s.next()).result.watch_id, '5')
    body.send({ cancel_request: { watch_id: 0 } })
    assert.deepEqual(Object.keys((await s.next()).result), ['header', 'canceled'])
    await put('dx', '2')
    await put('dy', '1')
    const ev = (await s.next()).result
    assert.equal(ev.watch_id, '5', 'the cancelled watcher 0 is silent')
    body.send({ progress_request: {} })
    assert.equal((await s.next()).result.watch_id, '-1')
    body.end()
    assert.equal(await s.quiet(200), undefined, 'after body EOF the watch stays open')
    await put('dy', '2')
    assert.equal((await s.next()).result.watch_id, '5')
    s.close()
  })

  test('historic replay from start_revision, future start_revision, compacted start revision', async () => {
    const r1 = await put('h', '1')
    await put('h', '2')
    await put('h', '3')
    const s = await LineStream.open(
      m.url,
      '/v3/watch',
      JSON.stringify({ create_request: { key: b64('h'), start_revision: r1 } }),
    )
    assert.equal((await s.next()).result.created, true)
    const replay = (await s.next()).result
    assert.deepEqual(
      replay.events.map((e: { kv: { value: string } }) => e.kv.value),
      [b64('1'), b64('2'), b64('3')],
    )
    assert.equal(replay.header.revision, String(await current()), 'replay header = current revision')
    s.close()
    const cur = await current()
    const fut = await LineStream.open(
      m.url,
      '/v3/watch',
      JSON.stringify({ create_request: { key: b64('h'), start_revision: cur + 2 } }),
    )
    assert.equal((await fut.next()).result.created, true)
    await put('h', '4')
    assert.equal(await fut.quiet(200), undefined, 'an event before the start revision is not sent')
    await put('h', '5')
    assert.equal((await fut.next()).result.events[0].kv.value, b64('5'))
    fut.close()
    await post(m.url, '/v3/kv/compaction', { revision: cur })
    const c = await LineStream.open(
      m.url,
      '/v3/watch',
      JSON.stringify({ create_request: { key: b64('h'), start_revision: r1 } }),
    )
    assert.equal((await c.next()).result.created, true)
    const cancel = (await c.next()).result
    assert.deepEqual(cancel, {
      header: {
        cluster_id: cancel.header.cluster_id,
        member_id: cancel.header.member_id,
        raft_term: cancel.header.raft_term,
      },
      canceled: true,
      compact_revision: String(cur),
    })
    c.close()
  })

  test('an undecodable first message is HTTP 500 code 2; /v3beta/watch works', async () => {
    const bad = await post(m.url, '/v3/watch', '{"create_request":{"key":"@@"}}')
    assert.equal(bad.status, 500)
    assert.equal(bad.json.code, 2)
    assert.match(bad.json.error, /illegal base64 data at input byte/)
    const s = await LineStream.open(m.url, '/v3beta/watch', JSON.stringify({ create_request: { key: b64('beta-w') } }))
    assert.equal((await s.next()).result.created, true)
    await put('beta-w', '1')
    assert.equal((await s.next()).result.events.length, 1)
    s.close()
  })

  test('a closed stream releases its watchers (metrics)', {
    skip: notOnWorkerd(
      "on workerd a client's abort of an HTTP stream does not reach the Durable Object (docs/workers.md)",
    ),
  }, async () => {
    const gauge = async (name: string) =>
      Number(new RegExp(`^${name} (\\d+)$`, 'm').exec((await get(m.url, '/metrics')).text)?.[1])
    await eventually(
      async () => ((await gauge('etcd_debugging_mvcc_watcher_total')) === 0 ? true : undefined),
      5000,
      'no watchers',
    )
    const s = await LineStream.open(
      m.url,
      '/v3/watch',
      JSON.stringify({ create_request: { key: b64('g') } }) + JSON.stringify({ create_request: { key: b64('g2') } }),
    )
    await s.next()
    await s.next()
    assert.equal(await gauge('etcd_debugging_mvcc_watcher_total'), 2)
    assert.equal(await gauge('etcd_debugging_mvcc_watch_stream_total'), 1)
    s.close()
    await eventually(
      async () =>
        (await gauge('etcd_debugging_mvcc_watcher_total')) === 0 &&
        (await gauge('etcd_debugging_mvcc_watch_stream_total')) === 0
          ? true
          : undefined,
      5000,
      'watchers released',
    )
  })
})

describe('WebSocket GET /v3/watch', () => {
  test('create → created frame, put → events frame, cancel → canceled frame', async () => {
    const r0 = await current()
    const ws = await WsWatch.open(m.url)
    ws.send({ create_request: { key: b64('ws/a') } })
    const created = await ws.next()
    assert.deepEqual(Object.keys(created), ['result'])
    assert.deepEqual(Object.keys(created.result), ['header', 'created'])
    assert.equal(created.result.header.revision, String(r0))
    const r1 = await put('ws/a', 'v')
    const ev = (await ws.next()).result
    assert.equal(ev.header.revision, String(r1))
    assert.deepEqual(ev.events, [
      {
        kv: { key: b64('ws/a'), create_revision: String(r1), mod_revision: String(r1), version: '1', value: b64('v') },
      },
    ])
    ws.send({ cancel_request: { watch_id: 0 } })
    assert.deepEqual(Object.keys((await ws.next()).result), ['header', 'canceled'])
    await put('ws/a', 'w')
    assert.equal(await ws.quiet(200), undefined)
    await ws.close()
  })

  test('several watchers on one socket: auto and chosen ids, txn events in one frame, prev_kv, filters, progress', async () => {
    const ws = await WsWatch.open(m.url)
    ws.send({ create_request: { key: b64('s/'), range_end: b64('s0') } })
    ws.send({ create_request: { key: b64('s/x'), prev_kv: true, watch_id: 42 } })
    ws.send({ create_request: { key: b64('s/'), range_end: b64('s0'), filters: ['NOPUT'] } })
    ws.send({ create_request: { key: b64('s/x'), watch_id: 42 } })
    const ids = []
    for (let i = 0; i < 4; i++) ids.push((await ws.next()).result.watch_id ?? '0')
    assert.deepEqual(ids, ['0', '42', '1', '-1'])
    await put('s/x', '1')
    const t = await post(m.url, '/v3/kv/txn', {
      success: [
        { request_put: { key: b64('s/x'), value: b64('2') } },
        { request_delete_range: { key: b64('s/y') } },
        { request_put: { key: b64('s/z'), value: b64('3') } },
      ],
    })
    const rt = t.json.header.revision
    const got = new Map<
      string,
      { header: { revision: string }; events: { type?: string; kv: { key: string }; prev_kv?: { value: string } }[] }[]
    >()
    for (let i = 0; i < 4; i++) {
      const r = (await ws.next()).result
      const id = r.watch_id ?? '0'
      got.set(id, [...(got.get(id) ?? []), r])
    }
    assert.equal(await ws.quiet(200), undefined)
    assert.equal(got.get('0')!.length, 2)
    assert.equal(got.get('0')![1]!.header.revision, rt)
    assert.equal(
      got.get('0')![1]!.events.length,
      2,
      'the txn puts s/x and s/z in one message (deleting a missing key is no event)',
    )
    assert.equal(got.get('42')![1]!.events[0]!.prev_kv!.value, b64('1'))
    assert.equal(got.get('1'), undefined, 'NOPUT watcher saw no puts')
    ws.send({ progress_request: {} })
    const p = (await ws.next()).result
    assert.equal(p.watch_id, '-1')
    assert.equal(p.header.revision, rt)
    await post(m.url, '/v3/kv/deleterange', { key: b64('s/z') })
    const seen = new Set<string>()
    for (let i = 0; i < 2; i++) seen.add((await ws.next()).result.watch_id ?? '0')
    assert.deepEqual([...seen].sort(), ['0', '1'])
    await ws.close()
  })

  test('a bad frame answers an error frame and the socket keeps working; binary frames are refused', async () => {
    const ws = await WsWatch.open(m.url)
    ws.send('{"create_request":{"key":"@@"}}')
    const e = await ws.next()
    assert.ok(e.error, JSON.stringify(e))
    assert.match(e.error.message, /illegal base64/)
    ws.ws.send(Buffer.from([1, 2, 3]))
    assert.ok((await ws.next()).error)
    ws.send('not json at all')
    assert.ok((await ws.next()).error)
    ws.send({ create_request: { key: b64('after-bad') } })
    assert.equal((await ws.next()).result.created, true)
    await put('after-bad', '1')
    assert.equal((await ws.next()).result.events.length, 1)
    await ws.close()
  })

  test('compacted start revision on the WebSocket; /v3beta/watch; GET without upgrade is 405', async () => {
    const r = await put('wc', '1')
    await put('wc', '2')
    await post(m.url, '/v3/kv/compaction', { revision: r + 1 })
    const ws = await WsWatch.open(m.url, '/v3beta/watch')
    ws.send({ create_request: { key: b64('wc'), start_revision: r } })
    assert.equal((await ws.next()).result.created, true)
    const c = (await ws.next()).result
    assert.equal(c.canceled, true)
    assert.equal(c.compact_revision, String(r + 1))
    assert.equal(c.header.revision, undefined)
    await ws.close()
    const plain = await get(m.url, '/v3/watch')
    assert.equal(plain.status, 405)
  })

  test('closing sockets releases watchers and streams', async () => {
    const gauge = async (name: string) =>
      Number(new RegExp(`^${name} (\\d+)$`, 'm').exec((await get(m.url, '/metrics')).text)?.[1])
    // Counted from what is open before (on workerd, HTTP watch streams whose client went away linger: see
    // docs/workers.md), so this checks exactly the three sockets opened here.
    const w0 = await gauge('etcd_debugging_mvcc_watcher_total')
    const s0 = await gauge('etcd_debugging_mvcc_watch_stream_total')
    const sockets = await Promise.all([1, 2, 3].map(() => WsWatch.open(m.url)))
    for (const s of sockets) s.send({ create_request: { key: b64('rel') } })
    for (const s of sockets) await s.next()
    assert.equal(await gauge('etcd_debugging_mvcc_watcher_total'), w0 + 3)
    await put('rel', 'x')
    for (const s of sockets) assert.equal((await s.next()).result.events.length, 1)
    await sockets[0]!.close()
    sockets[1]!.ws.terminate()
    await eventually(
      async () => ((await gauge('etcd_debugging_mvcc_watcher_total')) === w0 + 1 ? true : undefined),
      5000,
      'one socket left',
    )
    await sockets[2]!.close()
    await eventually(
      async () =>
        (await gauge('etcd_debugging_mvcc_watcher_total')) === w0 &&
        (await gauge('etcd_debugging_mvcc_watch_stream_total')) === s0
          ? true
          : undefined,
      5000,
      'none left',
    )
  })
})
