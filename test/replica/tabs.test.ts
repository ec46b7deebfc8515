/**
 * Sharing one sync between tabs, in Node with the engine itself (the browser wiring is in chromium.test.ts): a leader
 * engine stores and "broadcasts" each committed batch, follower engines apply them. Followers started while the
 * leader is busy (their load racing its commits, made slow on purpose) end equal to the leader; a follower's
 * linearizable read completes through the leader's progress; when the leader closes, a follower takes over from the
 * stored revision without copying again.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { followedSpan } from '../../src/replica/keys.js'
import type { StoredKv } from '../../src/replica/local-index.js'
import { ReplicaEngine } from '../../src/replica/replica.js'
import { MemoryReplicaStorage, type StorageOp } from '../../src/replica/storage.js'
import { rng, ScriptedServer } from './scripted-server.js'

const P = followedSpan({ prefix: 'p/' })
const text = (kvs: StoredKv[]) => kvs.map((kv) => `${kv.key}=${new TextDecoder().decode(kv.value)}@${kv.modRevision}`)
const tick = () => new Promise((r) => setImmediate(r))

/** One storage seen by every "tab": loads take a few macrotasks, like IndexedDB's. */
class SlowLoad extends MemoryReplicaStorage {
  override async load() {
    const snap = await super.load()
    for (let i = 0; i < 5; i++) await tick()
    return snap
  }
}

for (const seed of [1, 2, 3, 4, 5, 6]) {
  test(`tabs, seed ${seed}: followers equal the leader; linearizable reads; hand-over without a copy`, async () => {
    const rand = rng(seed)
    const server = new ScriptedServer(rng(seed + 7))
    for (let i = 0; i < 20; i++) server.put(`p/${i}`, `v${i}`)
    const storage = new SlowLoad()
    const tabs: ReplicaEngine[] = []
    const channel = (from: ReplicaEngine, ops: StorageOp[]) => {
      const copy = structuredClone(ops)
      setImmediate(() => {
        for (const t of tabs) if (t !== from) t.applyRemote(copy)
      })
    }
    const make = () => {
      const e: ReplicaEngine = new ReplicaEngine({
        storage,
        ranges: [P],
        pageSize: 3,
        backoffMs: () => 1,
        onCommitted: (ops) => channel(e, ops),
        askProgress: () => {
          for (const t of tabs) if (t.isLeader) void t.progressForFollowers()
        },
      })
      e.readSource = server
      tabs.push(e)
      return e
    }
    const leader = make()
    await leader.promote(server)
    await leader.ready(10_000)
    const followers: ReplicaEngine[] = []
    for (let i = 0; i < 3; i++) {
      // Start a follower in the middle of writes.
      for (let w = 0; w < 5; w++) server.put(`p/${Math.floor(rand() * 25)}`, `f${i}-${w}`)
      if (rand() < 0.3) server.delete(`p/${Math.floor(rand() * 25)}`)
      const f = make()
      followers.push(f)
      await f.start()
      for (let w = 0; w < 5; w++) {
        server.put(`p/${Math.floor(rand() * 25)}`, `g${i}-${w}`)
        if (rand() < 0.5) await tick()
      }
    }
    const want = text(server.stateAt(server.revision, P.key, P.end))
    for (const f of followers) {
      const r = await f.read({ key: P.key, end: P.end }, 'linearizable-only')
      assert.equal(r.revision, server.revision)
      assert.deepEqual(text(r.kvs), want, 'a follower equals the server after a linearizable read')
    }
    // Hand-over: the leader goes away, the first follower leads from the stored revision.
    await leader.close()
    tabs.splice(tabs.indexOf(leader), 1)
    const calls = server.rangeCalls
    const next = followers[0]!
    await next.promote(server)
    for (let i = 0; i < 20_000 && next.status().state !== 'live'; i++) await tick()
    server.put('p/after', 'handover')
    const r = await next.read({ key: P.key, end: P.end }, 'linearizable-only')
    assert.deepEqual(text(r.kvs), text(server.stateAt(server.revision, P.key, P.end)))
    assert.ok(server.rangeCalls - calls <= 2, `no copy after the hand-over (${server.rangeCalls - calls} range calls)`)
    for (let i = 0; i < 1000; i++) await tick()
    assert.deepEqual(
      text(followers[1]!.snapshot().kvs),
      text(next.snapshot().kvs),
      'the other follower follows the new leader',
    )
    for (const t of [...tabs]) await t.close()
  })
}
