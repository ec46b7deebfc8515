/**
 * A member serves clients only once its name and client URLs are published through the log (etcd's ReadyNotify),
 * and /health says true only then: right after a 3-member start, any member that answers lists itself with its
 * client URLs, and a member whose /health is true is listed with them by itself.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { post } from '../support/index.js'
import { startCluster } from './helpers.js'

test('right after a 3-member start, a member that answers lists itself with its client URLs', async () => {
  const c = await startCluster(3)
  try {
    await Promise.all(
      c.urls.map(async (url, i) => {
        // The first answer a member gives, whenever it comes, must already list the member's own client URLs.
        const list = await post(url, '/v3/cluster/member/list', {})
        assert.equal(list.status, 200, JSON.stringify(list.json))
        const me = list.json.members.find((m: { name: string }) => m.name === c.names[i])
        assert.deepEqual(me?.clientURLs, [url], `member ${c.names[i]} answered before publishing its client URLs`)
        // /health agrees: true only for a published member, and then it is listed with its client URLs.
        const h = await fetch(url + '/health')
        assert.equal(await h.text(), '{"health":"true"}')
      }),
    )
  } finally {
    await c.close()
  }
})

test('/health is false (503, etcd 3.4 body) while the member has not published itself', async () => {
  // One member of a two-member cluster alone, restarted: it never has a leader, so it never publishes again.
  const c = await startCluster(2)
  try {
    for (const url of c.urls) assert.equal((await post(url, '/v3/cluster/member/list', {})).status, 200)
    await c.stop(1)
    await c.stop(0)
    c.configs[0]!.requestTimeoutMs = 400
    await c.start(0)
    const h = await fetch(c.urls[0]! + '/health')
    assert.equal(h.status, 503)
    assert.equal(await h.text(), '{"health":"false"}\n')
    assert.equal(h.headers.get('x-content-type-options'), 'nosniff')
    // A client request waits for the member to be ready, at most the request timeout, then gets etcd's error.
    const r = await post(c.urls[0]!, '/v3/kv/range', { key: 'YQ==' })
    assert.equal(r.status, 503)
    assert.equal(r.json.message, 'etcdserver: request timed out')
  } finally {
    await c.close()
  }
})
