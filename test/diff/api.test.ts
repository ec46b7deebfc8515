/**
 * Differential tests: the same HTTP scenarios against Debian's etcd 3.4 and against edgecd, both fresh, and the
 * answers (status, content type, body) must be identical apart from cluster/member ids and raft terms. Needs
 * `etcd` on the PATH (scripts/setup-etcd.sh); skipped with a clear message otherwise.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { LineStream } from '../server/helpers.js'
import { type DiffPair, normalizeServerIds, startDiffPair } from '../support/diff.js'
import { requires } from '../support/requirements.js'

const b64 = (s: string) => Buffer.from(s).toString('base64')

interface Answer {
  status: number
  type: string
  body: string
}

async function call(base: string, path: string, body?: string, method = 'POST'): Promise<Answer> {
  const r = await fetch(base + path, {
    method,
    body: method === 'GET' || method === 'OPTIONS' ? undefined : (body ?? ''),
  })
  return { status: r.status, type: (r.headers.get('content-type') ?? '').split(';')[0]!, body: await r.text() }
}

/** Ids and terms differ between the two servers by design; everything else must be equal. */
function normalize(a: Answer): Answer {
  return { ...a, body: normalizeServerIds(a.body) }
}

const etcdSkip = requires('etcd')

describe('differential: etcd 3.4 vs edgecd, same requests, same answers', {
  skip: etcdSkip,
}, () => {
  let pair: DiffPair
  let etcd: DiffPair['etcd']
  let edge: DiffPair['edge']
  before(async () => {
    pair = await startDiffPair()
    ;({ etcd, edge } = pair)
  })
  after(async () => {
    await pair?.stop()
  })

  /** Runs one request on both and compares. */
  async function same(path: string, body?: string, method = 'POST'): Promise<Answer> {
    const [a, b] = await Promise.all([call(etcd.url, path, body, method), call(edge.urls[0]!, path, body, method)])
    const na = normalize(a)
    const nb = normalize(b)
    assert.deepEqual(nb, na, `${method} ${path} ${body ?? ''}`)
    return nb
  }

  test('put, range (prefix, from-key, limit, count_only, keys_only, sort), revisions', async () => {
    for (const k of ['a', 'b', 'c', 'd'])
      await same('/v3/kv/put', JSON.stringify({ key: b64(k), value: b64(`v-${k}`) }))
    await same('/v3/kv/put', JSON.stringify({ key: b64('b'), value: b64('v-b2'), prev_kv: true }))
    await same('/v3/kv/range', JSON.stringify({ key: b64('a') }))
    await same('/v3/kv/range', JSON.stringify({ key: b64('zzz') }))
    await same('/v3/kv/range', JSON.stringify({ key: b64('a'), range_end: b64('c') }))
    await same('/v3/kv/range', JSON.stringify({ key: b64('b'), range_end: 'AA==' }))
    await same('/v3/kv/range', JSON.stringify({ key: 'AA==', range_end: 'AA==', limit: 2 }))
    await same('/v3/kv/range', JSON.stringify({ key: 'AA==', range_end: 'AA==', count_only: true }))
    await same('/v3/kv/range', JSON.stringify({ key: 'AA==', range_end: 'AA==', keys_only: true, limit: '3' }))
    await same(
      '/v3/kv/range',
      JSON.stringify({ key: 'AA==', range_end: 'AA==', sort_order: 'DESCEND', sort_target: 'MOD' }),
    )
    await same('/v3/kv/range', JSON.stringify({ key: 'AA==', range_end: 'AA==', sort_target: 'VERSION', limit: 2 }))
    await same('/v3/kv/range', JSON.stringify({ key: 'AA==', range_end: 'AA==', revision: 3 }))
    await same('/v3/kv/range', JSON.stringify({ key: 'AA==', range_end: 'AA==', min_mod_revision: 4 }))
    await same('/v3/kv/range', JSON.stringify({ key: b64('c'), range_end: b64('a') }))
  })

  test('delete, recreate resets version, txn compare/success/failure, nested txn, errors', async () => {
    await same('/v3/kv/deleterange', JSON.stringify({ key: b64('a'), prev_kv: true }))
    await same('/v3/kv/deleterange', JSON.stringify({ key: b64('nothing') }))
    await same('/v3/kv/put', JSON.stringify({ key: b64('a'), value: b64('again') }))
    await same('/v3/kv/range', JSON.stringify({ key: b64('a') }))
    const cmp = (target: string, extra: object) => ({ key: b64('a'), target, ...extra })
    await same(
      '/v3/kv/txn',
      JSON.stringify({
        compare: [cmp('VALUE', { value: b64('again') })],
        success: [{ request_put: { key: b64('t1'), value: b64('x') } }, { request_range: { key: b64('t1') } }],
        failure: [],
      }),
    )
    await same(
      '/v3/kv/txn',
      JSON.stringify({
        compare: [cmp('VERSION', { result: 'GREATER', version: 5 })],
        success: [],
        failure: [{ request_range: { key: b64('a') } }, { request_delete_range: { key: b64('t1'), prev_kv: true } }],
      }),
    )
    await same(
      '/v3/kv/txn',
      JSON.stringify({
        compare: [{ key: b64('missing'), target: 'VALUE', value: '' }],
        success: [{ request_put: { key: b64('x'), value: b64('y') } }],
      }),
    )
    await same(
      '/v3/kv/txn',
      JSON.stringify({
        success: [
          { request_txn: { success: [{ request_put: { key: b64('n1'), value: b64('1') } }] } },
          { request_put: { key: b64('n2') } },
        ],
      }),
    )
    await same(
      '/v3/kv/txn',
      JSON.stringify({ success: [{ request_put: { key: b64('d1') } }, { request_put: { key: b64('d1') } }] }),
    )
    await same(
      '/v3/kv/txn',
      JSON.stringify({ success: Array.from({ length: 129 }, (_, i) => ({ request_put: { key: b64(`k${i}`) } })) }),
    )
    await same('/v3/kv/put', JSON.stringify({ value: b64('no key') }))
    await same('/v3/kv/put', JSON.stringify({ key: b64('nokey'), ignore_value: true }))
    await same('/v3/kv/put', JSON.stringify({ key: b64('a'), value: b64('v'), ignore_value: true }))
    await same('/v3/kv/put', JSON.stringify({ key: b64('a'), lease: '12345' }))
  })

  test('compaction and its errors', async () => {
    await same('/v3/kv/compaction', JSON.stringify({ revision: 4 }))
    await same('/v3/kv/range', JSON.stringify({ key: 'AA==', range_end: 'AA==', revision: 3 }))
    await same('/v3/kv/range', JSON.stringify({ key: 'AA==', range_end: 'AA==', revision: 4, count_only: true }))
    await same('/v3/kv/compaction', JSON.stringify({ revision: 4 }))
    await same('/v3/kv/compaction', JSON.stringify({ revision: 1000 }))
    await same('/v3/kv/range', JSON.stringify({ key: 'AA==', revision: 1000 }))
  })

  test('leases: grant with a chosen id, attach, timetolive with keys, leases, revoke, unknown lease', async () => {
    await same('/v3/lease/grant', JSON.stringify({ TTL: 60, ID: 4242 }))
    await same('/v3/lease/grant', JSON.stringify({ TTL: 60, ID: 4242 }))
    await same('/v3/lease/grant', JSON.stringify({ TTL: 1, ID: 4343 }))
    await same('/v3/kv/put', JSON.stringify({ key: b64('leased'), value: b64('x'), lease: 4242 }))
    const ttl = await Promise.all([
      call(etcd.url, '/v3/lease/timetolive', JSON.stringify({ ID: 4242, keys: true })),
      call(edge.urls[0]!, '/v3/lease/timetolive', JSON.stringify({ ID: 4242, keys: true })),
    ])
    // The remaining TTL depends on timing: compare everything but it.
    const strip = (a: Answer) => normalize(a).body.replace(/"TTL":"\d+"/, '"TTL":"N"')
    assert.equal(strip(ttl[1]), strip(ttl[0]))
    await same('/v3/lease/timetolive', JSON.stringify({ ID: 999 }))
    // etcd lists leases in Go map order (random): compare them as a set.
    const ls = await Promise.all([
      call(etcd.url, '/v3/lease/leases', '{}'),
      call(edge.urls[0]!, '/v3/lease/leases', '{}'),
    ])
    const sorted = (a: Answer) => {
      const o = JSON.parse(normalize(a).body)
      o.leases.sort((x: { ID: string }, y: { ID: string }) => x.ID.localeCompare(y.ID))
      return o
    }
    assert.deepEqual(sorted(ls[1]), sorted(ls[0]))
    await same('/v3/lease/revoke', JSON.stringify({ ID: 4343 }))
    await same('/v3/lease/revoke', JSON.stringify({ ID: 4242 }))
    await same('/v3/kv/range', JSON.stringify({ key: b64('leased') }))
    await same('/v3/lease/revoke', JSON.stringify({ ID: 4242 }))
    await same('/v3/kv/lease/revoke', JSON.stringify({ ID: 4242 }))
    await same('/v3/lease/keepalive', JSON.stringify({ ID: 777 }))
  })

  test('bad input: JSON, base64, types, enums, unknown fields, empty bodies', async () => {
    await same('/v3/kv/range', '{"key":')
    await same('/v3/kv/range', 'abc')
    await same('/v3/kv/range', '')
    await same('/v3/kv/range', 'null')
    await same('/v3/kv/range', '{"key":"YQ==","bogus":1,"ttl":3}')
    await same('/v3/kv/range', '{"key":"Zm9vYg"}')
    await same('/v3/kv/range', '{"key":"_-8="}')
    await same('/v3/kv/range', '{"key":5}')
    await same('/v3/kv/range', '{"key":"YQ==","limit":1.5}')
    await same('/v3/kv/range', '{"key":"YQ==","limit":"abc"}')
    await same('/v3/kv/range', '{"key":"YQ==","serializable":"true"}')
    await same('/v3/kv/range', '{"key":"YQ==","sort_order":"BOGUS"}')
    await same('/v3/kv/range', '{"key":"YQ==","sortOrder":2,"countOnly":true}')
    await same('/v3/kv/range', '{"key":"YQ=="}{"key":"Yg=="}')
    await same('/v3/kv/deleterange', '{}')
  })

  test('transport: 405, 404, OPTIONS, /v3beta alias, /version, /health', async () => {
    await same('/v3/kv/range', undefined, 'GET')
    await same('/v3/kv/nope', '{}')
    await same('/v3beta/kv/range', JSON.stringify({ key: b64('b') }))
    await same('/version', undefined, 'GET')
    await same('/health', undefined, 'GET')
    const [a, b] = await Promise.all([
      call(etcd.url, '/v3/kv/range', undefined, 'OPTIONS'),
      call(edge.urls[0]!, '/v3/kv/range', undefined, 'OPTIONS'),
    ])
    assert.equal(b.status, a.status)
  })

  /** Opens the same watch body on both servers; `next()` reads one line from each and compares them normalised. */
  async function bothWatch(body: string) {
    const [a, b] = await Promise.all([
      LineStream.open(etcd.url, '/v3/watch', body),
      LineStream.open(edge.urls[0]!, '/v3/watch', body),
    ])
    assert.equal(b.status, a.status)
    const line = (x: unknown) => normalize({ status: 200, type: '', body: JSON.stringify(x) }).body
    return {
      async next(what: string) {
        const [x, y] = await Promise.all([a.next(30_000), b.next(30_000)])
        assert.equal(line(y), line(x), what)
        return y
      },
      /** Reads n lines from each, compares them as sorted sets. */
      async nextBoth(n: number) {
        const xs: string[] = []
        const ys: string[] = []
        for (let i = 0; i < n; i++) {
          const [x, y] = await Promise.all([a.next(30_000), b.next(30_000)])
          xs.push(line(x))
          ys.push(line(y))
        }
        return [xs.sort(), ys.sort()]
      },
      async quiet() {
        const [x, y] = await Promise.all([a.quiet(300), b.quiet(300)])
        assert.equal(y, undefined, `edgecd sent ${JSON.stringify(y)}`)
        assert.equal(x, undefined, `etcd sent ${JSON.stringify(x)}`)
      },
      close() {
        a.close()
        b.close()
      },
    }
  }

  test('live watch: created, put, a txn in one message, delete with prev_kv, filters', async () => {
    const w = await bothWatch(
      JSON.stringify({ create_request: { key: b64('lw/'), range_end: b64('lw0'), prev_kv: true } }) +
        JSON.stringify({ create_request: { key: b64('lw/a'), filters: ['NOPUT'] } }),
    )
    await w.next('created 0')
    await w.next('created 1')
    await same('/v3/kv/put', JSON.stringify({ key: b64('lw/a'), value: b64('1') }))
    await w.next('put event')
    await same(
      '/v3/kv/txn',
      JSON.stringify({
        success: [
          { request_put: { key: b64('lw/a'), value: b64('2') } },
          { request_put: { key: b64('lw/b'), value: b64('3') } },
        ],
      }),
    )
    await w.next('txn events in one message')
    await same('/v3/kv/deleterange', JSON.stringify({ key: b64('lw/a') }))
    // Both watchers get the delete; etcd orders watchers of one revision arbitrarily: compare as a set.
    const [x, y] = await w.nextBoth(2)
    assert.deepEqual(y, x, 'delete events with and without prev_kv')
    await w.quiet()
    w.close()
  })

  test('watch: client-chosen id, duplicate id, progress_request, cancel_request, then live events', async () => {
    const body = [
      { create_request: { key: b64('cw') } },
      { create_request: { key: b64('cw'), watch_id: 9 } },
      { create_request: { key: b64('cw'), watch_id: 9 } },
      { progress_request: {} },
      { cancel_request: { watch_id: 0 } },
    ]
      .map((x) => JSON.stringify(x))
      .join('')
    const w = await bothWatch(body)
    for (const what of ['created 0', 'created 9', 'duplicate 9', 'progress', 'cancel 0']) await w.next(what)
    await same('/v3/kv/put', JSON.stringify({ key: b64('cw'), value: b64('x') }))
    await w.next('only watcher 9 sees the put')
    await w.quiet()
    w.close()
  })

  test('edgecd_coalesce_ms (edgecd extension, etcd ignores it): the same created and events, spaced puts alike', async () => {
    const w = await bothWatch(
      JSON.stringify({ create_request: { key: b64('cm/'), range_end: b64('cm0'), edgecd_coalesce_ms: 50 } }),
    )
    await w.next('created')
    // Puts a window apart: edgecd sends each at once, as etcd (closer ones would share a message on edgecd).
    for (let i = 0; i < 3; i++) {
      await same('/v3/kv/put', JSON.stringify({ key: b64(`cm/${i}`), value: b64(String(i)) }))
      await w.next(`put ${i}`)
      await new Promise((r) => setTimeout(r, 120))
    }
    await w.quiet()
    w.close()
  })

  test('keepalive of a live lease, several in one body, and of a revoked one', async () => {
    await same('/v3/lease/grant', JSON.stringify({ TTL: 60, ID: 6161 }))
    await same(
      '/v3/lease/keepalive',
      JSON.stringify({ ID: 6161 }) + JSON.stringify({ ID: '6161' }) + JSON.stringify({ ID: 6262 }),
    )
    await same('/v3/lease/revoke', JSON.stringify({ ID: 6161 }))
    await same('/v3/lease/keepalive', JSON.stringify({ ID: 6161 }))
  })

  test('maintenance: alarms (no header; GET filters by type), status shape', async () => {
    await same('/v3/maintenance/alarm', '{}')
    await same('/v3/maintenance/alarm', JSON.stringify({ action: 'ACTIVATE', memberID: '77', alarm: 'NOSPACE' }))
    await same('/v3/maintenance/alarm', JSON.stringify({ action: 'GET' }))
    await same('/v3/maintenance/alarm', JSON.stringify({ action: 'GET', memberID: '5' }))
    await same('/v3/maintenance/alarm', JSON.stringify({ action: 'GET', alarm: 'CORRUPT' }))
    await same('/v3/kv/put', JSON.stringify({ key: b64('nospace'), value: b64('x') }))
    await same('/v3/kv/range', JSON.stringify({ key: b64('lw/b') }))
    await same('/v3/maintenance/alarm', JSON.stringify({ action: 'DEACTIVATE', memberID: '77', alarm: 'NOSPACE' }))
    await same('/v3/maintenance/alarm', JSON.stringify({ action: 'DEACTIVATE', memberID: '77', alarm: 'NOSPACE' }))
    await same('/v3/maintenance/alarm', '{}')
    await same('/v3/kv/put', JSON.stringify({ key: b64('nospace'), value: b64('x') }))
    const [a, b] = await Promise.all([
      call(etcd.url, '/v3/maintenance/status', '{}'),
      call(edge.urls[0]!, '/v3/maintenance/status', '{}'),
    ])
    assert.deepEqual(Object.keys(JSON.parse(b.body)), Object.keys(JSON.parse(a.body)))
  })

  test('watch: historic replay batches revisions; a compacted start revision is cancelled', async () => {
    const watch = async (base: string, body: string) => {
      const ac = new AbortController()
      const r = await fetch(base + '/v3/watch', { method: 'POST', body, signal: ac.signal })
      const reader = r.body!.getReader()
      let text = ''
      const deadline = Date.now() + 30_000
      while ((text.match(/\n/g)?.length ?? 0) < 2 && Date.now() < deadline) {
        let timer: ReturnType<typeof setTimeout> | undefined
        const { value, done } = await Promise.race([
          reader.read(),
          new Promise<{ value: undefined; done: true }>((res) => {
            timer = setTimeout(() => res({ value: undefined, done: true }), Math.max(1, deadline - Date.now()))
          }),
        ]).finally(() => clearTimeout(timer))
        if (done) break
        text += new TextDecoder().decode(value)
      }
      ac.abort()
      return normalize({ status: r.status, type: '', body: text }).body
    }
    const reqs = [
      JSON.stringify({ create_request: { key: b64('b'), start_revision: 5, prev_kv: true } }),
      JSON.stringify({ create_request: { key: 'AA==', range_end: 'AA==', start_revision: 2 } }),
      JSON.stringify({ create_request: { key: b64('a'), filters: ['NOPUT'], start_revision: 5 } }),
    ]
    for (const body of reqs) {
      const [a, b] = await Promise.all([watch(etcd.url, body), watch(edge.urls[0]!, body)])
      assert.equal(b, a, body)
    }
  })
})
