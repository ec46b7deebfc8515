/**
 * Answers of etcd 3.4 that real clients showed edgecd lacked (test/diff/python-clients.test.ts runs the clients
 * themselves; these are the focused checks): one HTTP chunk per watch message, etcd's strict reconfiguration check
 * on member add/remove, hash and snapshot served without a leader, and the defragment route.
 */
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { after, before, describe, test } from 'node:test'
import { eventually, post } from '../support/index.js'
import { startTestMember, type TestMember } from './helpers.js'

const b64 = (s: string) => Buffer.from(s).toString('base64')

/** The body pieces of a POST as the HTTP parser hands them out: one per chunk of the chunked encoding. */
function watchChunks(url: string, body: unknown, want: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const chunks: string[] = []
    const req = request(`${url}/v3/watch`, { method: 'POST' }, (res) => {
      res.on('data', (d: Buffer) => {
        chunks.push(d.toString())
        if (chunks.length >= want) {
          req.destroy()
          resolve(chunks)
        }
      })
    })
    req.on('error', (err) => (chunks.length >= want ? undefined : reject(err)))
    setTimeout(() => {
      req.destroy()
      resolve(chunks)
    }, 5000).unref()
    req.end(JSON.stringify(body))
  })
}

describe('etcd 3.4 answers real clients depend on', () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember()
  })
  after(async () => {
    await m?.stop()
  })

  test('POST /v3/watch: every message is one HTTP chunk (python3-etcd3gw parses a chunk as one JSON value)', async () => {
    for (const v of ['1', '2', '3']) await post(m.url, '/v3/kv/put', { key: b64('w'), value: b64(v) })
    // created, then the three past events: etcd sends them in one response; a second watcher on another key
    // brings a separate message.
    const chunks = await watchChunks(m.url, { create_request: { key: b64('w'), start_revision: 1 } }, 2)
    assert.ok(chunks.length >= 2, `chunks: ${JSON.stringify(chunks)}`)
    for (const c of chunks) {
      assert.ok(c.endsWith('\n'), `a whole message: ${c}`)
      assert.doesNotThrow(() => JSON.parse(c), `one JSON value per chunk: ${c}`)
    }
    assert.equal(JSON.parse(chunks[0]!).result.created, true)
    assert.equal(JSON.parse(chunks[1]!).result.events.length, 3)
  })

  test('POST /v3/maintenance/defragment answers {} as etcd 3.4', async () => {
    const r = await post(m.url, '/v3/maintenance/defragment', {})
    assert.equal(r.status, 200)
    assert.equal(r.text, '{}')
  })
})

describe("etcd's strict reconfiguration check, and what a member answers without a leader", () => {
  let m: TestMember
  before(async () => {
    m = await startTestMember()
  })
  after(async () => {
    await m?.stop()
  })

  test('a second voting member may join one member; then add and remove need a started quorum', async () => {
    const first = await post(m.url, '/v3/cluster/member/add', { peerURLs: ['http://127.0.0.1:1'] })
    assert.equal(first.status, 200, first.text)
    const refused = {
      error: 'etcdserver: re-configuration failed due to not enough started members',
      message: 'etcdserver: re-configuration failed due to not enough started members',
      code: 2,
    }
    const second = await post(m.url, '/v3/cluster/member/add', { peerURLs: ['http://127.0.0.1:2'] })
    assert.deepEqual([second.status, second.json], [500, refused])
    // etcd checks the quorum before the id: a missing member gets the same answer
    const remove = await post(m.url, '/v3/cluster/member/remove', { ID: '1234' })
    assert.deepEqual([remove.status, remove.json], [500, refused])
  })

  test('hash and snapshot are local: they answer without a leader', async () => {
    // The unstarted second voter of the test above took the quorum: the leader steps down (check quorum).
    await eventually(async () => {
      const s = await post(m.url, '/v3/maintenance/status', {})
      return s.json.leader === undefined || s.json.leader === '0'
    }, 10_000)
    const hash = await post(m.url, '/v3/maintenance/hash', {})
    assert.equal(hash.status, 200, hash.text)
    const snap = await post(m.url, '/v3/maintenance/snapshot', {})
    assert.equal(snap.status, 200)
    assert.match(snap.text, /"blob"/)
  })
})
