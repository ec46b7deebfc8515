/**
 * Real processes: a follower that is down (kill -9) while the others take thousands of writes comes back behind the
 * leader's compacted log, and catches up from a snapshot streamed in chunks (src/rafthttp/transport.ts); meanwhile the
 * cluster keeps answering writes. The snapshot here is several MiB, so it travels as several 1 MiB chunks.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { b64, eventually, post } from '../support/index.js'
import { ProcessCluster } from './process.js'

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(url + '/metrics')).text()
  // Summed over the family's label values (To/From a peer).
  const ms = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, 'gm'))]
  return ms.length > 0 ? ms.reduce((n, m) => n + Number(m[1]), 0) : Number.NaN
}

describe('snapshot catch-up of a member that was down for thousands of writes', () => {
  let c: ProcessCluster
  before(async () => {
    // A snapshot every 1,000 entries; the leader keeps 5,000 entries behind it for slow followers (etcd's numbers),
    // so 8,000 writes leave a stopped follower behind the log.
    c = await ProcessCluster.start(3, ['--snapshot-count', '1000'])
  })
  after(async () => {
    await c?.close()
  })

  test('the follower comes back from a chunked snapshot with every acknowledged write', async () => {
    const li = await eventually(() => c.leader(), 10_000, 'a leader')
    const fi = (li + 1) % 3
    c.kill9(fi)
    const value = b64('v'.repeat(600))
    const total = 8000
    let next = 0
    let retries = 0
    const acked = new Set<number>()
    // Each write puts its own key to the same value, so one answered with an error (a leader change between the two
    // live processes on a loaded machine: no leader, or an outcome not known) is retried until acknowledged: applied
    // twice it leaves the same key. A bounded number of retries, each after the member's own answer.
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < total) {
          const n = next++
          for (let attempt = 0; attempt < 50 && !acked.has(n); attempt++) {
            if (attempt > 0) {
              retries++
              await new Promise((r) => setTimeout(r, 100))
            }
            const r = await post(c.urls[li]!, '/v3/kv/put', { key: b64(`snap/${String(n).padStart(5, '0')}`), value })
            if (r.status === 200) acked.add(n)
          }
        }
      }),
    )
    assert.equal(acked.size, total, `every write acknowledged while one follower is down (${retries} retries)`)
    if (retries > 0) console.log(`# ${retries} writes retried (a leader change?)`)
    // The snapshot's sender: the leader now (the other live member if the leadership moved).
    const sender = await eventually(() => c.leader(), 10_000, 'a leader')

    c.spawn(fi)
    await c.waitHealthy(fi)
    // Writes keep going while the snapshot streams.
    const during = await post(c.urls[li]!, '/v3/kv/put', { key: b64('snap/during'), value: b64('x') })
    assert.equal(during.status, 200)
    const count = await eventually(
      async () => {
        const r = await post(c.urls[fi]!, '/v3/kv/range', {
          key: b64('snap/'),
          range_end: b64('snap0'),
          count_only: true,
          serializable: true,
        })
        return r.status === 200 && Number(r.json.count) === total + 1 ? Number(r.json.count) : undefined
      },
      30_000,
      'the restarted follower to hold every key',
    )
    assert.equal(count, total + 1)
    assert.ok((await metric(c.urls[fi]!, 'etcd_network_snapshot_receive_success')) >= 1, 'caught up by snapshot')
    const chunks = await metric(c.urls[fi]!, 'edgecd_network_snapshot_chunks_received_total')
    assert.ok(chunks >= 4, `the snapshot came in several chunks (${chunks})`)
    assert.ok((await metric(c.urls[sender]!, 'etcd_network_snapshot_send_success')) >= 1)
    // The same revision everywhere.
    const revs = await Promise.all(
      c.urls.map(async (u) => (await post(u, '/v3/kv/range', { key: b64('snap/during') })).json.header.revision),
    )
    assert.equal(new Set(revs).size, 1, `revisions ${revs.join(', ')}`)
  })
})
