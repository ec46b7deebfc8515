/**
 * The data directory's lock: a second open (in this process or another) fails at once with ErrLocked naming the
 * directory and the holder; a lock left behind by a dead process (kill -9, a pid reused by a later process, another
 * boot) never blocks a start; close releases it; a read-only open takes none. Real processes: two `edgecd serve`
 * members on one data dir, and kill -9 then restart.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { openNodeStorage } from '../../src/runtime/node/storage.js'
import { isStorageError } from '../../src/storage/errors.js'
import { openFileStorage } from '../../src/storage/file-storage.js'
import { MemoryFileOps } from '../../src/storage/memory-file-ops.js'
import { type EdgecdProcess, freePort, spawnEdgecd } from '../support/index.js'
import { ents } from './contract.js'

const roots: string[] = []
after(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true })
})

async function tempDir(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'edgecd-lock-'))
  roots.push(root)
  return join(root, 'data')
}

const locked = (dir: string, holder: RegExp) => (err: unknown) => {
  assert.ok(isStorageError(err, 'ErrLocked'), `expected ErrLocked, got ${err}`)
  assert.match((err as Error).message, new RegExp(dir.replace(/[.+]/g, '\\$&')))
  assert.match((err as Error).message, holder)
  return true
}

/** The pid of a process that has exited and been reaped. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', ''])
  assert.equal(r.status, 0)
  return r.pid!
}

function lockText(pid: number, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ pid, host: hostname(), since: '2026-01-01T00:00:00.000Z', token: 'old', ...extra })
}

describe('data directory lock (in process)', () => {
  test('a second open of the same directory fails at once, naming it and the holder; close releases', async () => {
    const dir = await tempDir()
    const s = await openNodeStorage(dir)
    await s.save({ term: 1, vote: '1', commit: 1 }, ents(1, 2, 1))
    const holder = JSON.parse(await readFile(join(dir, 'edgecd.lock'), 'utf8'))
    assert.equal(holder.pid, process.pid)
    await assert.rejects(openNodeStorage(dir), locked(dir, /this process \(pid \d+\)/))
    // A read-only open takes no lock, so inspecting a running member's directory works.
    const ro = await openNodeStorage(dir, { readOnly: true })
    assert.equal(ro.lastIndex(), 2)
    await ro.close()
    await s.close()
    assert.ok(!(await readdir(dir)).includes('edgecd.lock'), 'close removes the lock file')
    const again = await openNodeStorage(dir)
    assert.equal(again.lastIndex(), 2)
    await again.close()
  })

  test('a refused directory keeps no lock file', async () => {
    const dir = await tempDir()
    const s = await openNodeStorage(dir)
    await s.close()
    const seg = (await readdir(dir)).find((n) => n.endsWith('.wal'))!
    await writeFile(join(dir, seg), new Uint8Array(40).fill(7))
    await assert.rejects(openNodeStorage(dir), (e) => isStorageError(e, 'ErrCorrupt'))
    assert.deepEqual(await readdir(dir), [seg])
  })

  test('stale locks are taken over: a dead pid, a reused pid, another boot, an unreadable file', async () => {
    const dir = await tempDir()
    await (await openNodeStorage(dir)).close()
    const stale = [
      lockText(deadPid()),
      lockText(process.pid, { start: '1' }),
      lockText(process.pid, { boot: 'another-boot' }),
      '{"pid": 12',
    ]
    for (const text of stale) {
      await writeFile(join(dir, 'edgecd.lock'), text)
      // Temp files of a process killed while taking the lock are ours, not foreign, and are cleaned up.
      await writeFile(join(dir, `edgecd.lock.${deadPid()}.tmp`), text)
      const s = await openNodeStorage(dir)
      const names = await readdir(dir)
      assert.deepEqual(
        names.filter((n) => n.startsWith('edgecd.lock')),
        ['edgecd.lock'],
        text,
      )
      assert.equal(JSON.parse(await readFile(join(dir, 'edgecd.lock'), 'utf8')).pid, process.pid, text)
      await s.close()
    }
  })

  test('a lock held by another host, or by a live process, refuses', async () => {
    const dir = await tempDir()
    await (await openNodeStorage(dir)).close()
    await writeFile(join(dir, 'edgecd.lock'), lockText(4242, { host: 'elsewhere' }))
    await assert.rejects(openNodeStorage(dir), locked(dir, /process 4242 on host elsewhere/))
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' })
    try {
      await writeFile(join(dir, 'edgecd.lock'), lockText(child.pid!))
      await assert.rejects(openNodeStorage(dir), locked(dir, new RegExp(`process ${child.pid} since`)))
    } finally {
      child.kill('SIGKILL')
      await new Promise((r) => child.once('close', r))
    }
    const s = await openNodeStorage(dir)
    await s.close()
  })

  test('memory files: one open at a time; a simulated crash releases the lock', async () => {
    const ops = new MemoryFileOps()
    const s = await openFileStorage(ops)
    await assert.rejects(openFileStorage(ops), (e) => isStorageError(e, 'ErrLocked'))
    await s.close()
    const again = await openFileStorage(ops)
    ops.crash()
    const afterCrash = await openFileStorage(ops)
    await afterCrash.close()
    void again
  })
})

describe('data directory lock (real edgecd serve processes)', () => {
  let first: ChildProcess | undefined
  after(() => {
    first?.kill('SIGKILL')
  })

  function serve(dir: string, url: string): EdgecdProcess {
    return spawnEdgecd({
      name: 'm0',
      dataDir: dir,
      clientUrl: url,
      initialCluster: `m0=${url}`,
      token: 'lock',
      logLevel: 'warn',
      readyPath: '/version',
      stderrMax: 1_000_000,
    })
  }

  test('a second member on the same data dir exits with ErrLocked; after kill -9 a restart succeeds', async () => {
    const dir = await tempDir()
    const url = `http://127.0.0.1:${await freePort()}`
    const a = serve(dir, url)
    first = a.child
    await a.waitReady()

    const b = serve(dir, `http://127.0.0.1:${await freePort()}`)
    const code = await b.exited
    assert.notEqual(code, 0)
    assert.match(b.stderr(), new RegExp(`${dir.replace(/[.+]/g, '\\$&')} is locked by process ${a.child.pid}`))
    assert.ok((await fetch(`${url}/version`)).ok, 'the first member keeps running')

    a.child.kill('SIGKILL')
    await a.exited
    assert.ok((await readdir(dir)).includes('edgecd.lock'), 'kill -9 leaves the lock file behind')
    const c = serve(dir, url)
    first = c.child
    await c.waitReady()
    c.child.kill('SIGTERM')
    await c.exited
  })
})
