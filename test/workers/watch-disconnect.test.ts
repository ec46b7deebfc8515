/**
 * An HTTP watch stream (POST /v3/watch) on a workerd member whose client goes away releases its watchers:
 *
 * - at once, with no write on the stream, when the client kept its request body open (a bidirectional watch
 *   client): workerd fails the object's read of the request body ("Network connection lost") as the connection
 *   closes, and the watch handler ends the stream on that error;
 * - at the first event after the client left when the client had ended its body (curl -d): workerd sees a closed
 *   response connection only when it writes to it, and the `enable_request_signal` compatibility flag aborts the
 *   request's signal at that first write (without the flag only the second write fails). docs/workers.md has the
 *   measurements.
 *
 * The member's /metrics (etcd_debugging_mvcc_watcher_total) is the count checked; every wait is bounded.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { LineStream, startTestMember, type TestMember } from '../server/helpers.js'
import { b64, eventually, post } from '../support/index.js'

process.env.CLOUDFLARE_CF_FETCH_ENABLED = 'false'

async function gauge(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text()
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)
  assert.ok(m, `${name} missing from /metrics`)
  return Number(m[1])
}

const watchers = (base: string) => gauge(base, 'etcd_debugging_mvcc_watcher_total')

describe('HTTP watch on workerd: a client that goes away releases its watchers', { timeout: 180_000 }, () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember({}, { runtime: 'workerd' })
  })
  after(async () => {
    await m?.stop()
  })

  test('a client with its request body open: released at once, with no write on the stream', async () => {
    const create = JSON.stringify({ create_request: { key: b64('open-body') } })
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode(create)) // and never closed: the client may send more requests
      },
    })
    const s = await LineStream.open(m.url, '/v3/watch', body)
    assert.equal(s.status, 200)
    assert.equal((await s.next(30_000)).result.created, true)
    assert.equal(await watchers(m.url), 1)
    s.close()
    await eventually(async () => ((await watchers(m.url)) === 0 ? true : undefined), 30_000, 'watchers released')
    assert.equal(await gauge(m.url, 'etcd_debugging_mvcc_watch_stream_total'), 0)
  })

  test('a client that had ended its body: released at the first event after it left', async () => {
    const s = await LineStream.open(m.url, '/v3/watch', JSON.stringify({ create_request: { key: b64('closed-body') } }))
    assert.equal((await s.next(30_000)).result.created, true)
    assert.equal(await watchers(m.url), 1)
    s.close()
    // The close reaches workerd long before this put's event does (the put is a Raft round and a storage sync).
    await new Promise((r) => setTimeout(r, 200))
    assert.equal((await post(m.url, '/v3/kv/put', { key: b64('closed-body'), value: b64('v') })).status, 200)
    await eventually(
      async () => ((await watchers(m.url)) === 0 ? true : undefined),
      30_000,
      'watchers released after one event',
    )
  })
})
