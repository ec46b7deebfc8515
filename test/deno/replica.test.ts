/**
 * The replica on Deno: a Deno member in this process, a replica with Deno's own WebSocket and the replica's file
 * storage on Deno's file API: copy, live change, linearizable read; closed and opened again, it resumes from the
 * stored revision. Runs under `npm run test:deno -- test/deno/replica.test.ts`; under Node it is skipped.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { serverDefaults } from '../../src/etcdserver/config.js'
import { b64, silent } from '../support/http.js'
import { freePort } from '../support/ports.js'

const deno = 'Deno' in globalThis

test('a replica on Deno with file storage: copy, live change, resume from the stored revision', {
  skip: deno ? false : 'Deno only (npm run test:deno)',
}, async () => {
  const { startDenoMember } = await import('../../src/runtime/deno/serve.js')
  const { openFileReplicaStorage } = await import('../../src/runtime/deno/replica-storage.js')
  const { openReplica } = await import('../../src/replica/index.js')
  const tmp = mkdtempSync(join(tmpdir(), 'edgecd-deno-replica-'))
  const url = `http://127.0.0.1:${await freePort()}`
  const m = await startDenoMember(
    {
      ...serverDefaults,
      name: 'd0',
      dataDir: join(tmp, 'data'),
      listenClientUrls: [url],
      advertiseClientUrls: [url],
      initialAdvertisePeerUrls: [url],
      initialCluster: `d0=${url}`,
      heartbeatIntervalMs: 20,
      electionTimeoutMs: 200,
      logLevel: 'error',
    },
    silent,
  )
  const put = async (k: string, v: string) => {
    const r = await fetch(`${url}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: b64(k), value: b64(v) }) })
    return Number(((await r.json()) as { header: { revision: string } }).header.revision)
  }
  try {
    for (let i = 0; i < 30; i++) await put(`app/${i}`, `v${i}`)
    const dir = join(tmp, 'replica')
    let r = await openReplica({ endpoint: url, prefix: 'app/', storage: openFileReplicaStorage(dir), pageSize: 8 })
    assert.deepEqual([(await r.get('app/3')).value, (await r.get('app/3')).stale], ['v3', false])
    await put('app/3', 'changed')
    assert.equal((await r.get('app/3')).value, 'changed')
    await r.close()
    const rev = await put('app/4', 'while closed')
    r = await openReplica({ endpoint: url, prefix: 'app/', storage: openFileReplicaStorage(dir), pageSize: 8 })
    const g = await r.get('app/4')
    assert.deepEqual([g.value, g.stale, g.revision], ['while closed', false, rev])
    assert.equal((await r.range({ prefix: 'app/' }, { countOnly: true })).count, 30)
    await r.close()
  } finally {
    await m.stop()
    rmSync(tmp, { recursive: true, force: true })
  }
})
