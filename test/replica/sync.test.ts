/**
 * The replica's sync engine against a scripted server (scripted-server.ts), seeded: a crash at every commit of an
 * initial copy resumes where it stopped; random runs of writes, disconnects with repeated and late deliveries,
 * compactions (also while offline), and restarts never lose or repeat an event, every local read equals the server's
 * state at the revision it reports, and the final copy equals the server's; permission loss deletes the range's data;
 * a storage quota error is a clear error state. A failing run prints its seed (REPLICA_SEED=n reruns it).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { openReplica, type Replica } from '../../src/replica/api.js'
import { followedSpan, rangeId } from '../../src/replica/keys.js'
import { newTree, type StoredKv } from '../../src/replica/local-index.js'
import { type ChangeBatch, mergeOps, ReplicaEngine } from '../../src/replica/replica.js'
import type { ReplicaSource, SourceEvent, WatchSink } from '../../src/replica/source.js'
import { MemoryReplicaStorage, type ReplicaError, type StorageOp } from '../../src/replica/storage.js'
import { rng, ScriptedServer } from './scripted-server.js'

const P = followedSpan({ prefix: 'p/' })
const text = (kvs: StoredKv[]) => kvs.map((kv) => `${kv.key}=${new TextDecoder().decode(kv.value)}@${kv.modRevision}`)
const tick = () => new Promise((r) => setImmediate(r))

async function until(cond: () => boolean, what: string, max = 20_000): Promise<void> {
  for (let i = 0; i < max; i++) {
    if (cond()) return
    await tick()
  }
  throw new Error(`never happened: ${what}`)
}

function engine(server: ScriptedServer, storage: MemoryReplicaStorage, pageSize = 4): ReplicaEngine {
  return new ReplicaEngine({ storage, ranges: [P], source: server, pageSize, backoffMs: () => 1, readTimeoutMs: 5000 })
}

/** The local copy must equal the server's state at the revision the read reports. */
async function checkLocal(e: ReplicaEngine, server: ScriptedServer, note: string): Promise<number> {
  const a = await e.read({ key: P.key, end: P.end }, 'local')
  assert.deepEqual(text(a.kvs), text(server.stateAt(a.revision, P.key, P.end)), `${note}: local read at ${a.revision}`)
  return a.revision
}

function seeds(n: number): number[] {
  const fixed = process.env.REPLICA_SEED
  return fixed ? [Number(fixed)] : Array.from({ length: n }, (_, i) => 1000 + i)
}

describe('replica sync engine (scripted server)', () => {
  test('an initial copy interrupted at every commit resumes from its cursor and ends equal to the server', async () => {
    const build = () => {
      const s = new ScriptedServer(rng(7))
      for (let i = 0; i < 25; i++) s.put(`p/${String(i).padStart(2, '0')}`, `v${i}`)
      s.put('q/outside', 'x')
      return s
    }
    // An uninterrupted copy: how many commits and pages it takes.
    const full = new MemoryReplicaStorage()
    const s0 = build()
    const e0 = engine(s0, full)
    await e0.start()
    await e0.ready(10_000)
    const commits = full.commits
    const pages = s0.rangeCalls
    await e0.close()
    assert.ok(pages >= 7, `25 keys in pages of 4: ${pages} range calls`)
    for (let crashAt = 0; crashAt <= commits; crashAt++) {
      for (const compactWhileDown of [false, true]) {
        const server = build()
        const storage = new MemoryReplicaStorage()
        storage.beforeCommit = () => {
          if (storage.commits >= crashAt) throw new Error('crash')
        }
        const e1 = engine(server, storage)
        await e1.start().catch(() => {})
        await until(() => e1.status().state === 'error' || e1.status().state === 'live', 'first run stops')
        await e1.close()
        const storedPages = [...storage.metas.values()][0]?.copy?.copied ?? 0
        // While it was down: writes, and maybe a compaction past the pinned revision.
        server.put('p/03', 'changed')
        server.delete('p/10')
        server.put('p/99', 'new')
        if (compactWhileDown) server.compact(server.revision)
        storage.beforeCommit = undefined
        const callsBefore = server.rangeCalls
        const e2 = engine(server, storage)
        await e2.start()
        await e2.ready(10_000)
        const r = await e2.read({ key: P.key, end: P.end })
        assert.equal(r.stale, false)
        assert.equal(r.revision, server.revision, `crash at commit ${crashAt}`)
        assert.deepEqual(text(r.kvs), text(server.stateAt(server.revision, P.key, P.end)), `crash at ${crashAt}`)
        if (!compactWhileDown && storedPages > 0) {
          // Resumed, not restarted: only the pages not yet stored were read again (plus the read's count).
          const remaining = Math.ceil((25 - storedPages) / 4) + 1
          assert.ok(server.rangeCalls - callsBefore <= remaining + 1, `crash at ${crashAt}: resumed the copy`)
        }
        await e2.close()
      }
    }
  })

  for (const seed of seeds(12)) {
    test(`random run, seed ${seed}: no lost or repeated event; every read matches the server at its revision`, async () => {
      try {
        await randomRun(seed)
      } catch (err) {
        console.error(`replica sim failed with seed ${seed} (rerun: REPLICA_SEED=${seed})`)
        throw err
      }
    })
  }

  test('compaction while offline: re-copy swapped in at once; readers see the old copy or the new, never half', async () => {
    const server = new ScriptedServer(rng(3))
    for (let i = 0; i < 30; i++) server.put(`p/${i}`, `a${i}`)
    const storage = new MemoryReplicaStorage()
    const r = await openReplica({ source: server, prefix: 'p/', storage, pageSize: 3, backoffMs: () => 1 })
    const states: string[] = []
    r.onStatus((s) => states.push(s.state))
    const progress: number[] = []
    r.onProgress((p) => progress.push(p.copied ?? 0))
    const batches: ChangeBatch['cause'][] = []
    r.watch({ prefix: 'p/' }, (c) => batches.push(c.cause))
    server.goOffline()
    await until(() => r.status.state === 'offline', 'offline')
    const before = await r.range({ prefix: 'p/' })
    assert.equal(before.stale, true)
    for (let i = 0; i < 30; i += 2) server.put(`p/${i}`, `b${i}`)
    server.delete('p/1')
    server.compact(server.revision)
    server.goOnline()
    // Read all along the re-copy: each answer must be a whole copy at its revision.
    const e = r.engine
    while (r.status.state !== 'live' || r.status.revision < server.revision) {
      await checkLocal(e, server, 'during resync')
      await tick()
    }
    assert.ok(states.includes('resyncing'), `states: ${states}`)
    assert.ok(progress.length >= 10, 'progress after each page')
    assert.ok(batches.includes('resync'))
    const after = await r.range({ prefix: 'p/' })
    assert.equal(after.stale, false)
    assert.equal(after.revision, server.revision)
    assert.deepEqual(
      after.kvs.map((kv) => `${kv.key}=${kv.value}@${kv.modRevision}`),
      text(server.stateAt(server.revision, P.key, P.end)),
    )
    await r.close()
  })

  test('permission loss: the range stops and its local data is deleted; reads say permission denied', async () => {
    const server = new ScriptedServer(rng(5))
    for (let i = 0; i < 10; i++) server.put(`p/${i}`, `v${i}`)
    const storage = new MemoryReplicaStorage()
    const r = await openReplica({ source: server, prefix: 'p/', storage, backoffMs: () => 1 })
    const removed: string[] = []
    r.watch({ prefix: 'p/' }, (c) => {
      if (c.cause === 'removed') for (const ev of c.events) removed.push(`${ev.type} ${ev.kv.key}`)
    })
    assert.equal((await r.get('p/3')).value, 'v3')
    server.deny(P.key, P.end)
    await until(() => r.status.ranges[0]!.state === 'denied', 'denied')
    assert.equal(removed.length, 10)
    assert.equal(storage.metas.size, 0, 'the range is gone from storage')
    assert.equal(storage.data.size, 0, 'its keys are gone from storage')
    await assert.rejects(r.get('p/3'), (e: ReplicaError) => e.code === 'ERR_PERMISSION_DENIED')
    await assert.rejects(
      r.get('p/3', { consistency: 'local' }),
      (e: ReplicaError) => e.code === 'ERR_PERMISSION_DENIED',
    )
    assert.equal(r.status.error?.code, 'ERR_PERMISSION_DENIED')
    await r.close()
    // Opening again is refused while the permission is missing.
    await assert.rejects(
      openReplica({ source: server, prefix: 'p/', storage, backoffMs: () => 1 }),
      (e: ReplicaError) => e.code === 'ERR_PERMISSION_DENIED',
    )
  })

  test('offline: reads answer the stored copy with stale: true; linearizable-only gets ERR_OFFLINE', async () => {
    const server = new ScriptedServer(rng(9))
    server.put('p/a', '1')
    const storage = new MemoryReplicaStorage()
    let now = 1_000_000
    const e = new ReplicaEngine({ storage, ranges: [P], source: server, backoffMs: () => 1, now: () => now })
    await e.start()
    await e.ready(5000)
    const online = await e.read({ key: 'p/a', end: '' })
    assert.equal(online.stale, false)
    assert.equal(online.lastContact, now)
    server.goOffline()
    await until(() => e.status().state === 'offline', 'offline')
    now += 60_000
    const off = await e.read({ key: 'p/a', end: '' })
    assert.equal(off.stale, true)
    assert.equal(off.lastContact, 1_000_000)
    assert.equal(new TextDecoder().decode(off.kvs[0]!.value), '1')
    await assert.rejects(
      e.read({ key: 'p/a', end: '' }, 'linearizable-only'),
      (x: ReplicaError) => x.code === 'ERR_OFFLINE',
    )
    await e.close()
    // A restart while offline: loaded from storage, ready, stale.
    const e2 = new ReplicaEngine({ storage, ranges: [P], source: server, backoffMs: () => 1, now: () => now })
    await e2.start()
    await e2.ready(5000)
    const again = await e2.read({ key: 'p/a', end: '' })
    assert.equal(again.stale, true)
    assert.equal(again.lastContact, 1_000_000)
    await e2.close()
    await assert.rejects(
      openReplica({ source: server, prefix: 'other/', storage: new MemoryReplicaStorage(), openTimeoutMs: 200 }),
      (x: ReplicaError) => x.code === 'ERR_OFFLINE' && /no local copy/.test(x.message),
    )
  })

  test('a storage quota error stops the sync in a clear error state; what was stored stays consistent', async () => {
    const server = new ScriptedServer(rng(11))
    server.put('p/a', '1')
    const storage = new MemoryReplicaStorage()
    const r = await openReplica({ source: server, prefix: 'p/', storage, backoffMs: () => 1 })
    storage.beforeCommit = () => {
      const e = new Error('The quota has been exceeded.')
      e.name = 'QuotaExceededError'
      throw e
    }
    server.put('p/b', '2')
    await until(() => r.status.state === 'error', 'error state')
    assert.equal(r.status.error?.code, 'ERR_QUOTA')
    assert.match(r.status.error!.message, /quota is exhausted/)
    await assert.rejects(
      r.get('p/a', { consistency: 'linearizable-only' }),
      (x: ReplicaError) => x.code === 'ERR_QUOTA',
    )
    const local = await r.get('p/a')
    assert.equal(local.stale, true)
    assert.equal(local.value, '1')
    await r.close()
    // What storage holds is a consistent copy at its revision.
    storage.beforeCommit = undefined
    const stored = (await storage.load())[0]!
    assert.deepEqual(text(stored.kvs), text(server.stateAt(stored.meta.revision, P.key, P.end)))
  })

  test('a copy that would not fit the storage quota is not started: ERR_QUOTA up front, nothing copied', async () => {
    const server = new ScriptedServer(rng(12))
    // 300 keys of ~100 B: about 50 KB with the per-record overhead.
    for (let i = 0; i < 300; i++) server.put(`p/${String(i).padStart(3, '0')}`, 'x'.repeat(100))
    const storage = new MemoryReplicaStorage()
    let asked = 0
    const estimate = async () => {
      asked++
      return { usage: 970_000, quota: 1_000_000 }
    }
    await assert.rejects(
      openReplica({ source: server, prefix: 'p/', storage, backoffMs: () => 1, pageSize: 50, estimate }),
      (e: ReplicaError) =>
        e.code === 'ERR_QUOTA' &&
        /needs about 51 kB \(300 keys\) but the storage has 30 kB free of its 1\.0 MB quota/.test(e.message),
    )
    assert.equal(asked, 1)
    // Nothing but the copy's start was stored: no page.
    assert.equal(storage.data.get(rangeId(P.key, P.end))?.size ?? 0, 0)
    // With room for it, the same copy goes through (and checks once).
    asked = 0
    const roomy = async () => {
      asked++
      return { usage: 900_000, quota: 1_000_000 }
    }
    const r = await openReplica({
      source: server,
      prefix: 'p/',
      storage,
      backoffMs: () => 1,
      pageSize: 50,
      estimate: roomy,
    })
    assert.equal((await r.range({ prefix: 'p/' }, { countOnly: true, consistency: 'local' })).count, 300)
    assert.equal(asked, 1)
    await r.close()
  })

  test('the local index loads sorted, unsorted and repeated keys alike (bulk load or inserts)', () => {
    const kv = (k: string, rev: number): StoredKv => ({
      key: k,
      value: new Uint8Array([rev]),
      createRevision: rev,
      modRevision: rev,
      version: 1,
      lease: '0',
    })
    const keys = Array.from({ length: 500 }, (_, i) => `k/${String(i).padStart(4, '0')}`)
    const sorted = keys.map((k, i) => kv(k, i))
    const shuffled = [...sorted].sort(() => 0).reverse()
    const repeated = [...sorted, kv('k/0007', 999)]
    const dump = (t: ReturnType<typeof newTree>) => [...t.entries()].map(([k, v]) => `${k}@${v.modRevision}`)
    assert.deepEqual(dump(newTree(shuffled)), dump(newTree(sorted)))
    assert.deepEqual(
      dump(newTree(sorted)),
      keys.map((k, i) => `${k}@${i}`),
    )
    const r = newTree(repeated)
    assert.equal(r.size, 500)
    assert.equal(r.get('k/0007')!.modRevision, 999)
    // A bulk-loaded tree takes changes like any other.
    const t = newTree(sorted)
    t.set('k/0000a', kv('k/0000a', 1000))
    t.delete('k/0001')
    assert.equal(t.size, 500)
    assert.deepEqual([...t.keys()].slice(0, 3), ['k/0000', 'k/0000a', 'k/0002'])
  })

  test('reads answer etcd range semantics on the local copy', async () => {
    const server = new ScriptedServer(rng(13))
    for (const k of ['p/c', 'p/a', 'p/b', 'p/d']) server.put(k, `v-${k}`)
    server.put('p/a', 'zz')
    const r: Replica = await openReplica({ source: server, prefix: 'p/', backoffMs: () => 1 })
    const all = await r.range({ prefix: 'p/' })
    assert.deepEqual(
      all.kvs.map((k) => k.key),
      ['p/a', 'p/b', 'p/c', 'p/d'],
    )
    assert.equal(all.count, 4)
    const lim = await r.range({ prefix: 'p/' }, { limit: 2 })
    assert.deepEqual([lim.kvs.length, lim.more, lim.count], [2, true, 4])
    const desc = await r.range({ prefix: 'p/' }, { sortOrder: 'DESCEND', limit: 1 })
    assert.equal(desc.kvs[0]!.key, 'p/d')
    const byMod = await r.range({ prefix: 'p/' }, { sortTarget: 'MOD', sortOrder: 'DESCEND' })
    assert.equal(byMod.kvs[0]!.key, 'p/a')
    const cnt = await r.range({ prefix: 'p/' }, { countOnly: true })
    assert.deepEqual([cnt.kvs.length, cnt.count], [0, 4])
    const keys = await r.range({ key: 'p/b', rangeEnd: 'p/d' }, { keysOnly: true })
    assert.deepEqual(
      keys.kvs.map((k) => [k.key, k.value]),
      [
        ['p/b', ''],
        ['p/c', ''],
      ],
    )
    assert.equal((await r.get('p/zz')).value, undefined)
    await assert.rejects(r.get('q/x'), (x: ReplicaError) => x.code === 'ERR_NOT_FOLLOWED')
    await r.close()
  })

  test('each change a subscriber sees carries its own revision: a delete in a multi-revision message, merged ops, followers', async () => {
    const enc = new TextEncoder()
    const kv = (key: string, rev: number): StoredKv => ({
      key,
      value: enc.encode(key),
      createRevision: rev,
      modRevision: rev,
      version: 1,
      lease: '0',
    })
    // etcd's DELETE event: the key and the revision of the delete (kv.mod_revision), nothing else.
    const tomb = (key: string, rev: number): SourceEvent => ({
      type: 'DELETE',
      kv: { key, value: new Uint8Array(0), createRevision: 0, modRevision: rev, version: 0, lease: '0' },
    })
    let sink: WatchSink | undefined
    const source: ReplicaSource = {
      range: async (r) => ({
        revision: 3,
        kvs: r.countOnly ? [] : [kv('p/a', 2), kv('p/b', 3)],
        more: false,
        count: 2,
      }),
      watch: (_k, _e, _start, s) => {
        sink = s
        setImmediate(() => s.created(3))
        return { cancel() {} }
      },
      progress: async () => 3,
      close() {},
    }
    const storage = new MemoryReplicaStorage()
    const committed: StorageOp[] = []
    const e = new ReplicaEngine({ storage, ranges: [P], source, onCommitted: (ops) => committed.push(...ops) })
    const seen = (x: ReplicaEngine) => {
      const out: string[] = []
      x.subscribe(P.key, P.end, (b) => {
        for (const c of b.changes) out.push(`${c.type} ${c.kv.key}@${c.kv.modRevision}`)
      })
      // A subscriber of one key goes through the filtered path.
      x.subscribe('p/a', '', (b) => {
        for (const c of b.changes) out.push(`only a: ${c.type}@${c.kv.modRevision}`)
      })
      return out
    }
    const leaderSaw = seen(e)
    await e.start()
    await e.ready(5000)
    await e.flushed()
    // A follower tab on the same store, fed the leader's committed ops (as over the BroadcastChannel).
    const follower = new ReplicaEngine({ storage, ranges: [P] })
    const followerSaw = seen(follower)
    await follower.start()
    committed.length = 0
    // Forget the copy (swapped in, and loaded): only live changes from here.
    leaderSaw.length = 0
    followerSaw.length = 0
    // One message with several revisions (one apply batch coalesced by the member), then a single event.
    sink!.events([tomb('p/a', 4), { type: 'PUT', kv: kv('p/c', 5) }, tomb('p/b', 6)], 6)
    sink!.events([tomb('p/c', 7)], 7)
    const want = ['only a: DELETE@4', 'DELETE p/a@4', 'PUT p/c@5', 'DELETE p/b@6', 'DELETE p/c@7']
    assert.deepEqual([...leaderSaw].sort(), [...want].sort())
    assert.deepEqual(
      leaderSaw.filter((x) => !x.startsWith('only')),
      want.slice(1),
      'in revision order',
    )
    await e.flushed()
    // Ops merged into one commit keep each delete's revision.
    const merged = mergeOps([...committed])
    assert.equal(merged.length, 1)
    const m = merged[0]!
    assert.ok(m.kind === 'events')
    assert.deepEqual(
      m.deletes.map((k, i) => `${k}@${m.deleteRevisions?.[i]}`),
      ['p/a@4', 'p/b@6', 'p/c@7'],
    )
    follower.applyRemote(merged)
    assert.deepEqual(
      followerSaw.filter((x) => !x.startsWith('only')),
      ['DELETE p/a@4', 'DELETE p/b@6'],
      'the follower: p/c was never in its copy',
    )
    assert.ok(followerSaw.includes('only a: DELETE@4'))
    // An op broadcast by an older version (no deleteRevisions): the delete is at the op's revision, as before.
    follower.applyRemote([
      { kind: 'events', range: m.range, revision: 9, puts: [kv('p/d', 8)], deletes: [], lastContact: 1 },
    ])
    follower.applyRemote([{ kind: 'events', range: m.range, revision: 10, puts: [], deletes: ['p/d'] }])
    assert.deepEqual(followerSaw.slice(-2), ['PUT p/d@8', 'DELETE p/d@10'])
    assert.equal(e.snapshot().revision, 7)
    // Deletes only, keys first seen in another order than their last revisions: still in revision order.
    leaderSaw.length = 0
    sink!.events(
      [
        { type: 'PUT', kv: kv('p/x', 8) },
        { type: 'PUT', kv: kv('p/y', 9) },
      ],
      9,
    )
    sink!.events([{ type: 'PUT', kv: kv('p/x', 10) }, tomb('p/y', 11), tomb('p/x', 12)], 12)
    assert.deepEqual(
      leaderSaw.filter((x) => !x.startsWith('only')),
      ['PUT p/x@8', 'PUT p/y@9', 'DELETE p/y@11', 'DELETE p/x@12'],
    )
    await follower.close()
    await e.close()
  })
})

async function randomRun(seed: number): Promise<void> {
  const rand = rng(seed)
  const server = new ScriptedServer(rng(seed * 31 + 1))
  server.repeatChance = 0.5
  server.lateChance = 0.5
  const keys = Array.from({ length: 12 }, (_, i) => `p/${i}`)
  for (const k of keys.slice(0, 8)) server.put(k, 'init')
  server.put('o/outside', 'x')
  const storage = new MemoryReplicaStorage()
  // Seeds 4k+2 and 4k+3: commits through the engine's asynchronous queue (as IndexedDB and files), else synchronous.
  storage.syncCommits = seed % 4 < 2
  if (seed % 2 === 0) {
    // Every other seed: metas read apart and a slow load, so the watches start while the copy loads and their
    // deliveries wait for it (the engine's load gate).
    storage.metasApart = true
    const load = storage.load.bind(storage)
    storage.load = async () => {
      // The snapshot is taken first, then the load takes its time (as IndexedDB's read of many pages).
      const snapshot = await load()
      for (let i = 0; i < 60; i++) await tick()
      return snapshot
    }
  }
  let e = engine(server, storage, 1 + Math.floor(rand() * 4))
  // A model fed only by subscriptions: must end equal to the server (no lost event) and never see a revision twice
  // for a key (no repeated event).
  const model = new Map<string, StoredKv>()
  const lastMod = new Map<string, number>()
  const subscribe = (x: ReplicaEngine) =>
    x.subscribe(P.key, P.end, (b) => {
      for (const c of b.changes) {
        if (b.cause === 'events') {
          const prev = lastMod.get(c.kv.key) ?? 0
          assert.ok(c.kv.modRevision > prev, `repeated event for ${c.kv.key} at ${c.kv.modRevision}`)
          // A live delete carries the revision of the delete: the key is there just before it and gone at it.
          if (c.type === 'DELETE') {
            const at = (rev: number) => server.stateAt(rev, c.kv.key, `${c.kv.key}\0`).length
            assert.ok(
              at(c.kv.modRevision - 1) === 1 && at(c.kv.modRevision) === 0,
              `delete of ${c.kv.key} at ${c.kv.modRevision}`,
            )
          }
        }
        lastMod.set(c.kv.key, c.kv.modRevision)
        if (c.type === 'PUT') model.set(c.kv.key, c.kv)
        else model.delete(c.kv.key)
      }
    })
  subscribe(e)
  await e.start()
  await e.ready(10_000)
  for (const kv of e.snapshot().kvs) {
    model.set(kv.key, kv)
    lastMod.set(kv.key, kv.modRevision)
  }
  for (let step = 0; step < 120; step++) {
    const x = rand()
    if (x < 0.45) server.put(keys[Math.floor(rand() * keys.length)]!, `s${step}`)
    else if (x < 0.55) server.delete(keys[Math.floor(rand() * keys.length)]!)
    else if (x < 0.6) server.put('o/outside', `s${step}`)
    else if (x < 0.68) server.goOffline()
    else if (x < 0.78) server.goOnline()
    else if (x < 0.82) server.compact(server.revision - Math.floor(rand() * 4))
    else if (x < 0.86) {
      // Restart: whatever was stored is what the new run starts from.
      await e.close()
      // Writes while it is down: the restarted engine's watch delivers them (during its load, where the seed has
      // the slow load).
      for (let i = Math.floor(rand() * 4); i > 0; i--)
        server.put(keys[Math.floor(rand() * keys.length)]!, `d${step}-${i}`)
      e = engine(server, storage, 1 + Math.floor(rand() * 4))
      model.clear()
      lastMod.clear()
      subscribe(e)
      await e.start()
      for (const kv of e.snapshot().kvs) {
        model.set(kv.key, kv)
        lastMod.set(kv.key, kv.modRevision)
      }
    }
    const waits = Math.floor(rand() * 6)
    for (let i = 0; i < waits; i++) await tick()
    if (e.status().ranges[0]!.revision > 0) await checkLocal(e, server, `seed ${seed} step ${step}`)
  }
  server.goOnline()
  await until(() => e.status().state === 'live', `seed ${seed}: live again`)
  const final = await e.read({ key: P.key, end: P.end }, 'linearizable-only')
  assert.equal(final.revision, server.revision)
  const want = text(server.stateAt(server.revision, P.key, P.end))
  assert.deepEqual(text(final.kvs), want, 'final copy equals the server')
  await e.flushed()
  const stored = (await storage.load()).find((l) => l.meta.id === rangeId(P.key, P.end))!
  assert.deepEqual(
    text(stored.kvs.sort((a, b) => (a.key < b.key ? -1 : 1))),
    text(server.stateAt(stored.meta.revision, P.key, P.end)),
    'stored copy equals the server at its revision',
  )
  assert.deepEqual(
    text([...model.values()].sort((a, b) => (a.key < b.key ? -1 : 1))),
    want,
    'subscribers saw every change',
  )
  await e.close()
}
