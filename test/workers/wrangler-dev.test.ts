/**
 * `npx wrangler dev` with the repository's wrangler.toml: a local three-member cluster of Durable Objects behind one
 * Worker, no account, no network (CLOUDFLARE_CF_FETCH_ENABLED=false, WRANGLER_SEND_METRICS=false, config and logs
 * under a temp dir). Checked: the front member answers /v3, /m/<name>/ addresses each member, a write on one member
 * is read linearizably on the others, a WebSocket watch on m3 sees a write made on m2, unknown members are 404.
 * The port is a free one, so --var rewrites the member URLs to it.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { WsWatch } from '../server/helpers.js'
import { b64, eventually, freePort, get, post } from '../support/index.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '../..')

describe('wrangler dev: a three-member cluster of Durable Objects', { timeout: 180_000 }, () => {
  let child: ChildProcess
  let base = ''
  let dir = ''
  let output = ''
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgecd-wrangler-'))
    const port = await freePort()
    base = `http://127.0.0.1:${port}`
    const cluster = ['m1', 'm2', 'm3'].map((n) => `${n}=${base}/m/${n}`).join(',')
    child = spawn(
      join(root, 'node_modules/.bin/wrangler'),
      [
        'dev',
        '--local',
        '--ip',
        '127.0.0.1',
        '--port',
        String(port),
        '--persist-to',
        join(dir, 'state'),
        '--show-interactive-dev-session=false',
        '--var',
        `EDGECD_INITIAL_CLUSTER:${cluster}`,
      ],
      {
        cwd: root,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          WRANGLER_SEND_METRICS: 'false',
          CLOUDFLARE_CF_FETCH_ENABLED: 'false',
          XDG_CONFIG_HOME: join(dir, 'xdg'),
          WRANGLER_LOG_PATH: join(dir, 'logs'),
        },
      },
    )
    child.stdout!.on('data', (d) => {
      output += d
    })
    child.stderr!.on('data', (d) => {
      output += d
    })
    await eventually(
      async () => ((await get(base, '/version').catch(() => undefined))?.status === 200 ? true : undefined),
      90_000,
      'wrangler dev to answer',
      250,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${output}`)
    })
  })
  after(async () => {
    if (child?.pid !== undefined) {
      // SIGTERM to wrangler's process group: wrangler stops its workerd (RUNTIMES.md §3).
      try {
        process.kill(-child.pid, 'SIGTERM')
      } catch {}
      await new Promise((r) => setTimeout(r, 1000))
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {}
    }
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  test('put on the front member, linearizable reads on every member, watch across members', async () => {
    const put = await eventually(
      async () => {
        const a = await post(base, '/v3/kv/put', { key: b64('foo'), value: b64('bar') })
        return a.status === 200 ? a : undefined
      },
      30_000,
      'the first put',
      200,
    )
    const rev = Number(put.json.header.revision)
    const ids = new Set<string>()
    for (const m of ['m1', 'm2', 'm3']) {
      const r = await post(base, `/m/${m}/v3/kv/range`, { key: b64('foo') })
      assert.equal(r.status, 200, r.text)
      assert.equal(r.json.kvs[0].value, b64('bar'), m)
      assert.ok(Number(r.json.header.revision) >= rev)
      ids.add(r.json.header.member_id)
    }
    assert.equal(ids.size, 3, 'three different members answered')
    const members = await post(base, '/m/m2/v3/cluster/member/list', {})
    assert.deepEqual(members.json.members.map((m: { name: string }) => m.name).sort(), ['m1', 'm2', 'm3'])

    const w = await WsWatch.open(base, '/m/m3/v3/watch')
    try {
      w.send({ create_request: { key: b64('w/'), range_end: b64('w0') } })
      const created = await w.next(30_000)
      assert.equal(created.result.created, true)
      const p2 = await post(base, '/m/m2/v3/kv/put', { key: b64('w/1'), value: b64('x') })
      assert.equal(p2.status, 200, p2.text)
      const ev = await w.next(30_000)
      assert.equal(ev.result.events[0].kv.key, b64('w/1'))
      assert.equal(ev.result.events[0].kv.mod_revision, p2.json.header.revision)
    } finally {
      w.ws.close()
    }
    const unknown = await get(base, '/m/m9/health')
    assert.equal(unknown.status, 404)
  })
})
