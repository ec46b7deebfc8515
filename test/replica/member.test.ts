/**
 * The replica against a real in-process member (Node, memory storage, the client's shared WebSocket watch stream):
 * initial copy in pages, live changes, a linearizable read sees a write made just before it, offline reads are stale
 * while the member is down and it catches up after; a re-copy after a compaction while it was closed; and with auth,
 * a user/password replica whose read permission is revoked deletes that range's data.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import WebSocket from 'ws'
import { openReplica, type ReplicaChange } from '../../src/replica/index.js'
import { MemoryReplicaStorage, type ReplicaError } from '../../src/replica/storage.js'
import { type RestartableMember, sleep, startMember, testClient, within } from '../client/helpers.js'

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`)
    await sleep(20)
  }
}

describe('replica against a real member', () => {
  let m: RestartableMember
  before(async () => {
    m = await startMember()
  })
  after(() => m?.close())

  test('copies a prefix in pages, follows live changes, linearizable reads, offline stale reads, catch-up', async () => {
    const c = testClient([m.url])
    for (let i = 0; i < 250; i++) await c.put(`app/${String(i).padStart(3, '0')}`, `v${i}`)
    await c.put('other/x', 'no')
    const storage = new MemoryReplicaStorage()
    const r = await openReplica({ endpoint: m.url, prefix: 'app/', WebSocket, storage, pageSize: 64 })
    try {
      const g = await r.get('app/007')
      assert.deepEqual([g.value, g.stale], ['v7', false])
      assert.equal((await r.range({ prefix: 'app/' }, { countOnly: true })).count, 250)
      const changes: ReplicaChange[] = []
      r.watch({ prefix: 'app/' }, (ch) => changes.push(ch))
      // A write and then a linearizable read through the replica: the read must see it.
      const put = await c.put('app/007', 'seven')
      const after = await r.get('app/007')
      assert.equal(after.value, 'seven')
      assert.ok(after.revision >= put.header.revision)
      // A write outside the range: a linearizable read still answers at the current revision (progress request).
      const out = await c.put('other/y', 'z')
      const again = await r.get('app/001')
      assert.equal(again.revision, out.header.revision)
      await until(
        () => changes.some((x) => x.events.some((e) => e.kv.key === 'app/007' && e.kv.value === 'seven')),
        'subscription',
      )
      await c.delete('app/008')
      assert.equal((await r.get('app/008')).value, undefined)

      // The member goes down: reads answer the local copy, stale.
      await m.stop()
      await until(() => r.status.state === 'offline', 'offline')
      const off = await r.get('app/007')
      assert.deepEqual([off.value, off.stale], ['seven', true])
      assert.ok(off.lastContact !== undefined && off.lastContact <= Date.now())
      await assert.rejects(
        r.get('app/007', { consistency: 'linearizable-only' }),
        (e: ReplicaError) => e.code === 'ERR_OFFLINE',
      )
      await m.start()
      const c2 = testClient([m.url])
      await c2.put('app/100', 'after restart')
      await until(async () => (await r.get('app/100')).value === 'after restart', 'catch-up after the restart')
      assert.equal((await r.get('app/100')).stale, false)
      c2.close()
    } finally {
      await r.close()
      c.close()
    }

    // Closed, then writes and a compaction past its revision: reopening re-copies and ends equal to the member.
    const c3 = testClient([m.url])
    for (let i = 0; i < 20; i++) await c3.put(`app/${String(i).padStart(3, '0')}`, `w${i}`)
    const last = await c3.put('app/zzz', 'end')
    await c3.compact(last.header.revision)
    const r2 = await openReplica({ endpoint: m.url, prefix: 'app/', WebSocket, storage, pageSize: 64 })
    try {
      await until(() => r2.status.state === 'live', 'live after the re-copy')
      const mine = await r2.range({ prefix: 'app/' })
      const theirs = await c3.getPrefix('app/')
      assert.equal(mine.revision, theirs.header.revision)
      assert.deepEqual(
        mine.kvs.map((k) => `${k.key}=${k.value}@${k.modRevision}`),
        theirs.kvs.map((k) => `${k.key}=${k.value}@${k.modRevision}`),
      )
    } finally {
      await r2.close()
      c3.close()
    }
  })
})

describe('replica with auth', () => {
  let m: RestartableMember
  before(async () => {
    m = await startMember({ authPasswordIterations: 1000 })
    const admin = testClient([m.url])
    await admin.auth.userAdd('root', 'rootpw')
    await admin.auth.userGrantRole('root', 'root')
    await admin.auth.roleAdd('reader')
    await admin.auth.roleGrantPermission('reader', 'READ', 'app/', { prefix: true })
    await admin.auth.roleGrantPermission('reader', 'READ', 'pub/', { prefix: true })
    await admin.auth.userAdd('alice', 'alicepw')
    await admin.auth.userGrantRole('alice', 'reader')
    await admin.put('app/a', '1')
    await admin.put('pub/a', 'p')
    await admin.put('secret/a', 's')
    await admin.auth.enable()
    admin.close()
  })
  after(() => m?.close())

  test('syncs what the user may read; a revoked range is stopped and its local data deleted', async () => {
    await assert.rejects(
      openReplica({ endpoint: m.url, prefix: 'secret/', username: 'alice', password: 'alicepw', WebSocket }),
      (e: ReplicaError) => e.code === 'ERR_PERMISSION_DENIED',
    )
    const storage = new MemoryReplicaStorage()
    const r = await openReplica({
      endpoint: m.url,
      ranges: [{ prefix: 'app/' }, { prefix: 'pub/' }],
      username: 'alice',
      password: 'alicepw',
      WebSocket,
      storage,
    })
    const root = testClient([m.url], { username: 'root', password: 'rootpw' })
    try {
      assert.equal((await r.get('app/a')).value, '1')
      assert.equal((await r.get('pub/a')).value, 'p')
      await root.auth.roleRevokePermission('reader', 'app/', { prefix: true })
      await root.put('app/a', '2')
      await within(
        10_000,
        until(() => r.status.ranges[0]!.state === 'denied', 'denied'),
        'denied',
      )
      await assert.rejects(r.get('app/a'), (e: ReplicaError) => e.code === 'ERR_PERMISSION_DENIED')
      assert.equal([...storage.metas.values()].length, 1, 'only pub/ is left in storage')
      // The other range goes on.
      await root.put('pub/a', 'q')
      assert.equal((await r.get('pub/a')).value, 'q')
    } finally {
      await r.close()
      root.close()
    }
  })
})
