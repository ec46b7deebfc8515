/**
 * The replica's file storage: a replica on Node files resumes after a close without copying again and equals the
 * server; a torn last record is cut and the commit before it kept; the log folds into a snapshot and the state
 * survives; on the in-memory file system with its crash model, a crash at any point of a random run leaves a copy
 * that equals the server at its stored revision.
 */
import assert from 'node:assert/strict'
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { openReplica } from '../../src/replica/api.js'
import { FileReplicaStorage } from '../../src/replica/file-storage.js'
import { followedSpan } from '../../src/replica/keys.js'
import type { StoredKv } from '../../src/replica/local-index.js'
import { openFileReplicaStorage } from '../../src/runtime/node/replica-storage.js'
import { MemoryFileOps } from '../../src/storage/memory-file-ops.js'
import { rng, ScriptedServer } from './scripted-server.js'

const P = followedSpan({ prefix: 'p/' })
const text = (kvs: StoredKv[]) =>
  [...kvs]
    .sort((a, b) => (a.key < b.key ? -1 : 1))
    .map((kv) => `${kv.key}=${new TextDecoder().decode(kv.value)}@${kv.modRevision}`)

test('a replica on Node files resumes from the stored revision after a close; a torn tail is cut', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgecd-replica-'))
  try {
    const server = new ScriptedServer(rng(21))
    for (let i = 0; i < 40; i++) server.put(`p/${i}`, `v${i}`)
    let r = await openReplica({ source: server, prefix: 'p/', storage: openFileReplicaStorage(dir), pageSize: 7 })
    server.put('p/1', 'changed')
    assert.equal((await r.get('p/1')).value, 'changed')
    await r.close()
    server.put('p/2', 'while closed')
    const calls = server.rangeCalls
    r = await openReplica({ source: server, prefix: 'p/', storage: openFileReplicaStorage(dir), pageSize: 7 })
    const a = await r.get('p/2')
    assert.deepEqual([a.value, a.stale, a.revision], ['while closed', false, server.revision])
    assert.equal(server.rangeCalls - calls, 1, 'only the read’s count: no copy')
    await r.close()
    // A torn record after the last commit: ignored and cut.
    const log = readdirSync(dir).find((n) => n.endsWith('.log'))!
    appendFileSync(join(dir, log), Buffer.from([0, 0, 0, 50, 1, 2, 3]))
    const s = openFileReplicaStorage(dir)
    const loaded = await s.load()
    await s.close()
    assert.deepEqual(text(loaded[0]!.kvs), text(server.stateAt(loaded[0]!.meta.revision, P.key, P.end)))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('the log folds into snapshots; a crash anywhere leaves a copy equal to the server at its revision', async () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const rand = rng(seed)
    const fs = new MemoryFileOps()
    const server = new ScriptedServer(rng(seed + 100))
    for (let i = 0; i < 30; i++) server.put(`p/${i}`, `v${i}`)
    const storage = new FileReplicaStorage(fs, 2048)
    const r = await openReplica({ source: server, prefix: 'p/', storage, pageSize: 4, backoffMs: () => 1 })
    const steps = 20 + Math.floor(rand() * 60)
    for (let i = 0; i < steps; i++) {
      server.put(`p/${Math.floor(rand() * 40)}`, `s${i}-${'x'.repeat(Math.floor(rand() * 50))}`)
      if (rand() < 0.1) server.delete(`p/${Math.floor(rand() * 40)}`)
      if (rand() < 0.3) await new Promise((res) => setImmediate(res))
    }
    // Crash: the process dies (no close); only what was durably written survives.
    fs.crash()
    // The dead process writes nothing more.
    fs.readOnly = true
    await r.close().catch(() => {})
    fs.readOnly = false
    const again = new FileReplicaStorage(fs, 2048)
    const loaded = await again.load()
    const l = loaded[0]!
    assert.ok(l.meta.revision > 0, `seed ${seed}: a copy survived`)
    assert.deepEqual(text(l.kvs), text(server.stateAt(l.meta.revision, P.key, P.end)), `seed ${seed}`)
    await again.close()
    assert.ok(
      (await fs.list())!.includes('replica.snap'),
      `seed ${seed}: the log was folded into a snapshot at least once`,
    )
  }
})
