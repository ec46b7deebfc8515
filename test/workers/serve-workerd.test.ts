/**
 * `edgecd serve --runtime workerd` as users run it: the flag is checked (bad values and flags a workerd member cannot
 * take are usage errors, exit 2), the member's data lives under --data-dir, which is locked against a second member,
 * and a kill -9 of the whole process group then a restart with the same flags keeps every acknowledged write: a
 * one-member cluster has no other copy, so what it serves after the restart came from its own Durable Object
 * storage.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { b64, eventually, freePort, post } from '../support/index.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '../..')
const env = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' }
const cli = (args: string[]) => [process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', ...args]] as const

describe('edgecd serve --runtime workerd', { timeout: 300_000 }, () => {
  const dirs: string[] = []
  const children: ChildProcess[] = []
  after(() => {
    for (const c of children) {
      try {
        process.kill(-c.pid!, 'SIGKILL')
      } catch {}
    }
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  test('bad --runtime values and TLS flags are usage errors', () => {
    const bad = spawnSync(...cli(['--runtime', 'bun']), { cwd: root, env, encoding: 'utf8' })
    assert.equal(bad.status, 2)
    assert.match(bad.stderr, /--runtime must be node, deno or workerd, got "bun"/)
    const tls = spawnSync(...cli(['--runtime=workerd', '--cert-file', 'x.pem', '--key-file', 'x.key']), {
      cwd: root,
      env,
      encoding: 'utf8',
    })
    assert.equal(tls.status, 2, tls.stderr)
    const help = spawnSync(...cli(['--help']), { cwd: root, env, encoding: 'utf8' })
    assert.match(help.stdout, /--runtime +where the member runs: node .* deno .* workerd/)
  })

  test('kill -9 and a restart with the same flags keeps the data; the data dir is locked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgecd-serve-workerd-'))
    dirs.push(dir)
    const url = `http://127.0.0.1:${await freePort()}`
    const flags = ['--runtime', 'workerd', '--name', 'w1', '--data-dir', dir, '--listen-client-urls', url]
    let log = ''
    const start = () => {
      const c = spawn(...cli(flags), { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
      c.stdout!.on('data', (d) => {
        log += d
      })
      c.stderr!.on('data', (d) => {
        log = (log + String(d)).slice(-3000)
      })
      children.push(c)
      return c
    }
    const up = () =>
      eventually(
        async () =>
          (await post(url, '/v3/kv/range', { key: b64('x') }).catch(() => undefined))?.status === 200
            ? true
            : undefined,
        90_000,
        `the workerd member on ${url}`,
      ).catch((err) => {
        throw new Error(`${(err as Error).message}\n${log}`)
      })
    const first = start()
    await up()
    let rev = 0
    for (let i = 0; i < 20; i++) {
      const r = await post(url, '/v3/kv/put', { key: b64(`p/${i}`), value: b64(`v${i}`) })
      assert.equal(r.status, 200)
      rev = Number(r.json.header.revision)
    }
    // A second member on the same data dir is refused while the first runs.
    const other = `http://127.0.0.1:${await freePort()}`
    const second = spawnSync(
      ...cli(['--runtime', 'workerd', '--name', 'w1', '--data-dir', dir, '--listen-client-urls', other]),
      {
        cwd: root,
        env,
        encoding: 'utf8',
        timeout: 60_000,
      },
    )
    assert.equal(second.status, 1, second.stderr)
    assert.match(second.stderr, /in use|locked/i)

    process.kill(-first.pid!, 'SIGKILL')
    // The port is free again once workerd died with its launcher.
    await eventually(
      async () => ((await fetch(url).catch(() => 'down')) === 'down' ? true : undefined),
      30_000,
      'the member to die',
    )
    start()
    await up()
    const r = await post(url, '/v3/kv/range', { key: b64('p/'), range_end: b64('p0') })
    assert.equal(r.status, 200)
    assert.equal(r.json.count, '20', 'every acknowledged write survived')
    assert.ok(Number(r.json.header.revision) >= rev)
    const p = await post(url, '/v3/kv/put', { key: b64('after'), value: b64('x') })
    assert.equal(Number(p.json.header.revision), rev + 1, 'revisions go on from the stored state')
  })
})
