/**
 * `snapshot save` then `snapshot restore` as a user runs them (in-process main(), real members): the restored data
 * dir starts a member that serves every key and its history at the same revision, under the new membership; a
 * non-empty data dir and corrupt or truncated files are refused.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { type CliIo, main } from '../../src/cli/main.js'
import { type ServerConfig, serverDefaults } from '../../src/etcdserver/config.js'
import { computeClusterId, computeMemberId } from '../../src/etcdserver/ids.js'
import { startNodeMember } from '../../src/runtime/node/serve.js'
import { testClient } from '../client/helpers.js'
import { startTestMember, type TestMember } from '../server/helpers.js'
import { freePort, silent } from '../support/index.js'

async function run(...argv: string[]) {
  const stdout: string[] = []
  const stderr: string[] = []
  const io: CliIo = { out: (l) => stdout.push(l), err: (l) => stderr.push(l) }
  const code = await main(argv, io)
  return { code, out: stdout.join('\n'), err: stderr.join('\n') }
}

describe('snapshot save and restore', () => {
  let m: TestMember
  const dir = mkdtempSync(join(tmpdir(), 'edgecd-snap-'))
  const file = join(dir, 'snap.db')
  let revision = 0
  before(async () => {
    m = await startTestMember()
    const c = testClient([m.url])
    await c.put('a', '1')
    await c.put('a', '2')
    await c.put('b', 'x')
    await c.delete('b')
    revision = (await c.put('c', '3')).header.revision
    c.close()
  })
  after(async () => {
    await m?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('a restored data dir serves the keys, their history and the revision under a new membership', async () => {
    const saved = await run(`--endpoints=${m.url}`, 'snapshot', 'save', file)
    assert.deepEqual(saved, { code: 0, out: `Snapshot saved at ${file}`, err: '' })

    const url = `http://127.0.0.1:${await freePort()}`
    const dataDir = join(dir, 'restored')
    const flags = ['--name', 'r1', '--initial-cluster', `r1=${url}`, '--initial-cluster-token', 'restored-token']
    const r = await run(
      'snapshot',
      'restore',
      file,
      '--data-dir',
      dataDir,
      ...flags,
      '--initial-advertise-peer-urls',
      url,
    )
    assert.equal(r.code, 0, r.err)
    assert.equal(r.out, '')
    assert.match(r.err, new RegExp(`^restored snapshot .* revision ${revision}, `))

    const config: ServerConfig = {
      ...serverDefaults,
      name: 'r1',
      dataDir,
      listenClientUrls: [url],
      advertiseClientUrls: [url],
      initialAdvertisePeerUrls: [url],
      initialCluster: `r1=${url}`,
      initialClusterToken: 'restored-token',
      heartbeatIntervalMs: 20,
      electionTimeoutMs: 200,
    }
    const restored = await startNodeMember(config, silent)
    try {
      const c = testClient([url])
      const a = await c.get('a')
      assert.equal(a?.value, '2')
      assert.equal(a?.version, 2)
      assert.equal((await c.get('c'))?.value, '3')
      assert.equal(await c.get('b'), undefined)
      assert.equal((await c.get('b', { revision: revision - 2 }))?.value, 'x', 'history is kept')
      const all = await c.getPrefix('')
      assert.equal(all.header.revision, revision)
      assert.equal((await c.put('d', '4')).header.revision, revision + 1)
      const members = await c.member.list()
      const id = await computeMemberId([url], 'restored-token')
      assert.deepEqual(
        members.members.map((x) => [x.id, x.name]),
        [[id, 'r1']],
      )
      assert.equal(members.header.clusterId, await computeClusterId([id]))
      assert.notEqual(members.header.clusterId, (await testClient([m.url]).member.list()).header.clusterId)
      c.close()
    } finally {
      await restored.stop()
    }

    const again = await run('snapshot', 'restore', file, '--data-dir', dataDir, ...flags)
    assert.equal(again.code, 1)
    assert.match(again.err, /^Error: data-dir ".*restored" exists and is not empty$/)
  })

  test('corrupt, truncated and missing files are refused', async () => {
    const bytes = readFileSync(file)
    const flipped = Buffer.from(bytes)
    flipped[10] = flipped[10]! ^ 0xff
    writeFileSync(join(dir, 'flipped.db'), flipped)
    writeFileSync(join(dir, 'short.db'), bytes.subarray(0, bytes.length - 100))
    for (const name of ['flipped.db', 'short.db']) {
      const r = await run('snapshot', 'restore', join(dir, name), '--data-dir', join(dir, `out-${name}`))
      assert.equal(r.code, 1, name)
      assert.match(
        r.err,
        /^Error: snapshot hash mismatch: expected sha256 [0-9a-f]{64}, got [0-9a-f]{64} \(the file is corrupt or truncated/,
      )
    }
    // Without the hash check the truncated CBOR itself is refused.
    const skip = await run(
      'snapshot',
      'restore',
      join(dir, 'short.db'),
      '--data-dir',
      join(dir, 'o2'),
      '--skip-hash-check',
    )
    assert.equal(skip.code, 1)
    assert.match(skip.err, /^Error: .*invalid (kv )?snapshot/)
    const missing = await run('snapshot', 'restore', join(dir, 'nope.db'), '--data-dir', join(dir, 'o3'))
    assert.equal(missing.code, 1)
    assert.match(missing.err, /^Error: open .*nope\.db: /)
    const tiny = join(dir, 'tiny.db')
    writeFileSync(tiny, 'abc')
    assert.match((await run('snapshot', 'restore', tiny, '--data-dir', join(dir, 'o4'))).err, /snapshot missing hash/)
    // On a terminal (script(1) gives one) stderr gets the progress bar; captured above it did not.
    const bin = fileURLToPath(new URL('../../bin/edgecd.js', import.meta.url))
    const cmd = `'${process.execPath}' '${bin}' --endpoints=${m.url} snapshot save '${join(dir, 'tty.db')}'`
    const onTty = await new Promise<string>((resolve) =>
      execFile('script', ['-qec', cmd, '/dev/null'], { timeout: 20_000 }, (_e, stdout) => resolve(stdout)),
    )
    assert.match(onTty, /100% \| \d+\/\d+ bytes/)
    assert.match(onTty, /Snapshot saved at /)
    const help = await run('snapshot', 'restore', '--help')
    assert.equal(help.code, 0)
    assert.match(help.out, /--initial-cluster-token/)
    assert.match(help.out, /--skip-hash-check/)
  })

  test('users, roles and auth survive save and restore; the token signing key is never in the file', async () => {
    const am = await startTestMember({ authPasswordIterations: 1000 })
    const url = `http://127.0.0.1:${await freePort()}`
    const dataDir = join(dir, 'restored-auth')
    const authFile = join(dir, 'auth.db')
    try {
      const c = testClient([am.url])
      await c.put('pub/x', 'visible')
      await c.put('secret', 'hidden')
      await c.auth.userAdd('root', 'rootpw')
      await c.auth.userGrantRole('root', 'root')
      await c.auth.roleAdd('reader')
      await c.auth.roleGrantPermission('reader', 'READ', 'pub/', { prefix: true })
      await c.auth.userAdd('alice', 'alicepw')
      await c.auth.userGrantRole('alice', 'reader')
      await c.auth.enable()
      c.close()
      const saved = await run(`--endpoints=${am.url}`, '--user', 'root:rootpw', 'snapshot', 'save', authFile)
      assert.equal(saved.code, 0, saved.err)
      const bytes = readFileSync(authFile)
      for (const secret of ['privateJwk', 'alicepw', 'rootpw'])
        assert.equal(bytes.includes(secret), false, `the file must not hold ${secret}`)
    } finally {
      await am.stop()
    }
    const flags = ['--name', 'a1', '--initial-cluster', `a1=${url}`, '--initial-cluster-token', 'auth-restore']
    const r = await run('snapshot', 'restore', authFile, '--data-dir', dataDir, ...flags)
    assert.equal(r.code, 0, r.err)
    const restored = await startNodeMember(
      {
        ...serverDefaults,
        name: 'a1',
        dataDir,
        listenClientUrls: [url],
        advertiseClientUrls: [url],
        initialAdvertisePeerUrls: [url],
        initialCluster: `a1=${url}`,
        initialClusterToken: 'auth-restore',
        heartbeatIntervalMs: 20,
        electionTimeoutMs: 200,
        authPasswordIterations: 1000,
      },
      silent,
    )
    try {
      // Auth is still on: no token, no read.
      const anon = testClient([url])
      await assert.rejects(anon.get('pub/x'), /user name is empty|permission denied|invalid auth token/)
      anon.close()
      // alice logs in with her old password, reads her prefix and nothing else.
      const alice = testClient([url], { username: 'alice', password: 'alicepw' })
      assert.equal((await alice.get('pub/x'))?.value, 'visible')
      await assert.rejects(alice.get('secret'), /permission denied/)
      alice.close()
      const root = testClient([url], { username: 'root', password: 'rootpw' })
      assert.equal((await root.get('secret'))?.value, 'hidden')
      assert.deepEqual((await root.auth.userList()).users.sort(), ['alice', 'root'])
      root.close()
    } finally {
      await restored.stop()
    }
  })
})
